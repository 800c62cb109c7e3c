package chart

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// The tests in this file act as tenant users on the real API server, through impersonation, in
// tenant namespaces the builders shaped (namespace with its annotations, quota, LimitRange, role
// bindings), with the admission policies the chart installs. Nothing of the operator runs: what
// refuses is the API server, with the chart's ValidatingAdmissionPolicies and the quota.

const (
	trafficPolicy = "tenant-operator-confine-tenant-traffic"
	// operatorSA is the operator's service account as the chart's default release names it.
	operatorSA = "system:serviceaccount:tenant-operator-system:tenant-operator"
)

// tenantFor is a Tenant with the given hostnames and admins; its spec is all the builders read.
func tenantFor(name string, hostnames []string, admins ...string) *v1alpha1.Tenant {
	t := &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.TenantSpec{
			Hostnames: hostnames,
			Database:  v1alpha1.DatabaseSpec{Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}},
		},
	}
	for _, a := range admins {
		t.Spec.Access.Admins = append(t.Spec.Access.Admins, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: a})
	}
	return t
}

// object is an apply configuration or manifest as the unstructured object the API server gets.
func object(t *testing.T, v any) *unstructured.Unstructured {
	t.Helper()
	var data []byte
	var err error
	if s, ok := v.(string); ok {
		data, err = yaml.YAMLToJSON([]byte(s))
	} else {
		data, err = json.Marshal(v)
	}
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
	return u
}

// createOrUpdate creates obj as the cluster admin, or updates it when it exists.
func createOrUpdate(t *testing.T, c client.Client, obj *unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	err := c.Create(ctx, obj.DeepCopy())
	if apierrors.IsAlreadyExists(err) {
		existing := &unstructured.Unstructured{}
		existing.SetGroupVersionKind(obj.GroupVersionKind())
		if err = c.Get(ctx, client.ObjectKeyFromObject(obj), existing); err == nil {
			obj = obj.DeepCopy()
			obj.SetResourceVersion(existing.GetResourceVersion())
			err = c.Update(ctx, obj)
		}
	}
	if err != nil {
		t.Fatalf("create %s: %v", key(obj), err)
	}
}

// setUpTenant makes what the operator makes first for a tenant: the namespace (with the
// annotations the admission policy reads), quota, LimitRange and the role bindings of its users,
// plus the default ServiceAccount that kube-controller-manager's token controller would make.
func setUpTenant(t *testing.T, c client.Client, tenant *v1alpha1.Tenant) string {
	t.Helper()
	objs := []any{builders.Namespace(tenant), builders.ResourceQuota(tenant), builders.LimitRange(tenant)}
	for _, b := range builders.RoleBindings(tenant) {
		objs = append(objs, b)
	}
	for _, o := range objs {
		createOrUpdate(t, c, object(t, o))
	}
	ns := builders.NamespaceName(tenant)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
	if err := c.Create(context.Background(), sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// The quota admits nothing until the resource quota controller has filled in its status.
	eventually(t, 30*time.Second, func() error {
		q := &corev1.ResourceQuota{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: builders.QuotaName}, q); err != nil {
			return err
		}
		if len(q.Status.Hard) == 0 {
			return fmt.Errorf("quota %s/%s has no status yet", ns, q.Name)
		}
		return nil
	})
	return ns
}

