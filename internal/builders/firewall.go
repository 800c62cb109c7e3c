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

const (
	// namespaceNameLabel is set by the API server on every namespace, so it cannot be forged.
	namespaceNameLabel = "kubernetes.io/metadata.name"
	defaultHTTPPort    = 80
	defaultHTTPSPort   = 443
)

// NetworkPolicies are the tenant's firewall. Everything is denied (PolicyDefaultDeny), then
// allowed one by one, each allow its own policy named after what it allows, because policies
// add up:
//
//   - PolicyAllowDNS: every pod to the cluster's DNS servers, port 53 over UDP and TCP.
//   - PolicySameNamespace: the tenant's pods to each other, on any port; the database pod is not
//     selected, so the tenant reaches it only through PolicyDatabaseClients.
//   - PolicyIngress: the ingress ports (TCP, spec.firewall.ingressPorts, 80 and 443 by default)
//     from spec.firewall.ingressNamespaces, spec.firewall.allowedCIDRs and the operator's
//     namespace (its uptime probes). Never the database pod.
//   - PolicyDatabaseClients: the database pod on its port only, from the tenant's own pods and
//     from the operator's pods that match Options.OperatorPodSelector (backup jobs).
//   - PolicyEgress: the tenant's pods, but not the database, to spec.firewall.egress, one rule
//     per entry; absent when the list is empty.
//
// Every CIDR of spec.firewall (allowedCIDRs, egress[].toCIDRs) excepts the cluster ranges it
// contains (ClusterRanges: pods, Services, nodes, the metadata service), so 0.0.0.0/0 reaches the
// internet but not another tenant's pod, a Service IP or 169.254.169.254. A CIDR inside a cluster
// range is left out, as validation.Firewall refuses it, and so are all of them when the options'
// ranges do not parse: a firewall that opens less than asked fails closed.
//
// The database pod is told apart by LabelDatabasePod: policies for the tenant's pods select its
// absence, the database's policy its presence, so every pod is in exactly one of the two sets.
func NetworkPolicies(t *v1alpha1.Tenant, opts Options) []*networkingv1ac.NetworkPolicyApplyConfiguration {
	opts = opts.withDefaults()
	ns := NamespaceName(t)
	ranges, rangesErr := ClusterRanges(opts)
	// ipBlock is the peer for a tenant CIDR, or nil when the CIDR must be left out.
	ipBlock := func(cidr string) *networkingv1ac.NetworkPolicyPeerApplyConfiguration {
		if rangesErr != nil {
			return nil
		}
		except, inside, err := ExceptClusterRanges(cidr, ranges)
		if err != nil || inside != nil {
			return nil
		}
		block := networkingv1ac.IPBlock().WithCIDR(cidr)
		if len(except) > 0 {
			block.WithExcept(except...)
		}
		return networkingv1ac.NetworkPolicyPeer().WithIPBlock(block)
	}
	policy := func(name string) *networkingv1ac.NetworkPolicyApplyConfiguration {
		return networkingv1ac.NetworkPolicy(name, ns).WithLabels(TenantLabels(t))
	}
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(p int32, proto corev1.Protocol) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
		return networkingv1ac.NetworkPolicyPort().WithProtocol(proto).WithPort(intstr.FromInt32(p))
	}
	inNamespace := func(name string) *metav1ac.LabelSelectorApplyConfiguration {
		return metav1ac.LabelSelector().WithMatchLabels(map[string]string{namespaceNameLabel: name})
	}
	databasePods := func(op metav1.LabelSelectorOperator) *metav1ac.LabelSelectorApplyConfiguration {
		return metav1ac.LabelSelector().WithMatchExpressions(metav1ac.LabelSelectorRequirement().
			WithKey(LabelDatabasePod).WithOperator(op))
	}
	// Exists and DoesNotExist rather than In and NotIn, whose handling of an absent key
	// implementations have disagreed on. Functions, not values: apply configurations are
	// mutable, and no two objects should share a part.
	tenantPods := func() *metav1ac.LabelSelectorApplyConfiguration {
		return databasePods(metav1.LabelSelectorOpDoesNotExist)
	}
	databasePod := func() *metav1ac.LabelSelectorApplyConfiguration { return databasePods(metav1.LabelSelectorOpExists) }
	// A peer with only a pod selector means pods of the policy's own namespace.
	sameNamespace := func() *networkingv1ac.NetworkPolicyPeerApplyConfiguration {
		return networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector())
	}

	dns := []*networkingv1ac.NetworkPolicyPeerApplyConfiguration{
		networkingv1ac.NetworkPolicyPeer().
			WithNamespaceSelector(inNamespace(opts.DNS.Namespace)).
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(opts.DNS.PodLabels)),
	}
	for _, cidr := range opts.DNS.CIDRs {
		dns = append(dns, networkingv1ac.NetworkPolicyPeer().WithIPBlock(networkingv1ac.IPBlock().WithCIDR(cidr)))
	}

	out := []*networkingv1ac.NetworkPolicyApplyConfiguration{
		policy(PolicyDefaultDeny).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector()).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)),
		policy(PolicyAllowDNS).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector()).
			WithPolicyTypes(networkingv1.PolicyTypeEgress).
			WithEgress(networkingv1ac.NetworkPolicyEgressRule().
				WithTo(dns...).
				WithPorts(port(opts.DNS.Port, udp), port(opts.DNS.Port, tcp)))),
		policy(PolicySameNamespace).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(tenantPods()).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress).
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().WithFrom(sameNamespace())).
			// To every pod of the namespace: the database's own policy limits what reaches it.
			WithEgress(networkingv1ac.NetworkPolicyEgressRule().WithTo(sameNamespace()))),
	}

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
		if peer := ipBlock(cidr); peer != nil {
			sources = append(sources, peer)
		}
	}
	out = append(out,
		policy(PolicyIngress).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(tenantPods()).
			WithPolicyTypes(networkingv1.PolicyTypeIngress).
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().WithFrom(sources...).WithPorts(ingressPorts...))),
		policy(PolicyDatabaseClients).WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(databasePod()).
			WithPolicyTypes(networkingv1.PolicyTypeIngress).
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().
				WithFrom(
					sameNamespace(),
					networkingv1ac.NetworkPolicyPeer().
						WithNamespaceSelector(inNamespace(opts.OperatorNamespace)).
						WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(opts.OperatorPodSelector)),
				).
				WithPorts(port(DatabasePort, tcp)))))

	if len(t.Spec.Firewall.Egress) > 0 {
		rules := make([]*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration, 0, len(t.Spec.Firewall.Egress))
		for _, e := range t.Spec.Firewall.Egress {
			rule := networkingv1ac.NetworkPolicyEgressRule()
			for _, cidr := range e.ToCIDRs {
				if peer := ipBlock(cidr); peer != nil {
					rule.WithTo(peer)
				}
			}
			// A rule whose every CIDR was left out would have no peers, which the API reads as
			// "to everywhere": leave it out too.
			if len(rule.To) == 0 {
				continue
			}
			// No ports means every port, as the API documents.
			for _, p := range e.Ports {
				rule.WithPorts(port(p, tcp))
			}
			rules = append(rules, rule)
		}
		// Not the database: it needs no destination outside the namespace, and a superuser can
		// make PostgreSQL connect out (COPY ... PROGRAM, dblink).
		if len(rules) > 0 {
			out = append(out, policy(PolicyEgress).WithSpec(networkingv1ac.NetworkPolicySpec().
				WithPodSelector(tenantPods()).
				WithPolicyTypes(networkingv1.PolicyTypeEgress).
				WithEgress(rules...)))
		}
	}
	return out
}
