package builders

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/datakey"
)

// A tenant's data key lives in a Secret in the operator's namespace, named after the Tenant object
// (its UID too: a later Tenant of the same name is another customer with its own key). It holds
// the key's public half and its identity wrapped to the BackupPolicy's recipients, never the
// identity in the clear, and outlives a Tenant deleted with Retain: it is what still opens that
// tenant's backups until they are erased.
const (
	// ComponentDataKey is the LabelComponent value of data key Secrets.
	ComponentDataKey = "data-key"
	// LabelTenantUID is the UID of the Tenant object a data key belongs to.
	LabelTenantUID = "tenancy.tenantops.io/tenant-uid"

	// AnnotationDataKeyIDs lists the IDs of every key the Tenant object has had, the current one
	// first: what crypto-erasure destroys and records.
	AnnotationDataKeyIDs = "tenancy.tenantops.io/data-key-ids"
	// AnnotationDataKeyWrappedTo is datakey.RecipientsDigest of the recipients the current key is
	// wrapped to; when the policy's recipients change, a new key is made for new backups.
	AnnotationDataKeyWrappedTo = "tenancy.tenantops.io/wrapped-to"
	// AnnotationDataKeyCreated is when the current key was made (RFC 3339).
	AnnotationDataKeyCreated = "tenancy.tenantops.io/created-at"
	// AnnotationDataKeyRotatedFor is the value of the Tenant's rotate annotation the current key
	// was made for, so that one value rotates once.
	AnnotationDataKeyRotatedFor = "tenancy.tenantops.io/rotated-for"

	// maxDataKeyIDs bounds the IDs kept after rotations; older keys stay escrowed in storage with
	// their backups, and erasure lists storage for them too.
	maxDataKeyIDs = 20

	dataKeyMountDir = "/etc/tenantops/data-key"
)

// DataKeySecretName is the Secret of a Tenant object's data key.
func DataKeySecretName(t *v1alpha1.Tenant) string {
	return DataKeySecretNameFor(t.Name, string(t.UID))
}

// DataKeySecretNameFor is DataKeySecretName from a tenant's name and UID, for tenants whose
// object is gone.
func DataKeySecretNameFor(tenant, uid string) string {
	return boundedName("tenant-"+tenant+"-data-key-"+uid, 253)
}

// DataKeySecret holds a tenant's current data key. The key comes from the caller (datakey.Generate,
// with crypto/rand): builders make no randomness. previousIDs are the IDs of the keys it replaces,
// newest first.
func DataKeySecret(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, key datakey.Key, previousIDs []string, created time.Time, opts Options) *corev1ac.SecretApplyConfiguration {
	opts = opts.withDefaults()
	ids := append([]string{key.ID}, slices.DeleteFunc(slices.Clone(previousIDs), func(id string) bool { return id == key.ID })...)
	ids = ids[:min(len(ids), maxDataKeyIDs)]
	return corev1ac.Secret(DataKeySecretName(t), opts.OperatorNamespace).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: ComponentDataKey, LabelTenantUID: string(t.UID)})).
		WithAnnotations(map[string]string{
			annotationBackupPolicy:     policy.Name,
			AnnotationDataKeyIDs:       strings.Join(ids, ","),
			AnnotationDataKeyWrappedTo: key.WrappedTo,
			AnnotationDataKeyCreated:   created.UTC().Format(time.RFC3339),
		}).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{
			datakey.FileRecipient: []byte(key.Recipient),
			datakey.FileWrapped:   key.Wrapped,
		})
}

// DataKeyOf reads the current key from its Secret.
func DataKeyOf(secret *corev1.Secret) (datakey.Key, error) {
	recipient := strings.TrimSpace(string(secret.Data[datakey.FileRecipient]))
	wrapped := secret.Data[datakey.FileWrapped]
	if recipient == "" || len(wrapped) == 0 {
		return datakey.Key{}, fmt.Errorf("data key Secret %s lacks %s or %s", secret.Name, datakey.FileRecipient, datakey.FileWrapped)
	}
	return datakey.Key{ID: datakey.ID(recipient), Recipient: recipient, Wrapped: wrapped,
		WrappedTo: secret.Annotations[AnnotationDataKeyWrappedTo]}, nil
}

// DataKeyIDs are the IDs a data key Secret records, the current one first.
func DataKeyIDs(secret *corev1.Secret) []string {
	var ids []string
	for _, id := range strings.Split(secret.Annotations[AnnotationDataKeyIDs], ",") {
		if id = strings.TrimSpace(id); datakey.ValidID(id) {
			ids = append(ids, id)
		}
	}
	return ids
}