// clientAs is a client that impersonates a user, with the groups every authenticated user has.
func clientAs(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// grantTenantAdminsCertificatesAndRoutes aggregates into the built-in admin and edit roles what
// cert-manager's chart aggregates (its cert-manager-edit role) and what a platform that offers
// Gateway API routes to tenants would: the attacker's tools. It waits until the admin role has them.
func grantTenantAdminsCertificatesAndRoutes(t *testing.T, c client.Client) {
	t.Helper()
	role := &rbacv1.ClusterRole{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: "test-tenant-certificates-and-routes", Labels: map[string]string{
			"rbac.authorization.k8s.io/aggregate-to-admin": "true",
			"rbac.authorization.k8s.io/aggregate-to-edit":  "true",
		}},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"cert-manager.io"}, Resources: []string{"certificates", "certificaterequests", "issuers"},
				Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"acme.cert-manager.io"}, Resources: []string{"orders", "challenges"},
				Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes", "grpcroutes", "referencegrants"},
				Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		},
	}
	createOrUpdate(t, c, object(t, role))
	eventually(t, 30*time.Second, func() error {
		admin := &rbacv1.ClusterRole{}
		if err := c.Get(context.Background(), client.ObjectKey{Name: "admin"}, admin); err != nil {
			return err
		}
		for _, r := range admin.Rules {
			for _, g := range r.APIGroups {
				if g == "gateway.networking.k8s.io" {
					return nil
				}
			}
		}
		return fmt.Errorf("the admin role does not aggregate the Gateway API yet")
	})
}

// installChartPolicies creates the chart's ValidatingAdmissionPolicies and bindings, as helm
// install would, and waits until the API server enforces the traffic policy.
func installChartPolicies(t *testing.T, c client.Client, probeNamespace string, prober client.Client) {
	t.Helper()
	for _, obj := range render(t, valueSets[0]) {
		if kind := obj.GetKind(); kind == "ValidatingAdmissionPolicy" || kind == "ValidatingAdmissionPolicyBinding" {
			createOrUpdate(t, c, obj)
		}
	}
	// The API server loads policies asynchronously; wait until it refuses an external IP.
	eventually(t, 30*time.Second, func() error {
		err := prober.Create(context.Background(), object(t, serviceManifest(probeNamespace, "probe", "externalIPs: [203.0.113.7]")), client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), trafficPolicy) {
			return nil
		}
		return fmt.Errorf("policy not enforced yet: %v", err)
	})
}

func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func serviceManifest(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n  ports: [{port: 80}]\n  selector: {app: web}\n%s\n",
		name, ns, indentYAML(spec))
}

func ingressManifest(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: %s, namespace: %s}\nspec:\n%s\n", name, ns, indentYAML(spec))
}

func routeManifest(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: %s, namespace: %s}\nspec:\n"+
		"  parentRefs: [{name: public, namespace: gateways}]\n  rules: [{backendRefs: [{name: web, port: 80}]}]\n%s\n", name, ns, indentYAML(spec))
}

func certificateManifest(ns, name, spec string) string {
	return fmt.Sprintf("apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: %s, namespace: %s}\nspec:\n"+
		"  secretName: %s\n  issuerRef: {name: shared-ca, kind: ClusterIssuer}\n%s\n", name, ns, name, indentYAML(spec))
}

func indentYAML(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n")
}

const ruleTo = "  http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}"

