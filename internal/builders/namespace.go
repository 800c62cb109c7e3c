package builders

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// Annotations on the tenant's namespace that the ValidatingAdmissionPolicy
// tenant-operator-confine-tenant-traffic (config/policies) reads as namespaceObject. A policy
// can read the namespace of the object under review but not the Tenant: a cluster-scoped
// parameter cannot be chosen per namespace. Tenant users cannot change them: the built-in roles
// only read namespaces.
const (
	// AnnotationHostnames is spec.hostnames joined by commas: the only names the tenant's
	// Ingresses, Gateway API routes and Certificates may claim.
	AnnotationHostnames = "tenancy.tenantops.io/hostnames"
	// AnnotationAllowedServiceTypes is spec.firewall.allowedServiceTypes joined by commas; absent
	// when empty, and then NodePort and LoadBalancer Services are refused.
	AnnotationAllowedServiceTypes = "tenancy.tenantops.io/allowed-service-types"
)

// AnnotationTenantUID on a tenant's namespace is the UID of the Tenant whose data it holds.
const AnnotationTenantUID = "tenancy.tenantops.io/tenant-uid"

// AnnotationAdoptedUIDs on a Tenant lists, comma-separated, the UIDs of the deleted Tenants of the
// same name whose retained namespace, database and backups it adopted. The operator writes it.
const AnnotationAdoptedUIDs = "tenancy.tenantops.io/adopted-uids"

// TenantUIDs are the Tenant objects whose backups are this tenant's: its own and those it adopted.
func TenantUIDs(t *v1alpha1.Tenant) []string {
	var uids []string
	if t.UID != "" {
		uids = append(uids, string(t.UID))
	}
	for _, uid := range strings.Split(t.Annotations[AnnotationAdoptedUIDs], ",") {
		if uid = strings.TrimSpace(uid); uid != "" {
			uids = append(uids, uid)
		}
	}
	return uids
}

// Namespace is the tenant's namespace with Pod Security restricted enforced, audited and warned,
// annotated with what admission lets the tenant expose (AnnotationHostnames,
// AnnotationAllowedServiceTypes).
func Namespace(t *v1alpha1.Tenant) *corev1ac.NamespaceApplyConfiguration {
	annotations := map[string]string{AnnotationHostnames: strings.Join(t.Spec.Hostnames, ",")}
	if t.UID != "" {
		// Whose data the namespace holds: a later Tenant of the same name is another customer,
		// and adopts it only when told to (v1alpha1.AnnotationAdoptNamespace).
		annotations[AnnotationTenantUID] = string(t.UID)
	}
	if types := t.Spec.Firewall.AllowedServiceTypes; len(types) > 0 {
		names := make([]string, 0, len(types))
		for _, st := range types {
			names = append(names, string(st))
		}
		// Sorted: the same set in another order must not rewrite the namespace.
		slices.Sort(names)
		annotations[AnnotationAllowedServiceTypes] = strings.Join(names, ",")
	}
	return corev1ac.Namespace(NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
			"pod-security.kubernetes.io/audit":           "restricted",
			"pod-security.kubernetes.io/audit-version":   "latest",
			"pod-security.kubernetes.io/warn":            "restricted",
			"pod-security.kubernetes.io/warn-version":    "latest",
		})).
		WithAnnotations(annotations)
}

// minStorageHeadroom is the least storage quota left beside the database volume, for the
// tenant's own claims and for growing the database.
var minStorageHeadroom = resource.MustParse("10Gi")

// Object-count quota keys beyond the ones corev1 names. The count/<resource>.<group> form works
// for every resource, custom ones included.
const (
	QuotaConfigMaps   corev1.ResourceName = "count/configmaps"
	QuotaSecrets      corev1.ResourceName = "count/secrets"
	QuotaServices     corev1.ResourceName = "count/services"
	QuotaJobs         corev1.ResourceName = "count/jobs.batch"
	QuotaCronJobs     corev1.ResourceName = "count/cronjobs.batch"
	QuotaIngresses    corev1.ResourceName = "count/ingresses.networking.k8s.io"
	QuotaCertificates corev1.ResourceName = "count/certificates.cert-manager.io"
)

// exposedServicesQuota is the default of services.nodeports and services.loadbalancers when
// spec.firewall.allowedServiceTypes allows them.
var exposedServicesQuota = resource.MustParse("5")

