package builders

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

func TestNamespaceAnnotationsForAdmission(t *testing.T) {
	tests := []struct {
		name          string
		hostnames     []string
		serviceTypes  []corev1.ServiceType
		wantHostnames string
		wantTypes     string // "" means the annotation is absent
	}{
		{"one hostname, no exposed types", []string{"a.example.com"}, nil, "a.example.com", ""},
		{"hostnames in spec order, wildcard kept", []string{"b.example.com", "*.a.example.com"}, nil, "b.example.com,*.a.example.com", ""},
		{"types sorted, so reordering writes nothing", []string{"a.example.com"},
			[]corev1.ServiceType{corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer}, "a.example.com", "LoadBalancer,NodePort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := minimal()
			tenant.Spec.Hostnames = tt.hostnames
			tenant.Spec.Firewall.AllowedServiceTypes = tt.serviceTypes
			ns := typed[corev1.Namespace](t, Namespace(tenant))
			if got := ns.Annotations[AnnotationHostnames]; got != tt.wantHostnames {
				t.Errorf("%s = %q, want %q", AnnotationHostnames, got, tt.wantHostnames)
			}
			got, ok := ns.Annotations[AnnotationAllowedServiceTypes]
			if got != tt.wantTypes || ok != (tt.wantTypes != "") {
				t.Errorf("%s = %q (present %v), want %q", AnnotationAllowedServiceTypes, got, ok, tt.wantTypes)
			}
		})
	}
}

// TestQuota checks the quota's defaults and that spec.quota replaces them key by key: naming
// one resource keeps every other default, object counts and ephemeral storage included.
func TestQuota(t *testing.T) {
	withQuota := func(q corev1.ResourceList) *v1alpha1.Tenant {
		tenant := minimal()
		tenant.Spec.Quota = q
		return tenant
	}
	withTypes := func(types ...corev1.ServiceType) *v1alpha1.Tenant {
		tenant := minimal()
		tenant.Spec.Firewall.AllowedServiceTypes = types
		return tenant
	}
	defaults := map[corev1.ResourceName]string{
		corev1.ResourceRequestsCPU: "4", corev1.ResourceRequestsMemory: "8Gi",
		corev1.ResourceLimitsCPU: "8", corev1.ResourceLimitsMemory: "16Gi",
		corev1.ResourceRequestsEphemeralStorage: "10Gi", corev1.ResourceLimitsEphemeralStorage: "20Gi",
		// 1Gi database + the 10Gi least headroom.
		corev1.ResourceRequestsStorage: "11Gi",
		corev1.ResourcePods:            "50", corev1.ResourcePersistentVolumeClaims: "10",
		QuotaConfigMaps: "50", QuotaSecrets: "50", QuotaServices: "20", QuotaJobs: "50", QuotaCronJobs: "20",
		QuotaIngresses: "20", QuotaCertificates: "20",
		corev1.ResourceServicesLoadBalancers: "0", corev1.ResourceServicesNodePorts: "0",
	}
	tests := []struct {
		name   string
		tenant *v1alpha1.Tenant
		want   map[corev1.ResourceName]string // differences from defaults
	}{
		{"defaults", minimal(), nil},
		{"spec.quota replaces one count, the others stay", withQuota(corev1.ResourceList{QuotaConfigMaps: resource.MustParse("5")}),
			map[corev1.ResourceName]string{QuotaConfigMaps: "5"}},
		{"spec.quota replaces ephemeral storage", withQuota(corev1.ResourceList{corev1.ResourceLimitsEphemeralStorage: resource.MustParse("50Gi")}),
			map[corev1.ResourceName]string{corev1.ResourceLimitsEphemeralStorage: "50Gi"}},
		{"spec.quota adds a resource without a default", withQuota(corev1.ResourceList{"count/deployments.apps": resource.MustParse("7")}),
			map[corev1.ResourceName]string{"count/deployments.apps": "7"}},
		{"from spec, storage raised to the database", full(),
			map[corev1.ResourceName]string{corev1.ResourceRequestsCPU: "2", corev1.ResourceRequestsStorage: "200Gi"}},
		{"NodePort allowed lifts node ports only", withTypes(corev1.ServiceTypeNodePort),
			map[corev1.ResourceName]string{corev1.ResourceServicesNodePorts: "5"}},
		{"LoadBalancer allowed lifts both: it takes node ports too", withTypes(corev1.ServiceTypeLoadBalancer),
			map[corev1.ResourceName]string{corev1.ResourceServicesLoadBalancers: "5", corev1.ResourceServicesNodePorts: "5"}},
		{"spec.quota wins over an allowed type", func() *v1alpha1.Tenant {
			tenant := withTypes(corev1.ServiceTypeLoadBalancer)
			tenant.Spec.Quota = corev1.ResourceList{corev1.ResourceServicesLoadBalancers: resource.MustParse("1")}
			return tenant
		}(), map[corev1.ResourceName]string{corev1.ResourceServicesLoadBalancers: "1", corev1.ResourceServicesNodePorts: "5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := map[corev1.ResourceName]string{}
			for k, v := range defaults {
				want[k] = v
			}
			for k, v := range tt.want {
				want[k] = v
			}
			hard := typed[corev1.ResourceQuota](t, ResourceQuota(tt.tenant)).Spec.Hard
			if len(hard) != len(want) {
				t.Errorf("the quota has %d resources, want %d: %v", len(hard), len(want), hard)
			}
			for name, w := range want {
				if got, ok := hard[name]; !ok || got.Cmp(resource.MustParse(w)) != 0 {
					t.Errorf("%s = %s (present %v), want %s", name, got.String(), ok, w)
				}
			}
		})
	}
}

