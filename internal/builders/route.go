package builders

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"
	gwv1beta1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1beta1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// Defaults of spec.route, as the API defaults them; a Tenant stored before spec.route existed
// reads them through RouteFor.
const (
	DefaultRouteServiceName       = "web"
	DefaultRoutePort        int32 = 80
)

// TenantRouteName names the tenant's Ingress or HTTPRoute. The namespace already tells tenants
// apart, so the name is the same in each.
func TenantRouteName(*v1alpha1.Tenant) string { return "tenant-route" }

// TenantGatewayGrantName names the ReferenceGrant that lets the Gateway of spec.route.gatewayRef
// read the tenant's certificate Secret.
func TenantGatewayGrantName(*v1alpha1.Tenant) string { return "tenant-tls-from-gateway" }

// RouteFor is spec.route with its defaults filled in: kind Ingress, Service web, port 80.
func RouteFor(t *v1alpha1.Tenant) v1alpha1.RouteSpec {
	r := *t.Spec.Route.DeepCopy()
	if r.Kind == "" {
		r.Kind = v1alpha1.RouteKindIngress
	}
	if r.ServiceName == "" {
		r.ServiceName = DefaultRouteServiceName
	}
	if r.Port == 0 {
		r.Port = DefaultRoutePort
	}
	return r
}

// Ingress is the tenant's route as a networking.k8s.io/v1 Ingress, or nil unless spec.route.kind
// is Ingress: one rule per hostname (wildcards included, which Ingress allows), every path to
// spec.route.serviceName:port in the tenant's namespace, and TLS for every hostname from the
// tenant's certificate (TenantCertificateSecretName, which TenantCertificate fills). The class is
// Options.IngressClassName, or the cluster's default class when empty. No default backend: that
// would answer for every hostname the ingress controller does not know, not only the tenant's.
func Ingress(t *v1alpha1.Tenant, opts Options) *networkingv1ac.IngressApplyConfiguration {
	route := RouteFor(t)
	if route.Kind != v1alpha1.RouteKindIngress {
		return nil
	}
	backend := networkingv1ac.IngressBackend().WithService(networkingv1ac.IngressServiceBackend().
		WithName(route.ServiceName).
		WithPort(networkingv1ac.ServiceBackendPort().WithNumber(route.Port)))
	spec := networkingv1ac.IngressSpec().
		WithTLS(networkingv1ac.IngressTLS().
			WithHosts(t.Spec.Hostnames...).
			WithSecretName(TenantCertificateSecretName(t)))
	if opts.IngressClassName != "" {
		spec.WithIngressClassName(opts.IngressClassName)
	}
	for _, host := range t.Spec.Hostnames {
		spec.WithRules(networkingv1ac.IngressRule().
			WithHost(host).
			WithHTTP(networkingv1ac.HTTPIngressRuleValue().WithPaths(networkingv1ac.HTTPIngressPath().
				WithPath("/").
				WithPathType(networkingv1.PathTypePrefix).
				WithBackend(backend))))
	}
	return networkingv1ac.Ingress(TenantRouteName(t), NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(spec)
}

// HTTPRoute is the tenant's route as a Gateway API HTTPRoute, or nil unless spec.route.kind is
// HTTPRoute: the tenant's hostnames, attached to spec.route.gatewayRef (and its sectionName when
// set), every path to spec.route.serviceName:port. TLS is the Gateway's: its listeners terminate
// it, and may serve the tenant's certificate through GatewayReferenceGrant.
func HTTPRoute(t *v1alpha1.Tenant) *gwv1ac.HTTPRouteApplyConfiguration {
	route := RouteFor(t)
	if route.Kind != v1alpha1.RouteKindHTTPRoute || route.GatewayRef == nil {
		return nil
	}
	parent := gwv1ac.ParentReference().
		WithGroup(gwv1.GroupName).
		WithKind("Gateway").
		WithNamespace(gwv1.Namespace(route.GatewayRef.Namespace)).
		WithName(gwv1.ObjectName(route.GatewayRef.Name))
	if route.GatewayRef.SectionName != "" {
		parent.WithSectionName(gwv1.SectionName(route.GatewayRef.SectionName))
	}
	hostnames := make([]gwv1.Hostname, 0, len(t.Spec.Hostnames))
	for _, h := range t.Spec.Hostnames {
		hostnames = append(hostnames, gwv1.Hostname(h))
	}
	return gwv1ac.HTTPRoute(TenantRouteName(t), NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(gwv1ac.HTTPRouteSpec().
			WithParentRefs(parent).
			WithHostnames(hostnames...).
			WithRules(gwv1ac.HTTPRouteRule().
				WithMatches(gwv1ac.HTTPRouteMatch().WithPath(gwv1ac.HTTPPathMatch().
					WithType(gwv1.PathMatchPathPrefix).
					WithValue("/"))).
				WithBackendRefs(gwv1ac.HTTPBackendRef().
					WithGroup("").
					WithKind("Service").
					WithName(gwv1.ObjectName(route.ServiceName)).
					WithPort(route.Port))))
}

// GatewayReferenceGrant lets Gateways in the namespace of spec.route.gatewayRef read the tenant's
// certificate Secret and nothing else, so their HTTPS listeners can name it in certificateRefs;
// nil unless spec.route.kind is HTTPRoute. v1beta1, which every Gateway API release since 0.6
// serves (v1 only since 1.5).
func GatewayReferenceGrant(t *v1alpha1.Tenant) *gwv1beta1ac.ReferenceGrantApplyConfiguration {
	route := RouteFor(t)
	if route.Kind != v1alpha1.RouteKindHTTPRoute || route.GatewayRef == nil {
		return nil
	}
	return gwv1beta1ac.ReferenceGrant(TenantGatewayGrantName(t), NamespaceName(t)).
		WithLabels(TenantLabels(t)).
		WithSpec(gwv1ac.ReferenceGrantSpec().
			WithFrom(gwv1ac.ReferenceGrantFrom().
				WithGroup(gwv1.GroupName).
				WithKind("Gateway").
				WithNamespace(gwv1.Namespace(route.GatewayRef.Namespace))).
			WithTo(gwv1ac.ReferenceGrantTo().
				WithGroup(corev1.GroupName).
				WithKind("Secret").
				WithName(gwv1.ObjectName(TenantCertificateSecretName(t)))))
}
