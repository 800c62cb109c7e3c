package builders

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/internal/datakey"
)

func TestDataKeySecret(t *testing.T) {
	tenant := full()
	key, err := datakey.Generate(backupPolicy().Spec.Encryption.Recipients)
	if err != nil {
		t.Fatal(err)
	}
	var older []string
	for i := range 25 {
		older = append(older, fmt.Sprintf("%032x", i))
	}
	created := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		previous []string
		wantIDs  int
	}{
		{name: "first key", wantIDs: 1},
		{name: "after a rotation, the old ID is kept", previous: older[:1], wantIDs: 2},
		{name: "the current key listed again is not doubled", previous: []string{key.ID, older[0]}, wantIDs: 2},
		{name: "many rotations keep the newest 20", previous: older, wantIDs: maxDataKeyIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secret := typed[corev1.Secret](t, DataKeySecret(tenant, backupPolicy(), key, tc.previous, created, testOptions()))
			if secret.Namespace != testOptions().OperatorNamespace || secret.Name != DataKeySecretNameFor("acme", string(tenant.UID)) {
				t.Errorf("Secret %s/%s, want the operator's namespace and a name with the tenant's UID", secret.Namespace, secret.Name)
			}
			if secret.Labels[LabelTenantUID] != string(tenant.UID) || secret.Labels[LabelComponent] != ComponentDataKey || secret.Labels[LabelManagedBy] != ManagedByValue {
				t.Errorf("labels %v", secret.Labels)
			}
			for _, v := range secret.Data {
				if bytes.Contains(v, []byte("AGE-SECRET-KEY")) {
					t.Fatal("the Secret holds the identity in the clear")
				}
			}
			ids := DataKeyIDs(secret)
			if len(ids) != tc.wantIDs || ids[0] != key.ID {
				t.Errorf("IDs %v: want %d, the current key first", ids, tc.wantIDs)
			}
			got, err := DataKeyOf(secret)
			if err != nil || got.ID != key.ID || got.Recipient != key.Recipient || !bytes.Equal(got.Wrapped, key.Wrapped) || got.WrappedTo != key.WrappedTo {
				t.Errorf("DataKeyOf = %+v, %v; want the key back", got, err)
			}
			if secret.Annotations[AnnotationDataKeyCreated] != "2026-12-02T12:00:00Z" {
				t.Errorf("created-at %q", secret.Annotations[AnnotationDataKeyCreated])
			}
		})
	}
	if _, err := DataKeyOf(&corev1.Secret{}); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Errorf("DataKeyOf an empty Secret = %v", err)
	}
}

func TestKeptTenantRecordRoundTrips(t *testing.T) {
	k := KeptTenant{Tenant: "acme", TenantUIDs: []string{"uid-2", "uid-1"}, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		DeletedAt: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), BackupPolicy: "standard", RetentionPolicy: "contract", TimeZone: "Europe/Amsterdam"}
	ac, err := KeptTenantConfigMap(k, Options{OperatorNamespace: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if *ac.Name != "kept-acme-uid-2" || *ac.Namespace != "ops" || ac.Labels[LabelComponent] != ComponentKeptTenant || ac.Labels[LabelTenantUID] != "uid-2" || ac.Labels[LabelManagedBy] != ManagedByValue {
		t.Errorf("record ConfigMap %s/%s labels %v", *ac.Namespace, *ac.Name, ac.Labels)
	}
	got, err := KeptTenantOf(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: *ac.Name}, Data: ac.Data})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, k) {
		t.Errorf("read back %+v, want %+v", got, k)
	}
	for name, data := range map[string]string{"not JSON": "{", "no UID": `{"tenant":"acme","backupPolicy":"p","deletedAt":"2026-12-02T10:00:00Z"}`} {
		if _, err := KeptTenantOf(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept-x"}, Data: map[string]string{KeptTenantKey: data}}); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
	if _, err := KeptTenantConfigMap(KeptTenant{Tenant: "acme", TenantUIDs: []string{"u"}}, Options{}); err == nil {
		t.Error("a record without a BackupPolicy was built")
	}
}
