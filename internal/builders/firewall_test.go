package builders

import (
	"fmt"
	"slices"
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

// TestWideCIDRsCannotReachTheCluster evaluates, with cyclonus, a tenant that allows 0.0.0.0/0
// and ::/0 in and out on every port, as an attacker holding the Tenant's spec would ask: the
// internet is reachable both ways, but not another tenant's pod IP, a Service IP, a node, the
// cloud metadata address or the operator's pods, because the builder excepts the cluster's
// ranges. Only the attacker's policies are in force, so nothing on the victims' side helps:
// what blocks is the except alone. The same policies without their excepts must let everything
// through, or the table proves nothing.
func TestWideCIDRsCannotReachTheCluster(t *testing.T) {
	opts := testOptions()
	opts.Networks = NetworkOptions{
		PodCIDRs:     []string{"10.244.0.0/16", "fd00:10:244::/56"},
		ServiceCIDRs: []string{"10.96.0.0/12"},
		NodeCIDRs:    []string{"192.168.10.0/24"},
	}
	tenant := minimal()
	tenant.Spec.Firewall.AllowedCIDRs = []string{"0.0.0.0/0", "::/0"}
	tenant.Spec.Firewall.Egress = []v1alpha1.EgressRule{{ToCIDRs: []string{"0.0.0.0/0", "::/0"}}}
	var policies, withoutExcept []*networkingv1.NetworkPolicy
	for _, p := range NetworkPolicies(tenant, opts) {
		np := typed[networkingv1.NetworkPolicy](t, p)
		policies = append(policies, np)
		bare := np.DeepCopy()
		for i := range bare.Spec.Egress {
			for j := range bare.Spec.Egress[i].To {
				if b := bare.Spec.Egress[i].To[j].IPBlock; b != nil {
					b.Except = nil
				}
			}
		}
		for i := range bare.Spec.Ingress {
			for j := range bare.Spec.Ingress[i].From {
				if b := bare.Spec.Ingress[i].From[j].IPBlock; b != nil {
					b.Except = nil
				}
			}
		}
		withoutExcept = append(withoutExcept, bare)
	}
	evaluated := matcher.BuildNetworkPolicies(true, policies)
	unexcepted := matcher.BuildNetworkPolicies(true, withoutExcept)

	ns := NamespaceName(tenant)
	app := peer{namespace: ns, labels: map[string]string{"app": "web"}, ip: "10.244.1.10"}
	otherTenantPod := peer{namespace: "tenant-victim", labels: map[string]string{"app": "web"}, ip: "10.244.2.10"}
	otherTenantPod6 := peer{namespace: "tenant-victim", labels: map[string]string{"app": "web"}, ip: "fd00:10:244::2:10"}
	operatorPod := peer{namespace: opts.OperatorNamespace, labels: map[string]string{"app": "tenant-operator"}, ip: "10.244.0.6"}
	serviceIP := peer{ip: "10.96.0.1"} // the API server's Service; every Service IP is in the range
	node := peer{ip: "192.168.10.5"}   // a kubelet
	metadata := peer{ip: "169.254.169.254"}
	metadata6 := peer{ip: "fd00:ec2::254"}
	internet := peer{ip: "192.0.2.1"}
	internet6 := peer{ip: "2001:db8::1"}

	tcp := corev1.ProtocolTCP
	tests := []struct {
		name     string
		from, to peer
		port     int
		allowed  bool
	}{
		{"app to the internet", app, internet, 443, true},
		{"app to the IPv6 internet", app, internet6, 443, true},
		{"internet to the app's ingress port", internet, app, 443, true},
		{"IPv6 internet to the app's ingress port", internet6, app, 443, true},
		{"app to another tenant's pod IP", app, otherTenantPod, 8080, false},
		{"app to another tenant's IPv6 pod IP", app, otherTenantPod6, 8080, false},
		{"app to the operator's pod IP", app, operatorPod, 9443, false},
		{"app to a Service IP", app, serviceIP, 443, false},
		{"app to a node's kubelet", app, node, 10250, false},
		{"app to the metadata service", app, metadata, 80, false},
		{"app to the IPv6 metadata service", app, metadata6, 80, false},
		{"another tenant's pod to the app's ingress port", otherTenantPod, app, 443, false},
		{"a node to the app's ingress port", node, app, 443, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			traffic := &matcher.Traffic{Source: tt.from.traffic(), Destination: tt.to.traffic(), ResolvedPort: tt.port, Protocol: tcp}
			result := evaluated.IsTrafficAllowed(traffic)
			if got := result.IsAllowed(); got != tt.allowed {
				t.Fatalf("%s: allowed = %v, want %v\n%s", describe(tt.from, tt.to, tt.port, tcp), got, tt.allowed, result.Table())
			}
			if !tt.allowed && !unexcepted.IsTrafficAllowed(traffic).IsAllowed() {
				t.Fatalf("%s is denied even without the excepts: the case does not test them", describe(tt.from, tt.to, tt.port, tcp))
			}
		})
	}
}

// TestCIDRsInsideTheClusterAreLeftOut: a CIDR inside a cluster range cannot be excepted (the API
// wants each except strictly inside its cidr), so the builder leaves it out, failing closed, and
// an egress rule left without peers is left out too, rather than read as "to everywhere". Options
// whose ranges do not parse leave out every tenant CIDR.
func TestCIDRsInsideTheClusterAreLeftOut(t *testing.T) {
	tenant := minimal()
	tenant.Spec.Firewall.AllowedCIDRs = []string{"10.244.2.0/24", "203.0.113.0/24"}
	tenant.Spec.Firewall.Egress = []v1alpha1.EgressRule{
		{ToCIDRs: []string{"169.254.169.254/32"}},
		{ToCIDRs: []string{"10.96.0.0/12", "198.51.100.0/24"}, Ports: []int32{443}},
	}
	opts := testOptions()
	opts.Networks = NetworkOptions{PodCIDRs: []string{"10.244.0.0/16"}, ServiceCIDRs: []string{"10.96.0.0/12"}}
	cidrs := func(opts Options) (ingress, egress []string, egressRules int) {
		for _, p := range NetworkPolicies(tenant, opts) {
			np := typed[networkingv1.NetworkPolicy](t, p)
			for _, r := range np.Spec.Ingress {
				for _, f := range r.From {
					if f.IPBlock != nil {
						ingress = append(ingress, f.IPBlock.CIDR)
					}
				}
			}
			if np.Name == PolicyEgress {
				egressRules = len(np.Spec.Egress)
				for _, r := range np.Spec.Egress {
					for _, to := range r.To {
						egress = append(egress, to.IPBlock.CIDR)
					}
				}
			}
		}
		return ingress, egress, egressRules
	}
	ingress, egress, rules := cidrs(opts)
	if !slices.Equal(ingress, []string{"203.0.113.0/24"}) || !slices.Equal(egress, []string{"198.51.100.0/24"}) || rules != 1 {
		t.Errorf("ingress CIDRs %v, egress CIDRs %v in %d rules; want only 203.0.113.0/24 and 198.51.100.0/24 in 1 rule", ingress, egress, rules)
	}

	opts.Networks.NodeCIDRs = []string{"not-a-cidr"}
	ingress, egress, rules = cidrs(opts)
	if len(ingress)+len(egress)+rules != 0 {
		t.Errorf("with unparsable options: ingress CIDRs %v, egress CIDRs %v in %d rules; want none", ingress, egress, rules)
	}
}