// TestLimitRangeDefaultsEphemeralStorage: a container that sets no ephemeral storage still passes
// a quota on it, because the LimitRange gives it a request and a limit.
func TestLimitRangeDefaultsEphemeralStorage(t *testing.T) {
	lr := typed[corev1.LimitRange](t, LimitRange(minimal()))
	if len(lr.Spec.Limits) != 1 || lr.Spec.Limits[0].Type != corev1.LimitTypeContainer {
		t.Fatalf("limits = %+v, want one for containers", lr.Spec.Limits)
	}
	item := lr.Spec.Limits[0]
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		req, lim := item.DefaultRequest[name], item.Default[name]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("%s: default request %s, default limit %s; want both, request <= limit", name, req.String(), lim.String())
		}
	}
}

// TestOperatorObjectsFitDefaultQuota counts what the operator itself puts in a tenant's
// namespace against the default quota, as the API server's quota admission would after the
// LimitRange's defaults: the database pod (its containers' requests and limits, ephemeral storage
// from the LimitRange), its volume claim, the Services, ConfigMaps, Secrets (cert-manager's two
// included), Certificates and the route. Each must use at most half of its default, so a tenant's
// application has room beside them.
func TestOperatorObjectsFitDefaultQuota(t *testing.T) {
	for _, tenant := range []*v1alpha1.Tenant{minimal(), full()} {
		t.Run(tenant.Name, func(t *testing.T) {
			opts := testOptions()
			tenant = tenant.DeepCopy()
			tenant.Spec.Quota = nil // the defaults, not full()'s overrides
			used := corev1.ResourceList{}
			add := func(name corev1.ResourceName, q resource.Quantity) {
				sum := used[name]
				sum.Add(q)
				used[name] = sum
			}
			one := resource.MustParse("1")
			// Kubernetes' root CA publisher puts kube-root-ca.crt in every namespace; cert-manager
			// writes the Secrets of the two Certificates.
			add(QuotaConfigMaps, one)
			add(QuotaSecrets, one)
			add(QuotaSecrets, one)
			for _, obj := range []any{
				DatabaseSecret(tenant, "x"), DatabaseBackupSecret(tenant, "x"), DatabaseProbeSecret(tenant, "x"), DatabaseConfigMap(tenant), DatabaseCAConfigMap(tenant, "x"),
				DatabaseService(tenant), DatabaseHeadlessService(tenant), DatabaseCertificate(tenant, opts), TenantCertificate(tenant, opts),
				Ingress(tenant, opts),
			} {
				switch kind := typed[metav1.TypeMeta](t, obj).Kind; kind {
				case "Secret":
					add(QuotaSecrets, one)
				case "ConfigMap":
					add(QuotaConfigMaps, one)
				case "Service":
					add(QuotaServices, one)
				case "Certificate":
					add(QuotaCertificates, one)
				case "Ingress":
					add(QuotaIngresses, one)
				default:
					t.Fatalf("unexpected kind %q", kind)
				}
			}
			sts := typed[appsv1.StatefulSet](t, DatabaseStatefulSet(tenant, opts))
			limits := typed[corev1.LimitRange](t, LimitRange(tenant)).Spec.Limits[0]
			replicas := int64(*sts.Spec.Replicas)
			add(corev1.ResourcePods, *resource.NewQuantity(replicas, resource.DecimalSI))
			for _, claim := range sts.Spec.VolumeClaimTemplates {
				add(corev1.ResourcePersistentVolumeClaims, *resource.NewQuantity(replicas, resource.DecimalSI))
				add(corev1.ResourceRequestsStorage, claim.Spec.Resources.Requests[corev1.ResourceStorage])
			}
			for _, c := range append(sts.Spec.Template.Spec.InitContainers, sts.Spec.Template.Spec.Containers...) {
				requests, lims := withLimitRangeDefaults(c.Resources, limits)
				for name, q := range requests {
					add("requests."+name, q)
				}
				for name, q := range lims {
					add("limits."+name, q)
				}
			}

			hard := typed[corev1.ResourceQuota](t, ResourceQuota(tenant)).Spec.Hard
			for name, u := range used {
				h, ok := hard[name]
				if !ok {
					continue // not capped
				}
				doubled := u.DeepCopy()
				doubled.Add(u)
				if name == corev1.ResourceRequestsStorage {
					doubled = u // the database volume itself; the quota's headroom is its own rule
				}
				if doubled.Cmp(h) > 0 {
					t.Errorf("the operator's objects use %s of %s, more than half its default %s", u.String(), name, h.String())
				}
			}
			// The check above must see the database pod's ephemeral storage, or it proves nothing.
			if eph := used[corev1.ResourceLimitsEphemeralStorage]; eph.Cmp(resource.MustParse("2Gi")) != 0 {
				t.Errorf("limits.ephemeral-storage of the database pod = %s, want 2Gi (two containers at the LimitRange default)", eph.String())
			}
			for _, name := range []corev1.ResourceName{QuotaSecrets, QuotaConfigMaps, QuotaServices, QuotaCertificates, QuotaIngresses, corev1.ResourcePods} {
				if _, ok := used[name]; !ok {
					t.Errorf("counted no %s", name)
				}
			}
		})
	}
}

