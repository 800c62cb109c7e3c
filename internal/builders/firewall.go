package builders

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// Names of the tenant's NetworkPolicies.
const (
	PolicyDefaultDeny     = "default-deny"
	PolicyAllowDNS        = "allow-dns"
	PolicySameNamespace   = "allow-same-namespace"
	PolicyIngress         = "allow-ingress"
	PolicyDatabaseClients = "allow-database-clients"
	PolicyEgress          = "allow-egress"
	namespaceNameLabel    = "kubernetes.io/metadata.name"
	kubeDNSNamespace      = "kube-system"
	kubeDNSLabel, kubeDNS = "k8s-app", "kube-dns"
	defaultHTTPPort       = 80
	defaultHTTPSPort      = 443
	dnsPort               = 53
)

// NetworkPolicies are the tenant's firewall. Everything is denied, then allowed one by one: DNS;
// traffic between the tenant's own pods; the ingress ports from the listed namespaces and CIDRs
// and from the operator's probes; the database from the operator's backup pods; and the listed
// egress. NetworkPolicies add up, so each allow is its own policy with a name that says it.
func NetworkPolicies(t *v1alpha1.Tenant, opts Options) []*networkingv1ac.NetworkPolicyApplyConfiguration {
	ns := NamespaceName(t)
	policy := func(name string) *networkingv1ac.NetworkPolicyApplyConfiguration {
		return networkingv1ac.NetworkPolicy(name, ns).WithLabels(TenantLabels(t))
	}
	allPods := metav1ac.LabelSelector()
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(p int32, proto corev1.Protocol) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
		return networkingv1ac.NetworkPolicyPort().WithProtocol(proto).WithPort(intstr.FromInt32(p))
	}
	inNamespace := func(name string) *metav1ac.LabelSelectorApplyConfiguration {
		return metav1ac.LabelSelector().WithMatchLabels(map[string]string{namespaceNameLabel: name})
	}

	out := []*networkingv1ac.NetworkPolicyApplyConfiguration{
		policy(PolicyDefaultDeny).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(allPods).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)),
		policy(PolicyAllowDNS).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(allPods).
			WithPolicyTypes(networkingv1.PolicyTypeEgress).
			WithEgress(networkingv1ac.NetworkPolicyEgressRule().
				WithTo(networkingv1ac.NetworkPolicyPeer().
					WithNamespaceSelector(inNamespace(kubeDNSNamespace)).
					WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{kubeDNSLabel: kubeDNS}))).
				WithPorts(port(dnsPort, udp), port(dnsPort, tcp)))),
		policy(PolicySameNamespace).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(allPods).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress).
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().WithFrom(networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector()))).
			WithEgress(networkingv1ac.NetworkPolicyEgressRule().WithTo(networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector())))),
	}

	// Ingress ports: from the listed namespaces and CIDRs, and from the operator's uptime probes.
	ports := t.Spec.Firewall.IngressPorts
	if len(ports) == 0 {
		ports = []int32{defaultHTTPPort, defaultHTTPSPort}
	}
	ingressPorts := make([]*networkingv1ac.NetworkPolicyPortApplyConfiguration, 0, len(ports))
	for _, p := range ports {
		ingressPorts = append(ingressPorts, port(p, tcp))
	}
	sources := []*networkingv1ac.NetworkPolicyPeerApplyConfiguration{
		networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(inNamespace(opts.OperatorNamespace)),
	}
	for _, name := range t.Spec.Firewall.IngressNamespaces {
		sources = append(sources, networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(inNamespace(name)))
	}
	for _, cidr := range t.Spec.Firewall.AllowedCIDRs {
		sources = append(sources, networkingv1ac.NetworkPolicyPeer().WithIPBlock(networkingv1ac.IPBlock().WithCIDR(cidr)))
	}
	out = append(out, policy(PolicyIngress).WithSpec(networkingv1ac.NetworkPolicySpec().
		// The database is reached only through PolicyDatabaseClients and PolicySameNamespace.
		// DoesNotExist on a key only the database carries, rather than NotIn, whose handling of
		// absent keys evaluators disagree on.
		WithPodSelector(metav1ac.LabelSelector().WithMatchExpressions(metav1ac.LabelSelectorRequirement().
			WithKey(LabelDatabasePod).WithOperator(metav1.LabelSelectorOpDoesNotExist))).
		WithPolicyTypes(networkingv1.PolicyTypeIngress).
		WithIngress(networkingv1ac.NetworkPolicyIngressRule().WithFrom(sources...).WithPorts(ingressPorts...))))

	// The database: from the operator's labelled pods (backups, probes), nothing else outside.
	out = append(out, policy(PolicyDatabaseClients).WithSpec(networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(databaseSelector(t))).
		WithPolicyTypes(networkingv1.PolicyTypeIngress).
		WithIngress(networkingv1ac.NetworkPolicyIngressRule().
			WithFrom(networkingv1ac.NetworkPolicyPeer().
				WithNamespaceSelector(inNamespace(opts.OperatorNamespace)).
				WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{LabelDatabaseClient: "true"}))).
			WithPorts(port(databasePort, tcp)))))

	if len(t.Spec.Firewall.Egress) > 0 {
		rules := make([]*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration, 0, len(t.Spec.Firewall.Egress))
		for _, e := range t.Spec.Firewall.Egress {
			rule := networkingv1ac.NetworkPolicyEgressRule()
			for _, cidr := range e.ToCIDRs {
				rule.WithTo(networkingv1ac.NetworkPolicyPeer().WithIPBlock(networkingv1ac.IPBlock().WithCIDR(cidr)))
			}
			for _, p := range e.Ports {
				rule.WithPorts(port(p, tcp))
			}
			rules = append(rules, rule)
		}
		out = append(out, policy(PolicyEgress).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(allPods).
			WithPolicyTypes(networkingv1.PolicyTypeEgress).
			WithEgress(rules...)))
	}
	return out
}