// TestTenantAdminCannotHijackTraffic acts as mallory, the admin of one tenant, trying to take
// traffic or names that belong to another tenant (victim.example.com) or to the cluster, through
// every object the built-in admin role (with cert-manager's and the Gateway API's aggregated
// rights) lets her write. Each attempt is refused by the chart's ValidatingAdmissionPolicy, whose
// message names the field; what is hers (her hostnames, ClusterIP Services) passes. The same
// checks hold on update, never block an object being deleted, and do not apply to the operator.
func TestTenantAdminCannotHijackTraffic(t *testing.T) {
	c := apiServer(t)
	grantTenantAdminsCertificatesAndRoutes(t, c)
	setUpTenant(t, c, tenantFor("victim", []string{"victim.example.com"}))
	ns := setUpTenant(t, c, tenantFor("mallory", []string{"mallory.example.com", "*.apps.mallory.example.com"}, "mallory"))
	exposer := tenantFor("exposer", []string{"exposer.example.com"}, "exa")
	exposer.Spec.Firewall.AllowedServiceTypes = []corev1.ServiceType{corev1.ServiceTypeLoadBalancer}
	exposerNS := setUpTenant(t, c, exposer)
	mallory := clientAs(t, "mallory")
	installChartPolicies(t, c, ns, mallory)

	tests := []struct {
		name     string
		manifest string
		want     string // a part of the refusal; "" when it must be allowed
	}{
		{"Service with external IPs (CVE-2020-8554)", serviceManifest(ns, "mitm", "externalIPs: [10.96.0.1]"),
			"spec.externalIPs: 10.96.0.1 is refused"},
		{"ExternalName Service to another tenant's database", serviceManifest(ns, "db-proxy", "type: ExternalName\nexternalName: postgres.tenant-victim.svc.cluster.local"),
			"spec.type: ExternalName is refused"},
		{"NodePort Service", serviceManifest(ns, "np", "type: NodePort"),
			"spec.type: NodePort is not allowed for this tenant, whose Tenant spec.firewall.allowedServiceTypes lists none"},
		{"LoadBalancer Service", serviceManifest(ns, "lb", "type: LoadBalancer"),
			"spec.type: LoadBalancer is not allowed"},
		{"ClusterIP Service", serviceManifest(ns, "web", ""), ""},
		{"headless Service", serviceManifest(ns, "web-headless", "clusterIP: None"), ""},

		{"Ingress for another tenant's hostname", ingressManifest(ns, "steal", "rules:\n- host: victim.example.com\n"+ruleTo),
			"spec.rules[0].host: victim.example.com is not one of the tenant's hostnames (mallory.example.com, *.apps.mallory.example.com)"},
		{"Ingress with the stolen hostname second", ingressManifest(ns, "steal2", "rules:\n- host: mallory.example.com\n"+ruleTo+"\n- host: victim.example.com\n"+ruleTo),
			"spec.rules[1].host: victim.example.com"},
		{"Ingress rule without a host", ingressManifest(ns, "catch-all", "rules:\n- "+strings.TrimPrefix(ruleTo, "  ")),
			"spec.rules[0].host: a rule without a host answers for every hostname"},
		{"Ingress with a default backend", ingressManifest(ns, "default", "defaultBackend: {service: {name: web, port: {number: 80}}}"),
			"spec.defaultBackend: an Ingress in a tenant namespace cannot have a default backend"},
		{"Ingress TLS for another tenant's hostname", ingressManifest(ns, "tls", "tls: [{hosts: [mallory.example.com, victim.example.com], secretName: x}]\nrules:\n- host: mallory.example.com\n"+ruleTo),
			"spec.tls[0].hosts[1]: victim.example.com is not one of the tenant's hostnames"},
		{"Ingress two labels under the tenant's wildcard", ingressManifest(ns, "deep", "rules:\n- host: a.b.apps.mallory.example.com\n"+ruleTo),
			"spec.rules[0].host: a.b.apps.mallory.example.com is not one of"},
		{"Ingress for a wider wildcard", ingressManifest(ns, "wider", "rules:\n- host: \"*.mallory.example.com\"\n"+ruleTo),
			"spec.rules[0].host: *.mallory.example.com is not one of"},
		{"Ingress for the tenant's hostname", ingressManifest(ns, "own", "tls: [{hosts: [mallory.example.com], secretName: tenant-tls}]\nrules:\n- host: mallory.example.com\n"+ruleTo), ""},
		{"Ingress for one label under the tenant's wildcard", ingressManifest(ns, "shop", "rules:\n- host: shop.apps.mallory.example.com\n"+ruleTo), ""},
		{"Ingress for the tenant's wildcard itself", ingressManifest(ns, "wild", "rules:\n- host: \"*.apps.mallory.example.com\"\n"+ruleTo), ""},

		{"HTTPRoute for another tenant's hostname", routeManifest(ns, "steal", "hostnames: [mallory.example.com, victim.example.com]"),
			"spec.hostnames[1]: victim.example.com is not one of the tenant's hostnames"},
		{"HTTPRoute without hostnames", routeManifest(ns, "catch-all", ""),
			"spec.hostnames: a route without hostnames answers for every hostname"},
		{"HTTPRoute for the tenant's hostname", routeManifest(ns, "own", "hostnames: [mallory.example.com]"), ""},

		{"Certificate for another tenant's name", certificateManifest(ns, "steal", "dnsNames: [mallory.example.com, victim.example.com]"),
			"spec.dnsNames[1]: victim.example.com is not one of the tenant's hostnames"},
		{"Certificate for another tenant's name in capitals", certificateManifest(ns, "shout", "dnsNames: [VICTIM.example.com]"),
			"spec.dnsNames[0]: VICTIM.example.com is not one of"},
		{"Certificate with another tenant's common name", certificateManifest(ns, "cn", "commonName: victim.example.com\ndnsNames: [mallory.example.com]"),
			"spec.commonName: victim.example.com is not one of"},
		{"Certificate for another namespace's service name", certificateManifest(ns, "svc", "dnsNames: [postgres.tenant-victim.svc]"),
			"spec.dnsNames[0]: postgres.tenant-victim.svc is not one of"},
		{"Certificate with an IP address", certificateManifest(ns, "ip", "dnsNames: [mallory.example.com]\nipAddresses: [10.96.0.1]"),
			"spec.ipAddresses: a Certificate in a tenant namespace may name only DNS names"},
		{"Certificate with a URI (a mesh identity)", certificateManifest(ns, "uri", "dnsNames: [mallory.example.com]\nuris: [\"spiffe://cluster.local/ns/tenant-victim/sa/default\"]"),
			"spec.uris: a Certificate in a tenant namespace may name only DNS names"},
		{"Certificate with a literal subject", certificateManifest(ns, "literal", "literalSubject: CN=victim.example.com"),
			"spec.literalSubject: a Certificate in a tenant namespace may name only DNS names"},
		{"CA certificate from the shared issuer", certificateManifest(ns, "ca", "dnsNames: [mallory.example.com]\nisCA: true"),
			"spec.isCA: a Certificate in a tenant namespace cannot be a CA"},
		{"Certificate for the tenant's names", certificateManifest(ns, "own", "commonName: mallory.example.com\ndnsNames: [mallory.example.com, x.apps.mallory.example.com]"), ""},

		{"CertificateRequest with a raw CSR", fmt.Sprintf("apiVersion: cert-manager.io/v1\nkind: CertificateRequest\nmetadata: {name: csr, namespace: %s}\n"+
			"spec:\n  request: %s\n  issuerRef: {name: shared-ca, kind: ClusterIssuer}\n", ns, "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"),
			"certificaterequests in tenant namespaces are made by cert-manager from a Certificate"},
		{"ACME Order", fmt.Sprintf("apiVersion: acme.cert-manager.io/v1\nkind: Order\nmetadata: {name: order, namespace: %s}\n"+
			"spec:\n  request: %s\n  issuerRef: {name: letsencrypt, kind: ClusterIssuer}\n  dnsNames: [victim.example.com]\n", ns, "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"),
			"orders in tenant namespaces are made by cert-manager"},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mallory.Create(ctx, object(t, tt.manifest), client.DryRunAll)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			assertRefusedByPolicy(t, err, tt.want)
		})
	}

	t.Run("an allowed type is allowed, the others still refused", func(t *testing.T) {
		exa := clientAs(t, "exa")
		if err := exa.Create(ctx, object(t, serviceManifest(exposerNS, "lb", "type: LoadBalancer")), client.DryRunAll); err != nil {
			t.Fatalf("LoadBalancer refused for a tenant that allows it: %v", err)
		}
		err := exa.Create(ctx, object(t, serviceManifest(exposerNS, "np", "type: NodePort")), client.DryRunAll)
		assertRefusedByPolicy(t, err, "spec.type: NodePort is not allowed for this tenant, whose Tenant spec.firewall.allowedServiceTypes lists LoadBalancer")
	})

	t.Run("an update is checked like a create", func(t *testing.T) {
		own := object(t, ingressManifest(ns, "updated", "rules:\n- host: mallory.example.com\n"+ruleTo))
		if err := mallory.Create(ctx, own); err != nil {
			t.Fatal(err)
		}
		rules, _, _ := unstructured.NestedSlice(own.Object, "spec", "rules")
		rules[0].(map[string]any)["host"] = "victim.example.com"
		_ = unstructured.SetNestedSlice(own.Object, rules, "spec", "rules")
		assertRefusedByPolicy(t, mallory.Update(ctx, own), "spec.rules[0].host: victim.example.com is not one of")
	})

	t.Run("an object being deleted is never held back", func(t *testing.T) {
		// An Ingress whose hostname the tenant loses while a finalizer holds it: removing the
		// finalizer must still go through, or the object could never go away.
		held := object(t, ingressManifest(ns, "held", "rules:\n- host: shop.apps.mallory.example.com\n"+ruleTo))
		held.SetFinalizers([]string{"example.com/hold"})
		if err := mallory.Create(ctx, held); err != nil {
			t.Fatal(err)
		}
		shrunk := tenantFor("mallory", []string{"mallory.example.com"}, "mallory")
		createOrUpdate(t, c, object(t, builders.Namespace(shrunk)))
		t.Cleanup(func() {
			createOrUpdate(t, c, object(t, builders.Namespace(tenantFor("mallory", []string{"mallory.example.com", "*.apps.mallory.example.com"}, "mallory"))))
		})
		eventually(t, 10*time.Second, func() error {
			probe := object(t, ingressManifest(ns, "probe", "rules:\n- host: shop.apps.mallory.example.com\n"+ruleTo))
			if err := mallory.Create(ctx, probe, client.DryRunAll); err == nil || !strings.Contains(err.Error(), trafficPolicy) {
				return fmt.Errorf("the shrunk hostnames are not enforced yet: %v", err)
			}
			return nil
		})
		// Its update is refused now, as long as it is not being deleted.
		if err := mallory.Get(ctx, client.ObjectKeyFromObject(held), held); err != nil {
			t.Fatal(err)
		}
		held.SetAnnotations(map[string]string{"touched": "yes"})
		assertRefusedByPolicy(t, mallory.Update(ctx, held.DeepCopy()), "spec.rules[0].host: shop.apps.mallory.example.com is not one of")
		if err := mallory.Delete(ctx, held); err != nil {
			t.Fatal(err)
		}
		if err := mallory.Get(ctx, client.ObjectKeyFromObject(held), held); err != nil {
			t.Fatal(err)
		}
		held.SetFinalizers(nil)
		if err := mallory.Update(ctx, held); err != nil {
			t.Fatalf("removing the finalizer of an Ingress being deleted: %v", err)
		}
		if err := mallory.Get(ctx, client.ObjectKeyFromObject(held), held); !apierrors.IsNotFound(err) {
			t.Fatalf("the Ingress is still there after its finalizer went: %v", err)
		}
	})

	t.Run("the operator is exempt", func(t *testing.T) {
		// The operator's service account, bound to admin in the tenant's namespace, writes the
		// tenant's route and the database's certificate, whose .svc names are no hostname.
		binding := &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: "operator-for-test", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "tenant-operator", Namespace: "tenant-operator-system"}},
		}
		createOrUpdate(t, c, object(t, binding))
		operator := clientAs(t, operatorSA, "system:serviceaccounts", "system:serviceaccounts:tenant-operator-system")
		tenant := tenantFor("mallory", []string{"mallory.example.com"})
		opts := builders.DefaultOptions()
		opts.DefaultIssuer = v1alpha1.IssuerReference{Name: "shared-ca", Kind: "ClusterIssuer"}
		for _, obj := range []any{builders.Ingress(tenant, opts), builders.DatabaseCertificate(tenant, opts)} {
			u := object(t, obj)
			eventually(t, 10*time.Second, func() error { // RBAC takes a moment to see the binding
				return operator.Create(ctx, u.DeepCopy(), client.DryRunAll)
			})
		}
		// The same database certificate from the tenant's admin, without the operator's labels,
		// is refused: its names are no hostname of the tenant.
		cert := object(t, builders.DatabaseCertificate(tenant, opts))
		cert.SetLabels(nil)
		assertRefusedByPolicy(t, mallory.Create(ctx, cert, client.DryRunAll), "spec.dnsNames[0]: postgres is not one of the tenant's hostnames")
	})
}

