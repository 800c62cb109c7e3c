package builders

import (
	"maps"
	"slices"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// Options are the operator-wide settings the builders need. An empty field means its default
// (DefaultOptions), never "match everything".
type Options struct {
	// OperatorNamespace is where the operator, its backup jobs and probes run.
	OperatorNamespace string
	// OperatorPodSelector are the labels of the pods in OperatorNamespace that may reach tenant
	// databases: the operator's backup and restore jobs.
	OperatorPodSelector map[string]string
	// DefaultIssuer signs the certificates of tenants that name no issuer.
	DefaultIssuer v1alpha1.IssuerReference
	// DatabaseIssuer, when set, signs every database's server certificate instead of the
	// tenant's issuer: database names end in .svc, which public (ACME) issuers cannot sign.
	DatabaseIssuer *v1alpha1.IssuerReference
	// PostgresImages maps a PostgreSQL major version to its image.
	PostgresImages map[string]string
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain string
	// DNS is where the cluster's DNS servers run, the one destination every tenant pod may reach.
	DNS DNSOptions
	// AgentImage runs the backup and verification jobs: tenant-operator with PostgreSQL's client
	// programs of every supported major under /usr/lib/postgresql/<major>/bin.
	AgentImage string
	// Networks are the cluster's own address ranges, which no tenant firewall rule may open.
	Networks NetworkOptions
	// IngressClassName is the class of the tenants' Ingresses (spec.route.kind Ingress); the
	// cluster's default class when empty.
	IngressClassName string
}

// NetworkOptions are the address ranges of the cluster itself. Every CIDR a tenant lists in
// spec.firewall (allowedCIDRs, egress[].toCIDRs) that contains one of them gets it in its
// ipBlock.except, so 0.0.0.0/0 reaches the internet but not other tenants' pods, Services,
// nodes or the cloud metadata service; a CIDR inside one of them is refused by validation and
// left out by the builder, since no except can carve it back out. An empty list means its
// default, never "none".
type NetworkOptions struct {
	// PodCIDRs are the cluster's pod ranges. Default: DefaultPrivateCIDRs, every private range
	// (RFC 1918, the RFC 6598 shared range and IPv6 unique local addresses), where every common
	// distribution and network plugin draws its pod addresses from. Set the exact ranges to let
	// tenants name private networks outside the cluster, e.g. an office VPN.
	PodCIDRs []string
	// ServiceCIDRs are the cluster's Service (ClusterIP) ranges. Default: DefaultPrivateCIDRs.
	ServiceCIDRs []string
	// NodeCIDRs are the nodes' addresses (kubelets, node ports, host-network pods). None by
	// default: nodes usually sit in the private ranges the pod default already covers.
	NodeCIDRs []string
	// MetadataCIDRs are the cloud metadata service and other link-local addresses.
	// DefaultMetadataCIDRs (169.254.0.0/16, fd00:ec2::254/128) are protected whatever this list
	// says; it can only add to them.
	MetadataCIDRs []string
}

// DefaultPrivateCIDRs are the private address ranges: the default pod and Service ranges.
var DefaultPrivateCIDRs = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"}

// DefaultMetadataCIDRs are the link-local ranges of the cloud metadata services: IPv4
// link-local, where AWS, GCP and Azure answer on 169.254.169.254, and AWS's IPv6 address.
var DefaultMetadataCIDRs = []string{"169.254.0.0/16", "fd00:ec2::254/128"}

// DNSOptions select the cluster's DNS servers for the tenants' egress.
type DNSOptions struct {
	// Namespace of the DNS pods.
	Namespace string
	// PodLabels select the DNS pods in Namespace.
	PodLabels map[string]string
	// Port of the DNS service, allowed over UDP and TCP.
	Port int32
	// CIDRs of DNS servers outside the pod network, e.g. a node-local DNS cache's link-local
	// address; none by default.
	CIDRs []string
}

// Images of a plain installation, by PostgreSQL major version.
const (
	DefaultPostgres15Image = "docker.io/library/postgres:15.14"
	DefaultPostgres16Image = "docker.io/library/postgres:16.10"
	DefaultPostgres17Image = "docker.io/library/postgres:17.6"
	DefaultPostgres18Image = "docker.io/library/postgres:18.0"
)

// DefaultAgentImage is the backup agent image of this release (the Dockerfile's agent target).
const DefaultAgentImage = "ghcr.io/tenantops/tenant-operator-agent:v0.1.0"

// DefaultDatabaseVersion is the PostgreSQL major version of a tenant that names none, as the
// API defaults it.
const DefaultDatabaseVersion = "17"

// DefaultOptions are the settings of a plain installation.
func DefaultOptions() Options {
	return Options{
		OperatorNamespace:   "tenant-operator-system",
		OperatorPodSelector: map[string]string{LabelDatabaseClient: "true"},
		DefaultIssuer:       v1alpha1.IssuerReference{Kind: "ClusterIssuer"},
		PostgresImages: map[string]string{
			"15": DefaultPostgres15Image,
			"16": DefaultPostgres16Image,
			"17": DefaultPostgres17Image,
			"18": DefaultPostgres18Image,
		},
		ClusterDomain: "cluster.local",
		AgentImage:    DefaultAgentImage,
		DNS: DNSOptions{
			Namespace: "kube-system",
			PodLabels: map[string]string{"k8s-app": "kube-dns"},
			Port:      53,
		},
		Networks: NetworkOptions{
			PodCIDRs:      slices.Clone(DefaultPrivateCIDRs),
			ServiceCIDRs:  slices.Clone(DefaultPrivateCIDRs),
			MetadataCIDRs: slices.Clone(DefaultMetadataCIDRs),
		},
	}
}

// withDefaults fills empty fields from DefaultOptions, so that Options{} or a forgotten field
// narrows nothing into everything: an empty pod selector would match every pod.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.OperatorNamespace == "" {
		o.OperatorNamespace = d.OperatorNamespace
	}
	if len(o.OperatorPodSelector) == 0 {
		o.OperatorPodSelector = d.OperatorPodSelector
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = d.ClusterDomain
	}
	images := maps.Clone(d.PostgresImages)
	maps.Copy(images, o.PostgresImages)
	o.PostgresImages = images
	if o.AgentImage == "" {
		o.AgentImage = d.AgentImage
	}
	if o.DNS.Namespace == "" {
		o.DNS.Namespace = d.DNS.Namespace
	}
	if len(o.DNS.PodLabels) == 0 {
		o.DNS.PodLabels = d.DNS.PodLabels
	}
	if o.DNS.Port == 0 {
		o.DNS.Port = d.DNS.Port
	}
	if len(o.Networks.PodCIDRs) == 0 {
		o.Networks.PodCIDRs = d.Networks.PodCIDRs
	}
	if len(o.Networks.ServiceCIDRs) == 0 {
		o.Networks.ServiceCIDRs = d.Networks.ServiceCIDRs
	}
	if len(o.Networks.MetadataCIDRs) == 0 {
		o.Networks.MetadataCIDRs = d.Networks.MetadataCIDRs
	}
	return o
}

// WithDefaults is the options with every empty field filled from DefaultOptions.
func (o Options) WithDefaults() Options { return o.withDefaults() }
