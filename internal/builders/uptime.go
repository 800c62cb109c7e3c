package builders

import (
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// UptimeHistoryKey is the key of the encoded history in a tenant's uptime ConfigMap.
const UptimeHistoryKey = "history"

// UptimeHistoryName is the ConfigMap in the operator's namespace that keeps a tenant's uptime
// history across manager restarts.
func UptimeHistoryName(t *v1alpha1.Tenant) string { return "tenant-" + t.Name + "-uptime" }

// UptimeHistory is that ConfigMap, holding the encoded history.
func UptimeHistory(t *v1alpha1.Tenant, opts Options, history []byte) *corev1ac.ConfigMapApplyConfiguration {
	opts = opts.withDefaults()
	return corev1ac.ConfigMap(UptimeHistoryName(t), opts.OperatorNamespace).
		WithLabels(TenantLabels(t)).
		WithBinaryData(map[string][]byte{UptimeHistoryKey: history})
}
