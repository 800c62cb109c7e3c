package controllers

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;referencegrants,verbs=get;list;watch;create;patch;delete

// reconcileRoute gives the tenant's hostnames their route to its Service: an Ingress of the
// operator's class by default, an HTTPRoute on the named Gateway (with a ReferenceGrant that lets
// that Gateway serve the tenant's certificate), or none; the kinds not chosen are removed. It sets
// RouteReady.
func (r *TenantReconciler) reconcileRoute(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	route := builders.RouteFor(t)
	o := tenantstatus.RouteObservation{Blocked: s.namespaceBlocked, Route: route, Hostnames: t.Spec.Hostnames}
	defer func() { tenantstatus.SetRouteReady(t, o) }()
	if o.Blocked {
		return ctrl.Result{}, nil
	}
	ns := builders.NamespaceName(t)
	keepIngress, keepGateway := map[string]bool{}, map[string]bool{}
	switch route.Kind {
	case v1alpha1.RouteKindIngress:
		name := builders.TenantRouteName(t)
		o.Err = r.apply(ctx, ownedObject{"ingress", name, builders.Ingress(t, r.builderOptions())})
		keepIngress[name] = true
	case v1alpha1.RouteKindHTTPRoute:
		if !r.Options.GatewayAPI {
			o.GatewayAPIMissing = true
			return ctrl.Result{}, nil
		}
		httpRoute := &gwv1.HTTPRoute{}
		o.Err = r.applyAndRead(ctx, ownedObject{"http route", builders.TenantRouteName(t), builders.HTTPRoute(t)}, httpRoute)
		if o.Err == nil {
			o.Err = r.apply(ctx, ownedObject{"reference grant", builders.TenantGatewayGrantName(t), builders.GatewayReferenceGrant(t)})
		}
		o.Accepted, o.Refused = routeAccepted(httpRoute)
		keepGateway[builders.TenantRouteName(t)], keepGateway[builders.TenantGatewayGrantName(t)] = true, true
	}
	if o.Err != nil {
		return ctrl.Result{}, o.Err
	}
	if _, o.Err = r.deleteUnwanted(ctx, t, "ingress", &networkingv1.IngressList{}, ns, keepIngress); o.Err != nil {
		return ctrl.Result{}, o.Err
	}
	if !r.Options.GatewayAPI {
		return ctrl.Result{}, nil // without Gateway API's CRDs there is nothing of its kinds to remove
	}
	if _, o.Err = r.deleteUnwanted(ctx, t, "http route", &gwv1.HTTPRouteList{}, ns, keepGateway); o.Err == nil {
		_, o.Err = r.deleteUnwanted(ctx, t, "reference grant", &gwv1beta1.ReferenceGrantList{}, ns, keepGateway)
	}
	return ctrl.Result{}, o.Err
}

// routeAccepted reads the Gateway's verdict on the route from its status: accepted by every
// parent, or the first refusal's message.
func routeAccepted(route *gwv1.HTTPRoute) (bool, string) {
	if len(route.Status.Parents) == 0 {
		return false, ""
	}
	for _, p := range route.Status.Parents {
		for _, conditionType := range []string{string(gwv1.RouteConditionAccepted), string(gwv1.RouteConditionResolvedRefs)} {
			if c := meta.FindStatusCondition(p.Conditions, conditionType); c != nil && c.Status == metav1.ConditionFalse {
				return false, fmt.Sprintf("%s %s: %s", conditionType, c.Reason, c.Message)
			}
		}
		if !meta.IsStatusConditionTrue(p.Conditions, string(gwv1.RouteConditionAccepted)) {
			return false, ""
		}
	}
	return true, ""
}
