package builders

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// Namespace is the tenant's namespace with Pod Security restricted enforced, audited and warned.
func Namespace(t *v1alpha1.Tenant) *corev1ac.NamespaceApplyConfiguration {
	return corev1ac.Namespace(NamespaceName(t)).WithLabels(labelsWith(t, map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/audit":           "restricted",
		"pod-security.kubernetes.io/audit-version":   "latest",
		"pod-security.kubernetes.io/warn":            "restricted",
		"pod-security.kubernetes.io/warn-version":    "latest",
	}))
}

// minStorageHeadroom is the least storage quota left beside the database volume, for the
// tenant's own claims and for growing the database.
var minStorageHeadroom = resource.MustParse("10Gi")

// DefaultQuota applies to each resource spec.quota does not name. It leaves room for a small
// application beside its database and forbids load balancers and node ports, because traffic
// enters through the ingress controller and its firewall:
//
//	requests.cpu 4, requests.memory 8Gi, limits.cpu 8, limits.memory 16Gi, pods 50,
//	persistentvolumeclaims 10, services.loadbalancers 0, services.nodeports 0,
//	requests.storage = database size + max(database size, 10Gi), so the volume can double.
func DefaultQuota(t *v1alpha1.Tenant) corev1.ResourceList {
	storage := t.Spec.Database.Storage.Size.DeepCopy()
	headroom := t.Spec.Database.Storage.Size.DeepCopy()
	if headroom.Cmp(minStorageHeadroom) < 0 {
		headroom = minStorageHeadroom.DeepCopy()
	}
	storage.Add(headroom)
	return corev1.ResourceList{
		corev1.ResourceRequestsCPU:            resource.MustParse("4"),
		corev1.ResourceRequestsMemory:         resource.MustParse("8Gi"),
		corev1.ResourceLimitsCPU:              resource.MustParse("8"),
		corev1.ResourceLimitsMemory:           resource.MustParse("16Gi"),
		corev1.ResourcePods:                   resource.MustParse("50"),
		corev1.ResourcePersistentVolumeClaims: resource.MustParse("10"),
		corev1.ResourceServicesLoadBalancers:  resource.MustParse("0"),
		corev1.ResourceServicesNodePorts:      resource.MustParse("0"),
		corev1.ResourceRequestsStorage:        storage,
	}
}

// ResourceQuota caps the namespace: spec.quota for the resources it names, DefaultQuota for the
// rest, so naming one resource does not lift the others (load balancers above all). A storage
// quota below the database volume is raised to it: the database is part of the tenant, and a
// quota that refuses its claim would leave the tenant without one.
func ResourceQuota(t *v1alpha1.Tenant) *corev1ac.ResourceQuotaApplyConfiguration {
	hard := DefaultQuota(t)
	for name, q := range t.Spec.Quota {
		hard[name] = q.DeepCopy()
	}
	if storage := hard[corev1.ResourceRequestsStorage]; storage.Cmp(t.Spec.Database.Storage.Size) < 0 {
		hard[corev1.ResourceRequestsStorage] = t.Spec.Database.Storage.Size.DeepCopy()
	}
	return corev1ac.ResourceQuota(QuotaName, NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(corev1ac.ResourceQuotaSpec().WithHard(hard))
}

// LimitRange gives containers without resources a default, so that pods still pass a quota on
// requests and limits. A container that requests more than a default limit must set its limit
// too: the default limit would otherwise fall below its request and the pod be refused.
func LimitRange(t *v1alpha1.Tenant) *corev1ac.LimitRangeApplyConfiguration {
	return corev1ac.LimitRange(LimitRangeName, NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(corev1ac.LimitRangeSpec().WithLimits(corev1ac.LimitRangeItem().
			WithType(corev1.LimitTypeContainer).
			WithDefaultRequest(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}).
			WithDefault(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")})))
}
