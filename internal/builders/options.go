package builders

import (
	"maps"

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
	// IngressClassName is the class of the tenants' Ingresses (spec.route.kind Ingress); the
	// cluster's default class when empty.
	IngressClassName string
}

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
	return o
}
