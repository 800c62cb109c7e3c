package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/datakey"
)

// ensureDataKey keeps the tenant's data key: made once, with crypto/rand, wrapped to the policy's
// recipients, and made anew for new backups when those recipients change or the rotate
// annotation takes a new value. A key is never replaced otherwise: the escrow copies in storage
// open the backups made with it, and the Secret is what erasure destroys. It sets
// status.dataKey.
func (r *TenantReconciler) ensureDataKey(ctx context.Context, t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy) error {
	name := builders.DataKeySecretName(t)
	key := types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}
	secret := &corev1.Secret{}
	err := r.Get(ctx, key, secret)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		// Made by the previous pass and not in the cache yet: a second key would leave the
		// first one's backups with a key nobody keeps.
		err = r.APIReader.Get(ctx, key, secret)
	}
	recipients := policy.Spec.Encryption.Recipients
	rotate := t.Annotations[v1alpha1.AnnotationRotateDataKey]
	var previous []string
	var why string
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get data key %s: %w", name, err)
	default:
		current, err := builders.DataKeyOf(secret)
		if err != nil {
			return err
		}
		switch {
		case current.WrappedTo != datakey.RecipientsDigest(recipients):
			why = fmt.Sprintf("BackupPolicy %s's recipients changed, and the key is wrapped to the old ones", policy.Name)
		case rotate != "" && rotate != secret.Annotations[builders.AnnotationDataKeyRotatedFor]:
			why = fmt.Sprintf("annotation %s asked for it", v1alpha1.AnnotationRotateDataKey)
		default:
			r.publishDataKey(t, name, current.ID, secret)
			return nil
		}
		previous = builders.DataKeyIDs(secret)
	}
	fresh, err := datakey.Generate(recipients)
	if err != nil {
		return fmt.Errorf("make data key: %w", err)
	}
	ac := builders.DataKeySecret(t, policy, fresh, previous, r.Options.Clock.Now(), r.builderOptions())
	if rotate != "" {
		ac.WithAnnotations(map[string]string{builders.AnnotationDataKeyRotatedFor: rotate})
	}
	if secret.ResourceVersion != "" {
		// Only over the Secret this pass read: two passes must not both replace the key.
		ac.WithResourceVersion(secret.ResourceVersion)
	}
	if err := r.Apply(ctx, ac, FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("save data key %s: %w", name, err)
	}
	saved := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{builders.AnnotationDataKeyCreated: r.Options.Clock.Now().UTC().Format(time.RFC3339)}}}
	r.publishDataKey(t, name, fresh.ID, saved)
	if why == "" {
		r.event(t, corev1.EventTypeNormal, "DataKeyCreated", fmt.Sprintf("Made data key %s: the tenant's backups are encrypted to it only; it is kept wrapped to BackupPolicy %s's recipients in Secret %s/%s and beside the backups",
			fresh.ID, policy.Name, r.Options.OperatorNamespace, name))
	} else {
		r.event(t, corev1.EventTypeNormal, "DataKeyRotated", fmt.Sprintf("Made data key %s for new backups (%s); backups made before stay readable through key %s until retention prunes them",
			fresh.ID, why, previous[0]))
	}
	return nil
}

func (r *TenantReconciler) publishDataKey(t *v1alpha1.Tenant, secretName, id string, secret *corev1.Secret) {
	st := &v1alpha1.DataKeyStatus{ID: id, SecretName: secretName}
	if created, err := time.Parse(time.RFC3339, secret.Annotations[builders.AnnotationDataKeyCreated]); err == nil {
		st.CreatedAt = &metav1.Time{Time: created}
	}
	t.Status.DataKey = st
}