// DefaultQuota applies to each resource spec.quota does not name. It leaves room for a small
// application beside its database, and bounds what one tenant can take from the others:
//
//   - compute: requests.cpu 4, requests.memory 8Gi, limits.cpu 8, limits.memory 16Gi;
//   - a node's local disk (container layers, logs, emptyDirs): requests.ephemeral-storage 10Gi,
//     limits.ephemeral-storage 20Gi;
//   - storage: requests.storage = database size + max(database size, 10Gi), so the volume can
//     double;
//   - etcd, through object counts (a ConfigMap or Secret can hold about 1 MiB, so 50 of each
//     bound them near 100 MiB): pods 50, persistentvolumeclaims 10, count/configmaps 50,
//     count/secrets 50, count/services 20, count/jobs.batch 50, count/cronjobs.batch 20,
//     count/ingresses.networking.k8s.io 20, count/certificates.cert-manager.io 20;
//   - services.loadbalancers 0 and services.nodeports 0, because traffic enters through the
//     ingress controller and its firewall; 5 each for the types spec.firewall.allowedServiceTypes
//     lists (a LoadBalancer Service takes node ports too, so it lifts both).
//
// TestOperatorObjectsFitDefaultQuota checks that the operator's own objects fit with room to
// spare; api/v1alpha1 documents the same list on spec.quota.
func DefaultQuota(t *v1alpha1.Tenant) corev1.ResourceList {
	storage := t.Spec.Database.Storage.Size.DeepCopy()
	headroom := t.Spec.Database.Storage.Size.DeepCopy()
	if headroom.Cmp(minStorageHeadroom) < 0 {
		headroom = minStorageHeadroom.DeepCopy()
	}
	storage.Add(headroom)
	quota := corev1.ResourceList{
		corev1.ResourceRequestsCPU:              resource.MustParse("4"),
		corev1.ResourceRequestsMemory:           resource.MustParse("8Gi"),
		corev1.ResourceLimitsCPU:                resource.MustParse("8"),
		corev1.ResourceLimitsMemory:             resource.MustParse("16Gi"),
		corev1.ResourceRequestsEphemeralStorage: resource.MustParse("10Gi"),
		corev1.ResourceLimitsEphemeralStorage:   resource.MustParse("20Gi"),
		corev1.ResourceRequestsStorage:          storage,
		corev1.ResourcePods:                     resource.MustParse("50"),
		corev1.ResourcePersistentVolumeClaims:   resource.MustParse("10"),
		QuotaConfigMaps:                         resource.MustParse("50"),
		QuotaSecrets:                            resource.MustParse("50"),
		QuotaServices:                           resource.MustParse("20"),
		QuotaJobs:                               resource.MustParse("50"),
		QuotaCronJobs:                           resource.MustParse("20"),
		QuotaIngresses:                          resource.MustParse("20"),
		QuotaCertificates:                       resource.MustParse("20"),
		corev1.ResourceServicesLoadBalancers:    resource.MustParse("0"),
		corev1.ResourceServicesNodePorts:        resource.MustParse("0"),
	}
	allowed := t.Spec.Firewall.AllowedServiceTypes
	if slices.Contains(allowed, corev1.ServiceTypeLoadBalancer) {
		quota[corev1.ResourceServicesLoadBalancers] = exposedServicesQuota.DeepCopy()
	}
	if slices.Contains(allowed, corev1.ServiceTypeLoadBalancer) || slices.Contains(allowed, corev1.ServiceTypeNodePort) {
		quota[corev1.ResourceServicesNodePorts] = exposedServicesQuota.DeepCopy()
	}
	return quota
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

// Container defaults of the LimitRange.
var (
	defaultContainerRequests = corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("100m"),
		corev1.ResourceMemory:           resource.MustParse("128Mi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("128Mi"),
	}
	defaultContainerLimits = corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("500m"),
		corev1.ResourceMemory:           resource.MustParse("512Mi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Gi"),
	}
)

// LimitRange gives containers without resources a default, so that pods still pass a quota on
// requests and limits: a quota on a resource refuses every pod whose containers do not all set
// it. The defaults apply per resource, so a container that sets only cpu and memory (the
// database's) gets the ephemeral-storage default. A container that requests more than a default
// limit must set its limit too: the default limit would otherwise fall below its request and the
// pod be refused.
func LimitRange(t *v1alpha1.Tenant) *corev1ac.LimitRangeApplyConfiguration {
	return corev1ac.LimitRange(LimitRangeName, NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(corev1ac.LimitRangeSpec().WithLimits(corev1ac.LimitRangeItem().
			WithType(corev1.LimitTypeContainer).
			WithDefaultRequest(defaultContainerRequests.DeepCopy()).
			WithDefault(defaultContainerLimits.DeepCopy())))
}
