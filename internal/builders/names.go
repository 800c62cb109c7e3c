// Package builders holds pure functions that build the objects a Tenant reconciles into, as
// server-side apply configurations: spec in, object out, with deterministic names and no clock,
// randomness or API calls. The controller applies them under one field owner.
package builders

import (
	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// Labels on every object the operator creates for a tenant. Objects are not owner-referenced,
// because a retained namespace outlives its Tenant; the controller maps them back by label.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "tenant-operator"
	LabelTenant    = "tenancy.tenantops.io/tenant"
	// LabelRetained marks a namespace kept after its Tenant was deleted with policy Retain.
	LabelRetained = "tenancy.tenantops.io/retained"
	// LabelComponent tells the parts of a tenant apart, for NetworkPolicy selectors.
	LabelComponent = "app.kubernetes.io/component"
	// LabelDatabasePod marks the database pod, which the ingress allow must not select.
	LabelDatabasePod = "tenancy.tenantops.io/database"
	// LabelDatabaseClient marks the operator's pods (backup jobs, probes) allowed to reach tenant
	// databases through their firewalls.
	LabelDatabaseClient = "tenancy.tenantops.io/database-client"

	componentDatabase = "database"
)

// NamespacePrefix starts every tenant namespace name.
const NamespacePrefix = "tenant-"

// Names of objects that exist once per tenant namespace.
const (
	QuotaName      = "tenant-quota"
	LimitRangeName = "tenant-limits"
)

// TenantLabels are the labels that tie an object to its tenant.
func TenantLabels(t *v1alpha1.Tenant) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelTenant: t.Name}
}

func labelsWith(t *v1alpha1.Tenant, extra map[string]string) map[string]string {
	l := TenantLabels(t)
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// NamespaceName is the tenant's namespace: tenant-<name>.
func NamespaceName(t *v1alpha1.Tenant) string { return NamespacePrefix + t.Name }

// DatabaseName names the database StatefulSet and its client Service.
func DatabaseName(*v1alpha1.Tenant) string { return "postgres" }

// DatabaseHeadlessName names the StatefulSet's governing headless Service.
func DatabaseHeadlessName(*v1alpha1.Tenant) string { return "postgres-headless" }

// DatabaseSecretName holds the generated credentials.
func DatabaseSecretName(*v1alpha1.Tenant) string { return "postgres-credentials" }

// DatabaseConfigName holds pg_hba.conf.
func DatabaseConfigName(*v1alpha1.Tenant) string { return "postgres-config" }

// DatabaseCertificateName is the server certificate of the database.
func DatabaseCertificateName(*v1alpha1.Tenant) string { return "postgres-tls" }

// DatabaseTLSSecretName holds the database's server certificate and key.
func DatabaseTLSSecretName(*v1alpha1.Tenant) string { return "postgres-tls" }

// DatabaseVolumeClaimName is the claim the StatefulSet creates for its only replica.
func DatabaseVolumeClaimName(t *v1alpha1.Tenant) string { return "data-" + DatabaseName(t) + "-0" }

// TenantCertificateName is the certificate for the tenant's hostnames.
func TenantCertificateName(*v1alpha1.Tenant) string { return "tenant-tls" }

// TenantCertificateSecretName holds the tenant's certificate and key.
func TenantCertificateSecretName(*v1alpha1.Tenant) string { return "tenant-tls" }

// TenantReaderName names the cluster role (and binding) that lets the tenant's users read their
// own Tenant object.
func TenantReaderName(t *v1alpha1.Tenant) string { return "tenancy:tenant-reader:" + t.Name }

// IssuerFor is the tenant's issuer, or the default one.
func IssuerFor(t *v1alpha1.Tenant, opts Options) v1alpha1.IssuerReference {
	ref := opts.DefaultIssuer
	if t.Spec.TLS != nil && t.Spec.TLS.IssuerRef != nil {
		ref = *t.Spec.TLS.IssuerRef
	}
	if ref.Kind == "" {
		ref.Kind = "ClusterIssuer"
	}
	return ref
}

// Options are the operator-wide settings the builders need.
type Options struct {
	// OperatorNamespace is where the operator, its backup jobs and probes run.
	OperatorNamespace string
	// DefaultIssuer is used for tenants that name none.
	DefaultIssuer v1alpha1.IssuerReference
	// PostgresImages maps a major version to its image.
	PostgresImages map[string]string
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain string
}

// DefaultOptions are the settings of a plain installation.
func DefaultOptions() Options {
	return Options{
		OperatorNamespace: "tenant-operator-system",
		DefaultIssuer:     v1alpha1.IssuerReference{Kind: "ClusterIssuer"},
		PostgresImages: map[string]string{
			"15": "docker.io/library/postgres:15.14",
			"16": "docker.io/library/postgres:16.10",
			"17": "docker.io/library/postgres:17.6",
			"18": "docker.io/library/postgres:18.0",
		},
		ClusterDomain: "cluster.local",
	}
}
