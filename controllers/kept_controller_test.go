package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
)

// A Tenant deleted with Retain leaves its backups and data key under a kept-tenant record; the
// record's erase annotation (like the end of its retention) erases them, keys first, and records
// it, as a Delete would have.
func TestKeptTenantIsRecordedAndErasedOnRequest(t *testing.T) {
	ctx := context.Background()
	policy := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "kept"}, Spec: v1alpha1.BackupPolicySpec{
		Schedules:  []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "0 */12 * * *", Storage: v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "kept"}}}},
		Encryption: v1alpha1.BackupEncryption{Recipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}}}}
	days := int32(5)
	retention := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "kept"}, Spec: v1alpha1.RetentionPolicySpec{KeepDaily: &days}}
	for _, obj := range []client.Object{policy, retention} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	tenant := minimalTenant("envtest-kept")
	tenant.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy.Name}
	tenant.Spec.RetentionPolicyRef = &v1alpha1.LocalObjectReference{Name: retention.Name}
	createTenant(t, tenant)
	secret := &corev1.Secret{}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if tenant.Status.DataKey == nil {
			return fmt.Errorf("no status.dataKey yet")
		}
		return k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: tenant.Status.DataKey.SecretName}, secret)
	})
	key, err := builders.DataKeyOf(secret)
	if err != nil {
		t.Fatal(err)
	}
	store := backupVolume(t, "kept")
	if err := catalog.WriteDataKey(ctx, store, tenant.Name, string(tenant.UID), key); err != nil {
		t.Fatal(err)
	}
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: tenant.Name, TenantUID: string(tenant.UID), Schedule: "hot", ID: "20261202T000000Z-kkkkkk",
		StartedAt: testClock.Now().Add(-time.Hour), DataKeyID: key.ID})

	if err := k8s.Delete(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), &v1alpha1.Tenant{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("tenant still exists: %v", err)
		}
		return nil
	})
	recordKey := types.NamespacedName{Namespace: operatorNamespace, Name: builders.KeptTenantName(tenant.Name, string(tenant.UID))}
	record := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, recordKey, record); err != nil {
		t.Fatalf("kept-tenant record: %v", err)
	}
	kept, err := builders.KeptTenantOf(record)
	if err != nil {
		t.Fatal(err)
	}
	if kept.Tenant != tenant.Name || kept.TenantUIDs[0] != string(tenant.UID) || kept.BackupPolicy != policy.Name ||
		kept.RetentionPolicy != retention.Name || kept.DeletedAt.IsZero() || !kept.CreatedAt.Equal(tenant.CreationTimestamp.UTC()) {
		t.Errorf("kept-tenant record = %+v", kept)
	}
	// Kept: the namespace, the key Secret, the escrow copy and the backup are all still there.
	if err := k8s.Get(ctx, client.ObjectKey{Name: "tenant-envtest-kept"}, &corev1.Namespace{}); err != nil {
		t.Errorf("the retained namespace: %v", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); err != nil {
		t.Errorf("the data key Secret of a kept tenant: %v", err)
	}
	if left, err := catalog.List(ctx, store, tenant.Name, ""); err != nil || len(left) != 1 {
		t.Errorf("backups of a kept tenant: %d, %v", len(left), err)
	}

	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"tenancy.tenantops.io/erase":"true"}}}`))
	if err := k8s.Patch(ctx, record, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		if err := k8s.Get(ctx, recordKey, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("kept-tenant record still there: %v", err)
		}
		return nil
	})
	// The retained namespace goes too (envtest has no namespace controller to finish it).
	namespace := &corev1.Namespace{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "tenant-envtest-kept"}, namespace); err == nil && namespace.DeletionTimestamp.IsZero() {
		t.Error("the retained namespace is not being deleted after the erase request")
	}
	if r := expectErased(t, store, tenant, secret); !strings.Contains(r, key.ID) || !strings.Contains(r, `"reason": "ErasureRequested"`) || !strings.Contains(r, "20261202T000000Z-kkkkkk") {
		t.Errorf("erasure record:\n%s", r)
	}
}
