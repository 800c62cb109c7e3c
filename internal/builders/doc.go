// Package builders holds pure functions that build the objects a Tenant reconciles into, as
// server-side apply configurations: spec in, object out. Names are deterministic (never
// generateName); there is no clock, no randomness and no API call, so the same Tenant and Options
// always give byte-for-byte the same objects and an unchanged tenant causes no write.
//
// The controller applies every object under one field owner, so a builder sets only the fields
// the operator means to own. Every object carries LabelManagedBy=ManagedByValue and
// LabelTenant=<tenant name> (TenantLabels) and no owner reference: a namespace retained after its
// Tenant is deleted must not be garbage-collected with it, and the controller maps objects back
// to their Tenant by label.
//
// # Names
//
//   - NamespaceName(t): tenant-<name>; every namespaced object lives there.
//   - QuotaName, LimitRangeName, RoleBindingNames(), NetworkPolicyNames(): the fixed names, so the
//     controller can delete the ones a spec no longer asks for.
//   - DatabaseName (StatefulSet and client Service), DatabaseHeadlessName, DatabaseSecretName,
//     DatabaseConfigName, DatabaseCertificateName, DatabaseTLSSecretName, DatabaseVolumeClaimName,
//     DatabaseHost, DatabaseURIFor: the database's parts and how clients reach it.
//   - TenantCertificateName, TenantCertificateSecretName: the certificate for spec.hostnames.
//   - TenantReaderName: the cluster role and binding that let a tenant's users read its Tenant.
//   - TenantRouteName, TenantGatewayGrantName: the tenant's Ingress or HTTPRoute, and the
//     ReferenceGrant that lets its Gateway serve the tenant's certificate.
//
// # Options
//
// Options are the operator-wide settings (operator namespace and the labels of its pods that may
// reach tenant databases, default issuer, PostgreSQL images, cluster domain, DNS servers, the
// cluster's own address ranges, the ingress class). DefaultOptions gives a plain installation's;
// an empty field falls back to its default, so a zero selector never widens a firewall rule to
// every pod, and an unset pod range protects every private range.
//
// ClusterRanges(opts) parses Options.Networks (pods, Services, nodes, the metadata service); and
// ExceptClusterRanges(cidr, ranges) is what a tenant CIDR becomes: the ranges it contains, for
// ipBlock.except, or the range it lies inside, when it must not be used at all.
//
// # Builders
//
//   - Namespace(t): the namespace, Pod Security restricted enforced, audited and warned (latest),
//     annotated with spec.hostnames and spec.firewall.allowedServiceTypes for the admission
//     policy tenant-operator-confine-tenant-traffic, which cannot read the Tenant itself.
//   - ResourceQuota(t), DefaultQuota(t): spec.quota over documented defaults, per resource:
//     compute, ephemeral storage, object counts, exposed Services; the storage quota always
//     leaves room for the database volume.
//   - LimitRange(t): default container requests and limits (ephemeral storage included), so pods
//     without resources still pass the quota.
//   - RoleBindings(t): admins, editors and viewers bound to the built-in admin, edit and view
//     cluster roles in the namespace; an empty list gives no binding.
//   - TenantReaderClusterRole(t), TenantReaderClusterRoleBinding(t): get on this one Tenant, for
//     every admin, editor and viewer. No wildcards anywhere.
//   - DatabaseSecret(t, password): credentials and a verify-full connection URI; the controller
//     creates it once with a password from crypto/rand.
//   - DatabaseConfigMap(t): pg_hba.conf with TLS and SCRAM only.
//   - DatabaseCAConfigMap(t, caPEM): the database's CA certificate alone, for clients, so they need
//     not mount the Secret that also holds the server's private key.
//   - DatabaseService(t), DatabaseHeadlessService(t): the client endpoint and the StatefulSet's
//     governing service.
//   - DatabaseCertificate(t, opts), DatabaseDNSNames(t, opts), DatabaseIssuerFor(t, opts): the
//     server certificate for the service's DNS names.
//   - DatabaseStatefulSet(t, opts), DatabaseImage(t, opts), DatabaseVersion(t),
//     DatabaseResources(t): PostgreSQL with one replica on its own volume, TLS only, under Pod
//     Security restricted.
//   - TenantCertificate(t, opts), IssuerFor(t, opts): the certificate for spec.hostnames.
//   - NetworkPolicies(t, opts): the tenant's firewall, default deny plus one policy per allow.
//   - Ingress(t, opts), HTTPRoute(t), GatewayReferenceGrant(t), RouteFor(t): the route from the
//     tenant's hostnames to spec.route's Service, with TLS from the tenant's certificate: an
//     Ingress of Options.IngressClassName, or an HTTPRoute on spec.route.gatewayRef with a
//     ReferenceGrant for the certificate's Secret; nil for the kinds spec.route does not ask for.
//   - RestrictedPodSecurityContext(uid), RestrictedContainerSecurityContext(): the security
//     contexts every pod template here uses, for the backup jobs to reuse.
//
// The tests prove the pod templates pass Pod Security restricted with k8s.io/pod-security-admission,
// and the firewall's behaviour with cyclonus' NetworkPolicy semantics over a connectivity table.
package builders