// withLimitRangeDefaults is what the API server's LimitRanger admission gives a container: per
// resource, an unset limit takes the default limit, and an unset request the default request (or
// the limit, when there is no default request).
func withLimitRangeDefaults(r corev1.ResourceRequirements, item corev1.LimitRangeItem) (requests, limits corev1.ResourceList) {
	requests, limits = r.Requests.DeepCopy(), r.Limits.DeepCopy()
	if requests == nil {
		requests = corev1.ResourceList{}
	}
	if limits == nil {
		limits = corev1.ResourceList{}
	}
	for name, q := range item.Default {
		if _, ok := limits[name]; !ok {
			limits[name] = q.DeepCopy()
		}
	}
	for name, q := range item.DefaultRequest {
		if _, ok := requests[name]; !ok {
			requests[name] = q.DeepCopy()
		}
	}
	for name, q := range limits {
		if _, ok := requests[name]; !ok {
			requests[name] = q.DeepCopy()
		}
	}
	return requests, limits
}

// TestQuotaDocumentedDefaults keeps the API documentation of spec.quota honest: every default
// resource and value DefaultQuota sets appears in the Go doc comment of TenantSpec.Quota (from
// which the CRD's description and docs/api-reference.md are generated).
func TestQuotaDocumentedDefaults(t *testing.T) {
	doc := quotaDoc(t)
	for name, q := range DefaultQuota(minimal()) {
		if name == corev1.ResourceRequestsStorage {
			continue // a formula, documented as one
		}
		if want := fmt.Sprintf("%s %s", name, q.String()); !strings.Contains(doc, want) {
			t.Errorf("the doc comment of spec.quota does not say %q", want)
		}
	}
}

// quotaDoc is the doc comment of TenantSpec.Quota in api/v1alpha1/tenant_types.go.
func quotaDoc(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "api", "v1alpha1", "tenant_types.go"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "Quota corev1.ResourceList") })
	if i < 0 {
		t.Fatal("TenantSpec.Quota not found in tenant_types.go")
	}
	var doc []string
	for j := i - 1; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "//"); j-- {
		doc = append([]string{strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(lines[j]), "//"))}, doc...)
	}
	return strings.Join(doc, " ")
}