// assertRefusedByPolicy checks that err is the traffic policy's refusal and names what it must.
func assertRefusedByPolicy(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("allowed; want refused with %q", want)
	}
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+trafficPolicy+"'") {
		t.Fatalf("refused by something else than %s: %v", trafficPolicy, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("the refusal does not say %q:\n%v", want, err)
	}
}

// TestQuotaStopsAnEditorFillingEtcdOrADisk acts as an editor of a tenant whose spec.quota lowers
// count/configmaps to 5: creating ConfigMaps stops at the fifth, refused by the API server's
// quota; a pod asking for more node disk than the quota is refused; a pod that says nothing about
// disk is admitted with the LimitRange's ephemeral-storage default. A tenant on the default
// quota takes everything the operator puts in its namespace, database pod included, with room.
func TestQuotaStopsAnEditorFillingEtcdOrADisk(t *testing.T) {
	c := apiServer(t)
	ctx := context.Background()
	tenant := tenantFor("filler", []string{"filler.example.com"})
	tenant.Spec.Access.Editors = []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "ed"}}
	tenant.Spec.Quota = corev1.ResourceList{builders.QuotaConfigMaps: resource.MustParse("5")}
	ns := setUpTenant(t, c, tenant)
	ed := clientAs(t, "ed")

	created := 0
	var refusal error
	for i := range 10 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("blob-%d", i), Namespace: ns},
			Data: map[string]string{"blob": strings.Repeat("x", 512*1024)}}
		if refusal = ed.Create(ctx, cm); refusal != nil {
			break
		}
		created++
	}
	if created != 5 || refusal == nil || !apierrors.IsForbidden(refusal) ||
		!strings.Contains(refusal.Error(), "exceeded quota: "+builders.QuotaName) || !strings.Contains(refusal.Error(), "count/configmaps") {
		t.Fatalf("created %d ConfigMaps, then %v; want 5, then the quota's refusal naming count/configmaps", created, refusal)
	}

	pod := func(name string, resources corev1.ResourceRequirements) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(65532)),
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:1", Resources: resources,
					SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
						Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
			},
		}
	}
	greedy := pod("greedy", corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("30Gi")}})
	err := ed.Create(ctx, greedy)
	if err == nil || !strings.Contains(err.Error(), "exceeded quota: "+builders.QuotaName) || !strings.Contains(err.Error(), "limits.ephemeral-storage") {
		t.Errorf("a pod asking for 30Gi of node disk: %v; want the quota's refusal naming limits.ephemeral-storage", err)
	}
	quiet := pod("quiet", corev1.ResourceRequirements{})
	if err := ed.Create(ctx, quiet); err != nil {
		t.Fatalf("a pod without resources is refused: %v", err)
	}
	if got := quiet.Spec.Containers[0].Resources.Limits[corev1.ResourceEphemeralStorage]; got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("the pod's ephemeral-storage limit is %s, want the LimitRange's 1Gi", got.String())
	}

	t.Run("the operator's objects fit the default quota", func(t *testing.T) {
		tenant := tenantFor("fits", []string{"fits.example.com"})
		ns := setUpTenant(t, c, tenant)
		opts := builders.DefaultOptions()
		opts.DefaultIssuer = v1alpha1.IssuerReference{Name: "shared-ca", Kind: "ClusterIssuer"}
		for _, obj := range []any{
			builders.DatabaseSecret(tenant, "x"), builders.DatabaseBackupSecret(tenant, "x"), builders.DatabaseProbeSecret(tenant, "x"), builders.DatabaseConfigMap(tenant),
			builders.DatabaseCAConfigMap(tenant, "x"), builders.DatabaseService(tenant), builders.DatabaseHeadlessService(tenant),
			builders.DatabaseCertificate(tenant, opts), builders.TenantCertificate(tenant, opts), builders.Ingress(tenant, opts),
		} {
			if err := c.Create(ctx, object(t, obj)); err != nil {
				t.Fatalf("the operator's %s is refused: %v", key(object(t, obj)), err)
			}
		}
		// The database pod, as the StatefulSet controller makes it: the template with its claim.
		sts := object(t, builders.DatabaseStatefulSet(tenant, opts))
		claims, _, _ := unstructured.NestedSlice(sts.Object, "spec", "volumeClaimTemplates")
		claim := &unstructured.Unstructured{Object: claims[0].(map[string]any)}
		claim.SetAPIVersion("v1")
		claim.SetKind("PersistentVolumeClaim")
		claim.SetName(builders.DatabaseVolumeClaimName(tenant))
		claim.SetNamespace(ns)
		if err := c.Create(ctx, claim); err != nil {
			t.Fatalf("the database's volume claim is refused: %v", err)
		}
		template, _, _ := unstructured.NestedMap(sts.Object, "spec", "template")
		db := &unstructured.Unstructured{Object: template}
		db.SetAPIVersion("v1")
		db.SetKind("Pod")
		db.SetName(builders.DatabaseName(tenant) + "-0")
		db.SetNamespace(ns)
		volumes, _, _ := unstructured.NestedSlice(db.Object, "spec", "volumes")
		volumes = append(volumes, map[string]any{"name": "data", "persistentVolumeClaim": map[string]any{"claimName": claim.GetName()}})
		_ = unstructured.SetNestedSlice(db.Object, volumes, "spec", "volumes")
		if err := c.Create(ctx, db); err != nil {
			t.Fatalf("the database pod is refused: %v", err)
		}
		eventually(t, 10*time.Second, func() error {
			q := &corev1.ResourceQuota{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: builders.QuotaName}, q); err != nil {
				return err
			}
			used := q.Status.Used[builders.QuotaSecrets]
			if used.Value() < 2 {
				return fmt.Errorf("quota usage not counted yet: %v", q.Status.Used)
			}
			for name, u := range q.Status.Used {
				doubled := u.DeepCopy()
				doubled.Add(u)
				if h := q.Status.Hard[name]; name != corev1.ResourceRequestsStorage && doubled.Cmp(h) > 0 {
					t.Errorf("the operator's objects use %s of %s, more than half of %s", u.String(), name, h.String())
				}
			}
			return nil
		})
	})
}

