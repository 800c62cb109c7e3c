package builders

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files from the builders' output")

// typed converts an apply configuration into the typed object the API server would store.
func typed[T any](t *testing.T, applyConfig any) *T {
	t.Helper()
	data, err := json.Marshal(applyConfig)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func minimal() *v1alpha1.Tenant {
	return &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: "minimal"},
		Spec: v1alpha1.TenantSpec{
			Hostnames: []string{"minimal.example.com"},
			Database:  v1alpha1.DatabaseSpec{Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}},
		},
	}
}

func full() *v1alpha1.Tenant {
	return &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "0b7e2c61-5a3f-4d4e-9d1a-2f6c0e8b9a10"},
		Spec: v1alpha1.TenantSpec{
			Hostnames: []string{"acme.example.com", "www.acme.example.com"},
			TLS:       &v1alpha1.TenantTLS{IssuerRef: &v1alpha1.IssuerReference{Name: "acme-ca", Kind: "Issuer"}},
			Database: v1alpha1.DatabaseSpec{
				Version: "16",
				Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("200Gi"), StorageClassName: ptr.To("fast")},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
				},
			},
			Firewall: v1alpha1.FirewallSpec{
				IngressPorts:      []int32{8443},
				AllowedCIDRs:      []string{"203.0.113.0/24"},
				IngressNamespaces: []string{"ingress-nginx"},
				Egress:            []v1alpha1.EgressRule{{ToCIDRs: []string{"198.51.100.10/32"}, Ports: []int32{443}}},
			},
			Access: v1alpha1.AccessSpec{
				Admins:  []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice"}},
				Editors: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "ci", Namespace: "ci"}},
				Viewers: []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "auditors"}},
			},
			Quota:          corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("2"), corev1.ResourceRequestsStorage: resource.MustParse("50Gi")},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete,
		},
	}
}

func testOptions() Options {
	opts := DefaultOptions()
	opts.DefaultIssuer = v1alpha1.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer"}
	return opts
}

// allObjects is everything the builders make for a tenant, in a stable order.
func allObjects(t *v1alpha1.Tenant, opts Options) []any {
	objs := []any{Namespace(t), ResourceQuota(t), LimitRange(t)}
	for _, b := range RoleBindings(t) {
		objs = append(objs, b)
	}
	objs = append(objs, TenantReaderClusterRole(t), TenantReaderClusterRoleBinding(t),
		DatabaseSecret(t, "not-a-real-password"), DatabaseConfigMap(t), DatabaseService(t), DatabaseHeadlessService(t),
		DatabaseCertificate(t, opts), DatabaseStatefulSet(t, opts), TenantCertificate(t, opts))
	for _, p := range NetworkPolicies(t, opts) {
		objs = append(objs, p)
	}
	if ingress := Ingress(t, opts); ingress != nil {
		objs = append(objs, ingress)
	}
	return objs
}

// TestGolden compares everything built for a minimal and a full tenant with reviewed golden files;
// run with -update to rewrite them after an intended change, and review the diff.
func TestGolden(t *testing.T) {
	for _, tenant := range []*v1alpha1.Tenant{minimal(), full()} {
		t.Run(tenant.Name, func(t *testing.T) {
			compareGolden(t, tenant.Name+".golden.yaml", allObjects(tenant, testOptions()))
		})
	}
}

// compareGolden marshals objs as a YAML stream and compares it with testdata/name, which -update
// rewrites.
func compareGolden(t *testing.T, name string, objs []any) {
	t.Helper()
	var docs []string
	for _, obj := range objs {
		data, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(data))
	}
	got := strings.Join(docs, "---\n")
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./internal/builders -update): %v", err)
	}
	if got != string(want) {
		t.Fatalf("objects differ from %s; run with -update and review the diff", path)
	}
}

// TestPodTemplatesPassPodSecurityRestricted evaluates every pod template we build with the checks
// of k8s.io/pod-security-admission, the library the API server enforces Pod Security with.
func TestPodTemplatesPassPodSecurityRestricted(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	for _, tenant := range []*v1alpha1.Tenant{minimal(), full()} {
		sts := typed[appsv1.StatefulSet](t, DatabaseStatefulSet(tenant, testOptions()))
		results := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &sts.Spec.Template.ObjectMeta, &sts.Spec.Template.Spec))
		if !results.Allowed {
			t.Errorf("database pod of %s violates Pod Security restricted: %s: %s", tenant.Name, results.ForbiddenReason(), results.ForbiddenDetail())
		}
	}

	// The evaluator must catch a violation, or the test above proves nothing.
	sts := typed[appsv1.StatefulSet](t, DatabaseStatefulSet(minimal(), testOptions()))
	sts.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
	if policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &sts.Spec.Template.ObjectMeta, &sts.Spec.Template.Spec)).Allowed {
		t.Fatal("a container allowing privilege escalation passed restricted")
	}
}

func TestNamespaceEnforcesRestricted(t *testing.T) {
	ns := typed[corev1.Namespace](t, Namespace(minimal()))
	if ns.Name != "tenant-minimal" || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" || ns.Labels[LabelTenant] != "minimal" {
		t.Fatalf("namespace = %s %v", ns.Name, ns.Labels)
	}
}

func TestRoleBindings(t *testing.T) {
	if got := RoleBindings(minimal()); len(got) != 0 {
		t.Fatalf("a tenant without subjects got %d role bindings; nobody should have access", len(got))
	}
	roles := map[string]string{}
	for _, b := range RoleBindings(full()) {
		rb := typed[rbacv1.RoleBinding](t, b)
		if rb.Namespace != "tenant-acme" || len(rb.Subjects) != 1 {
			t.Errorf("binding %s in %s with %d subjects", rb.Name, rb.Namespace, len(rb.Subjects))
		}
		roles[rb.RoleRef.Name] = rb.Subjects[0].Name
	}
	want := map[string]string{"admin": "alice", "edit": "ci", "view": "auditors"}
	for role, subject := range want {
		if roles[role] != subject {
			t.Errorf("role %s bound to %q, want %q", role, roles[role], subject)
		}
	}
	reader := typed[rbacv1.ClusterRole](t, TenantReaderClusterRole(full()))
	if len(reader.Rules) != 1 || strings.Join(reader.Rules[0].Verbs, ",") != "get" || strings.Join(reader.Rules[0].ResourceNames, ",") != "acme" {
		t.Fatalf("tenant reader rules = %+v, want only get on tenants/acme", reader.Rules)
	}
	binding := typed[rbacv1.ClusterRoleBinding](t, TenantReaderClusterRoleBinding(full()))
	if len(binding.Subjects) != 3 {
		t.Fatalf("tenant reader bound to %d subjects, want all 3", len(binding.Subjects))
	}
}
