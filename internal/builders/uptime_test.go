package builders

import (
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

func TestUptimeHistory(t *testing.T) {
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme"}}
	tests := []struct {
		name, wantNamespace string
		opts                Options
	}{
		{"in the operator's namespace", "ops", Options{OperatorNamespace: "ops"}},
		{"in the default namespace when none is set", "tenant-operator-system", Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cm := typed[corev1.ConfigMap](t, UptimeHistory(tenant, tt.opts, []byte{1, 2, 3}))
			if cm.Name != "tenant-acme-uptime" || cm.Name != UptimeHistoryName(tenant) || cm.Namespace != tt.wantNamespace {
				t.Errorf("ConfigMap %s/%s, want %s/tenant-acme-uptime", cm.Namespace, cm.Name, tt.wantNamespace)
			}
			// Labelled as the tenant's, so the manager caches it and deleting the tenant finds it.
			if cm.Labels[LabelTenant] != "acme" || cm.Labels[LabelManagedBy] != ManagedByValue {
				t.Errorf("labels %v", cm.Labels)
			}
			if !bytes.Equal(cm.BinaryData[UptimeHistoryKey], []byte{1, 2, 3}) || len(cm.Data) != 0 {
				t.Errorf("binaryData %v, data %v", cm.BinaryData, cm.Data)
			}
		})
	}
}