// TestTenantNetworkPoliciesValidOnAPIServer: the policies the builder makes for a tenant that
// allows 0.0.0.0/0 and ::/0 both ways, with their excepts, pass the API server's validation
// (each except strictly inside its cidr), for the default options and exact cluster ranges.
func TestTenantNetworkPoliciesValidOnAPIServer(t *testing.T) {
	c := apiServer(t)
	tenant := tenantFor("wide-open", []string{"wide-open.example.com"})
	tenant.Spec.Firewall.AllowedCIDRs = []string{"0.0.0.0/0", "::/0", "203.0.113.0/24"}
	tenant.Spec.Firewall.Egress = []v1alpha1.EgressRule{{ToCIDRs: []string{"0.0.0.0/0", "::/0"}}, {ToCIDRs: []string{"128.0.0.0/1"}, Ports: []int32{443}}}
	createOrUpdate(t, c, object(t, builders.Namespace(tenant)))
	exact := builders.DefaultOptions()
	exact.Networks = builders.NetworkOptions{PodCIDRs: []string{"10.244.0.0/16"}, ServiceCIDRs: []string{"10.96.0.0/12"}, NodeCIDRs: []string{"192.168.10.0/24"}}
	for name, opts := range map[string]builders.Options{"defaults": builders.DefaultOptions(), "exact ranges": exact} {
		t.Run(name, func(t *testing.T) {
			var objs []*unstructured.Unstructured
			excepts := 0
			for _, p := range builders.NetworkPolicies(tenant, opts) {
				u := object(t, p)
				policies, _, _ := unstructured.NestedSlice(u.Object, "spec", "egress")
				ingress, _, _ := unstructured.NestedSlice(u.Object, "spec", "ingress")
				excepts += strings.Count(fmt.Sprint(append(policies, ingress...)), "except")
				objs = append(objs, u)
			}
			if excepts < 4 {
				t.Fatalf("only %d ipBlocks carry excepts", excepts)
			}
			validate(t, c, objs)
		})
	}
}
