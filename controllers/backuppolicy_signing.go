package controllers

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// Annotations that ask for, and record, a rotation of a policy's signing key: a new value of
// AnnotationRotateSigningKey on the BackupPolicy makes a new key for new backups; the old ones stay
// trusted, so backups signed before still restore.
const (
	AnnotationRotateSigningKey = "tenancy.tenantops.io/rotate-signing-key"
	annotationRotatedFor       = "tenancy.tenantops.io/rotated-for"
)

// maxTrustedKeys bounds the keys kept after rotations, as status.signing.previousPublicKeys does.
const maxTrustedKeys = 10

// ensureSigningKey makes the policy's signing key once, keeps it, and publishes its public half
// (and the earlier ones) in status.signing. Only backup jobs mount the private key; verifications
// and restores check with the public ones. A key is never made anew while its Secret exists: the
// backups it signed must stay checkable.
func (r *BackupPolicyReconciler) ensureSigningKey(ctx context.Context, policy *v1alpha1.BackupPolicy) error {
	name := builders.BackupSigningSecretName(policy)
	key := types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}
	secret := &corev1.Secret{}
	err := r.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		// A Secret made by the previous pass may not be in the cache yet: a second key would
		// orphan the first one's backups.
		err = r.APIReader.Get(ctx, key, secret)
	}
	var trusted []string
	switch {
	case apierrors.IsNotFound(err):
		// Never made, or lost: the keys published before stay trusted.
		if st := policy.Status.Signing; st != nil && st.PublicKey != "" {
			trusted = append([]string{st.PublicKey}, st.PreviousPublicKeys...)
		}
	case err != nil:
		return fmt.Errorf("get signing key %s: %w", name, err)
	default:
		trusted = strings.Fields(string(secret.Data[builders.BackupSigningSecretKeyTrusted]))
		rotate := policy.Annotations[AnnotationRotateSigningKey]
		if len(trusted) > 0 && (rotate == "" || rotate == secret.Annotations[annotationRotatedFor]) {
			return r.publishSigning(policy, name, trusted)
		}
	}
	privatePEM, publicKey, err := catalog.GenerateSigningKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	trusted = append([]string{publicKey}, trusted...)
	trusted = trusted[:min(len(trusted), maxTrustedKeys)]
	ac := builders.BackupSigningSecret(policy, privatePEM, trusted, r.Options.Options)
	if rotate := policy.Annotations[AnnotationRotateSigningKey]; rotate != "" {
		ac.WithAnnotations(map[string]string{annotationRotatedFor: rotate})
	}
	if err := r.Apply(ctx, ac, FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("save signing key %s: %w", name, err)
	}
	return r.publishSigning(policy, name, trusted)
}

// publishSigning puts the trusted keys, the current one first, into status.signing.
func (r *BackupPolicyReconciler) publishSigning(policy *v1alpha1.BackupPolicy, secretName string, trusted []string) error {
	pub, err := catalog.ParsePublicKey(trusted[0])
	if err != nil {
		return fmt.Errorf("signing key %s: %w", secretName, err)
	}
	policy.Status.Signing = &v1alpha1.BackupSigningStatus{PublicKey: trusted[0], KeyID: catalog.KeyFingerprint(pub),
		PreviousPublicKeys: trusted[1:], SecretName: secretName}
	if len(policy.Status.Signing.PreviousPublicKeys) == 0 {
		policy.Status.Signing.PreviousPublicKeys = nil
	}
	return nil
}
