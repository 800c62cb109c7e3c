package builders

import (
	"fmt"
	"maps"
	"net/url"

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
	// LabelComponent tells the parts of a tenant apart, for Service and NetworkPolicy selectors.
	LabelComponent = "app.kubernetes.io/component"
	// LabelDatabasePod marks the database pod, which the ingress and same-namespace allows must
	// not select: only LabelDatabaseClient pods and the tenant's own pods reach it, on its port.
	LabelDatabasePod = "tenancy.tenantops.io/database"
	// LabelDatabaseClient marks the operator's pods (backup jobs, probes) allowed to reach tenant
	// databases through their firewalls: the default Options.OperatorPodSelector.
	LabelDatabaseClient = "tenancy.tenantops.io/database-client"

	// ComponentDatabase is the LabelComponent value of the database's objects.
	ComponentDatabase = "database"
	componentDatabase = ComponentDatabase
)

// NamespacePrefix starts every tenant namespace name.
const NamespacePrefix = "tenant-"

// Names of objects that exist once per tenant namespace.
const (
	QuotaName      = "tenant-quota"
	LimitRangeName = "tenant-limits"
)

// DatabasePort is PostgreSQL's port, on the pod and on both Services.
const DatabasePort = 5432

// Keys of the database Secret; the backup jobs read the same keys.
const (
	SecretKeyUsername    = "username"
	SecretKeyPassword    = "password"
	SecretKeyDatabase    = "database"
	SecretKeyHost        = "host"
	SecretKeyPort        = "port"
	SecretKeyURI         = "uri"
	SecretKeySSLMode     = "sslmode"
	SecretKeySSLRootCert = "sslrootcert"
)

// DatabaseCAKey is the key of the CA certificate in DatabaseCAConfigMap and in the TLS Secret
// cert-manager writes; DatabaseCAMountPath is where the Secret's URI expects clients to mount it.
const (
	DatabaseCAKey       = "ca.crt"
	DatabaseCAMountPath = "/etc/postgresql-ca/" + DatabaseCAKey
)

// TenantLabels are the labels that tie an object to its tenant.
func TenantLabels(t *v1alpha1.Tenant) map[string]string {
	return map[string]string{LabelManagedBy: ManagedByValue, LabelTenant: t.Name}
}

func labelsWith(t *v1alpha1.Tenant, extra map[string]string) map[string]string {
	l := TenantLabels(t)
	maps.Copy(l, extra)
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

// DatabaseCAConfigMapName holds the database's CA certificate, without the server's key.
func DatabaseCAConfigMapName(*v1alpha1.Tenant) string { return "postgres-ca" }

// DatabaseCertificateName is the server certificate of the database.
func DatabaseCertificateName(*v1alpha1.Tenant) string { return "postgres-tls" }

// DatabaseTLSSecretName holds the database's server certificate and key.
func DatabaseTLSSecretName(*v1alpha1.Tenant) string { return "postgres-tls" }

// DatabaseVolumeClaimName is the claim the StatefulSet creates for its only replica.
func DatabaseVolumeClaimName(t *v1alpha1.Tenant) string { return "data-" + DatabaseName(t) + "-0" }

// DatabaseHost is the in-cluster name clients use, one of the certificate's DNS names; it leaves
// out the cluster domain so it works whatever the domain is.
func DatabaseHost(t *v1alpha1.Tenant) string {
	return DatabaseName(t) + "." + NamespaceName(t) + ".svc"
}

// DatabaseURIFor is a libpq connection URI with sslmode=verify-full, for the tenant's database,
// user and password. sslrootcert points where clients are expected to mount DatabaseCAKey.
func DatabaseURIFor(t *v1alpha1.Tenant, user, password, database string) string {
	q := url.Values{}
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", DatabaseCAMountPath)
	u := url.URL{
		Scheme:   "postgresql",
		User:     url.UserPassword(user, password),
		Host:     fmt.Sprintf("%s:%d", DatabaseHost(t), DatabasePort),
		Path:     "/" + database,
		RawQuery: q.Encode(),
	}
	return u.String()
}

// TenantCertificateName is the certificate for the tenant's hostnames.
func TenantCertificateName(*v1alpha1.Tenant) string { return "tenant-tls" }

// TenantCertificateSecretName holds the tenant's certificate and key; the tenant's ingress
// serves it. The namespace already tells tenants apart, so the name is the same in each.
func TenantCertificateSecretName(*v1alpha1.Tenant) string { return "tenant-tls" }

// TenantReaderName names the cluster role (and binding) that lets the tenant's users read their
// own Tenant object. Cluster-scoped, so it carries the tenant's name.
func TenantReaderName(t *v1alpha1.Tenant) string { return "tenancy:tenant-reader:" + t.Name }

// Names of the role bindings in a tenant namespace, one per built-in role.
const (
	RoleBindingAdmins  = "tenant-admin"
	RoleBindingEditors = "tenant-edit"
	RoleBindingViewers = "tenant-view"
)

// RoleBindingNames are all the names RoleBindings may return; a binding of one of these names
// that RoleBindings did not return must be deleted.
func RoleBindingNames() []string {
	return []string{RoleBindingAdmins, RoleBindingEditors, RoleBindingViewers}
}

// Names of the tenant's NetworkPolicies.
const (
	PolicyDefaultDeny     = "default-deny"
	PolicyAllowDNS        = "allow-dns"
	PolicySameNamespace   = "allow-same-namespace"
	PolicyIngress         = "allow-ingress"
	PolicyDatabaseClients = "allow-database-clients"
	PolicyEgress          = "allow-egress"
)

// NetworkPolicyNames are all the names NetworkPolicies may return; a policy of one of these names
// that NetworkPolicies did not return must be deleted.
func NetworkPolicyNames() []string {
	return []string{PolicyDefaultDeny, PolicyAllowDNS, PolicySameNamespace, PolicyIngress, PolicyDatabaseClients, PolicyEgress}
}

// IssuerFor is the issuer of the tenant's certificate: spec.tls.issuerRef, or the default one.
// An empty Kind means ClusterIssuer, as the API defaults it.
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

// DatabaseIssuerFor is the issuer of the database's server certificate: Options.DatabaseIssuer
// when set, else the tenant's own. An ACME issuer cannot sign names under .svc, so installations
// whose default issuer is ACME set DatabaseIssuer to an in-cluster CA.
func DatabaseIssuerFor(t *v1alpha1.Tenant, opts Options) v1alpha1.IssuerReference {
	if opts.DatabaseIssuer == nil || opts.DatabaseIssuer.Name == "" {
		return IssuerFor(t, opts)
	}
	ref := *opts.DatabaseIssuer
	if ref.Kind == "" {
		ref.Kind = "ClusterIssuer"
	}
	return ref
}
