package builders

import (
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

func TestIngress(t *testing.T) {
	wildcard := minimal()
	wildcard.Spec.Hostnames = []string{"shop.example.com", "*.shop.example.com"}
	custom := minimal()
	custom.Spec.Route = v1alpha1.RouteSpec{Kind: v1alpha1.RouteKindIngress, ServiceName: "frontend", Port: 8080}
	tests := []struct {
		name      string
		tenant    *v1alpha1.Tenant
		class     string
		wantHosts []string
		service   string
		port      int32
	}{
		// A Tenant stored before spec.route existed has an empty RouteSpec: the API's defaults apply.
		{"defaults, cluster's default class", minimal(), "", []string{"minimal.example.com"}, "web", 80},
		{"operator's class", minimal(), "nginx", []string{"minimal.example.com"}, "web", 80},
		{"every hostname, wildcard included", wildcard, "", []string{"shop.example.com", "*.shop.example.com"}, "web", 80},
		{"the tenant's service and port", custom, "", []string{"minimal.example.com"}, "frontend", 8080},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.IngressClassName = tt.class
			ing := typed[networkingv1.Ingress](t, Ingress(tt.tenant, opts))
			if ing.Name != TenantRouteName(tt.tenant) || ing.Namespace != NamespaceName(tt.tenant) || ing.Labels[LabelTenant] != tt.tenant.Name ||
				ing.Labels[LabelManagedBy] != ManagedByValue {
				t.Errorf("metadata = %s/%s %v", ing.Namespace, ing.Name, ing.Labels)
			}
			if got := ptr.Deref(ing.Spec.IngressClassName, ""); got != tt.class {
				t.Errorf("ingressClassName = %q, want %q", got, tt.class)
			}
			if ing.Spec.DefaultBackend != nil {
				t.Error("a default backend answers for every hostname; the tenant's route must not have one")
			}
			var hosts []string
			for _, r := range ing.Spec.Rules {
				hosts = append(hosts, r.Host)
				if r.HTTP == nil || len(r.HTTP.Paths) != 1 {
					t.Fatalf("rule %s: paths %+v, want one", r.Host, r.HTTP)
				}
				p := r.HTTP.Paths[0]
				if p.Path != "/" || ptr.Deref(p.PathType, "") != networkingv1.PathTypePrefix || p.Backend.Service == nil ||
					p.Backend.Service.Name != tt.service || p.Backend.Service.Port.Number != tt.port {
					t.Errorf("rule %s: path %+v, want / (Prefix) to %s:%d", r.Host, p, tt.service, tt.port)
				}
			}
			if !slices.Equal(hosts, tt.wantHosts) {
				t.Errorf("rule hosts = %v, want %v", hosts, tt.wantHosts)
			}
			if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != TenantCertificateSecretName(tt.tenant) || !slices.Equal(ing.Spec.TLS[0].Hosts, tt.wantHosts) {
				t.Errorf("tls = %+v, want %v from Secret %s", ing.Spec.TLS, tt.wantHosts, TenantCertificateSecretName(tt.tenant))
			}
			if HTTPRoute(tt.tenant) != nil || GatewayReferenceGrant(tt.tenant) != nil {
				t.Error("an Ingress tenant got an HTTPRoute or ReferenceGrant too")
			}
		})
	}
}

func TestHTTPRoute(t *testing.T) {
	gateway := func(section string) *v1alpha1.Tenant {
		tenant := full()
		tenant.Spec.Route = v1alpha1.RouteSpec{Kind: v1alpha1.RouteKindHTTPRoute, ServiceName: "app", Port: 8443,
			GatewayRef: &v1alpha1.GatewayReference{Name: "public", Namespace: "gateways", SectionName: section}}
		return tenant
	}
	for _, section := range []string{"", "https"} {
		t.Run("section "+section, func(t *testing.T) {
			tenant := gateway(section)
			if Ingress(tenant, testOptions()) != nil {
				t.Error("an HTTPRoute tenant got an Ingress too")
			}
			route := typed[gwv1.HTTPRoute](t, HTTPRoute(tenant))
			if route.APIVersion != "gateway.networking.k8s.io/v1" || route.Name != TenantRouteName(tenant) || route.Namespace != NamespaceName(tenant) ||
				route.Labels[LabelTenant] != tenant.Name {
				t.Errorf("metadata = %s %s/%s %v", route.APIVersion, route.Namespace, route.Name, route.Labels)
			}
			if len(route.Spec.ParentRefs) != 1 {
				t.Fatalf("parentRefs = %+v, want the Gateway", route.Spec.ParentRefs)
			}
			parent := route.Spec.ParentRefs[0]
			if parent.Name != "public" || ptr.Deref(parent.Namespace, "") != "gateways" || ptr.Deref(parent.Kind, "") != "Gateway" ||
				ptr.Deref(parent.Group, "") != gwv1.GroupName || string(ptr.Deref(parent.SectionName, "")) != section {
				t.Errorf("parentRef = %+v, want Gateway gateways/public section %q", parent, section)
			}
			var hosts []string
			for _, h := range route.Spec.Hostnames {
				hosts = append(hosts, string(h))
			}
			if !slices.Equal(hosts, tenant.Spec.Hostnames) {
				t.Errorf("hostnames = %v, want %v", hosts, tenant.Spec.Hostnames)
			}
			if len(route.Spec.Rules) != 1 || len(route.Spec.Rules[0].BackendRefs) != 1 {
				t.Fatalf("rules = %+v, want one rule with one backend", route.Spec.Rules)
			}
			backend := route.Spec.Rules[0].BackendRefs[0]
			if backend.Name != "app" || ptr.Deref(backend.Port, 0) != 8443 || ptr.Deref(backend.Kind, "") != "Service" || backend.Namespace != nil {
				t.Errorf("backend = %+v, want Service app:8443 in the tenant's namespace", backend.BackendObjectReference)
			}

			grant := typed[gwv1beta1.ReferenceGrant](t, GatewayReferenceGrant(tenant))
			if grant.APIVersion != "gateway.networking.k8s.io/v1beta1" || grant.Namespace != NamespaceName(tenant) {
				t.Errorf("grant %s in %s", grant.APIVersion, grant.Namespace)
			}
			if len(grant.Spec.From) != 1 || grant.Spec.From[0].Kind != "Gateway" || grant.Spec.From[0].Namespace != "gateways" {
				t.Errorf("grant from = %+v, want Gateways of namespace gateways only", grant.Spec.From)
			}
			if len(grant.Spec.To) != 1 || grant.Spec.To[0].Kind != "Secret" || grant.Spec.To[0].Group != "" ||
				ptr.Deref(grant.Spec.To[0].Name, "") != gwv1.ObjectName(TenantCertificateSecretName(tenant)) {
				t.Errorf("grant to = %+v, want the Secret %s alone", grant.Spec.To, TenantCertificateSecretName(tenant))
			}
		})
	}
}

func TestRouteNone(t *testing.T) {
	tenant := minimal()
	tenant.Spec.Route.Kind = v1alpha1.RouteKindNone
	if Ingress(tenant, testOptions()) != nil || HTTPRoute(tenant) != nil || GatewayReferenceGrant(tenant) != nil {
		t.Fatal("kind None built a route")
	}
}
