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

// DefaultQuota applies to a tenant without spec.quota: room for a small application and its
// database, no load balancers or node ports (traffic enters through the ingress controller).
func DefaultQuota() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceRequestsCPU:              resource.MustParse("4"),
		corev1.ResourceRequestsMemory:           resource.MustParse("8Gi"),
		corev1.ResourceLimitsCPU:                resource.MustParse("8"),
		corev1.ResourceLimitsMemory:             resource.MustParse("16Gi"),
		corev1.ResourcePods:                     resource.MustParse("50"),
		corev1.ResourcePersistentVolumeClaims:   resource.MustParse("10"),
		corev1.ResourceServicesLoadBalancers:    resource.MustParse("0"),
		corev1.ResourceServicesNodePorts:        resource.MustParse("0"),
		corev1.ResourceName("requests.storage"): resource.MustParse("100Gi"),
	}
}

// ResourceQuota caps the namespace with spec.quota, or DefaultQuota when it is empty. The storage
// quota is raised to fit the database volume, so the database can always get its claim.
func ResourceQuota(t *v1alpha1.Tenant) *corev1ac.ResourceQuotaApplyConfiguration {
	hard := DefaultQuota()
	if len(t.Spec.Quota) > 0 {
		hard = t.Spec.Quota.DeepCopy()
	}
	if storage, ok := hard[corev1.ResourceRequestsStorage]; ok && storage.Cmp(t.Spec.Database.Storage.Size) < 0 {
		hard[corev1.ResourceRequestsStorage] = t.Spec.Database.Storage.Size.DeepCopy()
	}
	return corev1ac.ResourceQuota(QuotaName, NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(corev1ac.ResourceQuotaSpec().WithHard(hard))
}

// LimitRange gives containers without resources a default, so that pods still fit the quota.
func LimitRange(t *v1alpha1.Tenant) *corev1ac.LimitRangeApplyConfiguration {
	return corev1ac.LimitRange(LimitRangeName, NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(corev1ac.LimitRangeSpec().WithLimits(corev1ac.LimitRangeItem().
			WithType(corev1.LimitTypeContainer).
			WithDefaultRequest(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}).
			WithDefault(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")})))
}
