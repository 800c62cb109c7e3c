package builders

import (
	"fmt"
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// peer is one end of a connection in the connectivity table.
type peer struct {
	namespace string // empty for an address outside the cluster
	labels    map[string]string
	ip        string
}

func (p peer) traffic() *matcher.TrafficPeer {
	if p.namespace == "" {
		return &matcher.TrafficPeer{IP: p.ip}
	}
	return &matcher.TrafficPeer{IP: p.ip, Internal: &matcher.InternalPeer{
		Namespace:       p.namespace,
		NamespaceLabels: map[string]string{namespaceNameLabel: p.namespace},
		PodLabels:       p.labels,
	}}
}

// TestFirewallConnectivity evaluates the NetworkPolicies built for a tenant with cyclonus, an
// implementation of the NetworkPolicy API's semantics, over a table of connections: what the
// firewall must allow and what it must deny. It reads no YAML back.
func TestFirewallConnectivity(t *testing.T) {
	tenant := full() // ingress port 8443 from ingress-nginx and 203.0.113.0/24; egress 198.51.100.10:443
	opts := testOptions()
	var policies []*networkingv1.NetworkPolicy
	for _, p := range NetworkPolicies(tenant, opts) {
		policies = append(policies, typed[networkingv1.NetworkPolicy](t, p))
	}
	// The other tenant's policies are in force too, as in a real cluster.
	other := minimal()
	for _, p := range NetworkPolicies(other, opts) {
		policies = append(policies, typed[networkingv1.NetworkPolicy](t, p))
	}
	evaluated := matcher.BuildNetworkPolicies(true, policies)

	ns := NamespaceName(tenant)
	app := peer{namespace: ns, labels: map[string]string{"app": "web"}, ip: "10.1.0.10"}
	db := peer{namespace: ns, labels: dbPodLabels(t, tenant), ip: "10.1.0.20"}
	otherApp := peer{namespace: NamespaceName(other), labels: map[string]string{"app": "web"}, ip: "10.2.0.10"}
	otherDB := peer{namespace: NamespaceName(other), labels: dbPodLabels(t, other), ip: "10.2.0.20"}
	backupPod := peer{namespace: opts.OperatorNamespace, labels: map[string]string{LabelDatabaseClient: "true"}, ip: "10.0.0.5"}
	operatorPod := peer{namespace: opts.OperatorNamespace, labels: map[string]string{"app": "tenant-operator"}, ip: "10.0.0.6"}
	ingress := peer{namespace: "ingress-nginx", labels: map[string]string{"app": "ingress-nginx"}, ip: "10.3.0.10"}
	randomPod := peer{namespace: "default", labels: map[string]string{"app": "curl"}, ip: "10.4.0.10"}
	dns := peer{namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}, ip: "10.96.0.10"}
	office := peer{ip: "203.0.113.50"}
	internet := peer{ip: "192.0.2.1"}
	partner := peer{ip: "198.51.100.10"}
	partnerNeighbour := peer{ip: "198.51.100.11"}

	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	tests := []struct {
		name     string
		from, to peer
		port     int
		protocol corev1.Protocol
		allowed  bool
	}{
		{"app to own database", app, db, 5432, tcp, true},
		{"app to app in own namespace", app, app, 8080, tcp, true},
		{"other tenant's app to database", otherApp, db, 5432, tcp, false},
		{"app to other tenant's database", app, otherDB, 5432, tcp, false},
		{"other tenant's app to app port", otherApp, app, 8443, tcp, false},
		{"operator backup pod to database", backupPod, db, 5432, tcp, true},
		{"unlabelled operator pod to database", operatorPod, db, 5432, tcp, false},
		{"operator probe to ingress port", operatorPod, app, 8443, tcp, true},
		{"ingress controller to ingress port", ingress, app, 8443, tcp, true},
		{"ingress controller to database", ingress, db, 5432, tcp, false},
		{"ingress controller to database on ingress port", ingress, db, 8443, tcp, false},
		{"ingress controller to other port", ingress, app, 8080, tcp, false},
		{"ingress controller on default 443, not listed", ingress, app, 443, tcp, false},
		{"random pod to ingress port", randomPod, app, 8443, tcp, false},
		{"random pod to database", randomPod, db, 5432, tcp, false},
		{"allowed CIDR to ingress port", office, app, 8443, tcp, true},
		{"allowed CIDR to database", office, db, 5432, tcp, false},
		{"internet to ingress port", internet, app, 8443, tcp, false},
		{"app to DNS over UDP", app, dns, 53, udp, true},
		{"app to DNS over TCP", app, dns, 53, tcp, true},
		{"database to DNS", db, dns, 53, udp, true},
		{"app to kube-dns on another port", app, dns, 9153, tcp, false},
		{"app to listed egress", app, partner, 443, tcp, true},
		{"app to listed egress on another port", app, partner, 80, tcp, false},
		{"app to neighbour of listed egress", app, partnerNeighbour, 443, tcp, false},
		{"app to the internet", app, internet, 443, tcp, false},
		{"database to the internet", db, internet, 443, tcp, false},
		{"app to operator namespace", app, operatorPod, 8080, tcp, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			result := evaluated.IsTrafficAllowed(&matcher.Traffic{
				Source: tt.from.traffic(), Destination: tt.to.traffic(),
				ResolvedPort: tt.port, Protocol: tt.protocol,
			})
			if got := result.IsAllowed(); got != tt.allowed {
				t.Fatalf("%s: allowed = %v, want %v\n%s", describe(tt.from, tt.to, tt.port, tt.protocol), got, tt.allowed, result.Table())
			}
		})
	}
}

func describe(from, to peer, port int, protocol corev1.Protocol) string {
	name := func(p peer) string {
		if p.namespace == "" {
			return p.ip
		}
		return fmt.Sprintf("%s/%v", p.namespace, p.labels)
	}
	return fmt.Sprintf("%s -> %s:%d/%s", name(from), name(to), port, protocol)
}

// dbPodLabels are the labels of the database pod, as its StatefulSet's template sets them.
func dbPodLabels(t *testing.T, tenant *v1alpha1.Tenant) map[string]string {
	sts := typed[appsv1.StatefulSet](t, DatabaseStatefulSet(tenant, testOptions()))
	return sts.Spec.Template.Labels
}
