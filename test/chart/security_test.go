package chart

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
)

// typed converts a rendered object into its Go type.
func typed[T any](t testing.TB, obj *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, out, true); err != nil {
		t.Fatalf("%s: %v", key(obj), err)
	}
	return out
}

// restrictedViolation is why a pod template violates Pod Security "restricted", as evaluated by
// k8s.io/pod-security-admission, the library the API server enforces Pod Security with; "" when
// it passes.
func restrictedViolation(t testing.TB, tmpl *corev1.PodTemplateSpec) string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	result := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &tmpl.ObjectMeta, &tmpl.Spec))
	if result.Allowed {
		return ""
	}
	return result.ForbiddenReason() + ": " + result.ForbiddenDetail()
}

// TestPodSecurityCheckCatchesViolations keeps the restricted check honest: the operator's pod
// with privilege escalation allowed must fail it.
func TestPodSecurityCheckCatchesViolations(t *testing.T) {
	deployment := typed[appsv1.Deployment](t, one(t, render(t, valueSets[0]), "Deployment"))
	deployment.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
	if restrictedViolation(t, &deployment.Spec.Template) == "" {
		t.Fatal("a container allowing privilege escalation passed restricted")
	}
}

// TestDeployment checks, for every value set, the operator's Deployment: replicas and leader
// election, Pod Security restricted, a read-only root file system, the webhook's certificate
// mounted where --webhook-cert-dir says, and the operator's namespace passed to it.
func TestDeployment(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, vs)
			deployment := typed[appsv1.Deployment](t, one(t, objs, "Deployment"))
			pod := deployment.Spec.Template.Spec

			wantReplicas := int32(2)
			if vs.name == "everything" {
				wantReplicas = 3
			}
			if got := ptr.Deref(deployment.Spec.Replicas, 1); got != wantReplicas {
				t.Errorf("replicas = %d, want %d", got, wantReplicas)
			}
			if v := restrictedViolation(t, &deployment.Spec.Template); v != "" {
				t.Errorf("the operator's pod violates Pod Security restricted: %s", v)
			}

			if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
				t.Fatalf("want one container, got %d and %d init containers", len(pod.Containers), len(pod.InitContainers))
			}
			c := pod.Containers[0]
			sc := c.SecurityContext
			if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container security context = %+v, want read-only root, no privilege escalation, drop ALL", sc)
			}
			psc := pod.SecurityContext
			if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) != 65532 ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context = %+v, want non-root 65532 and seccomp RuntimeDefault", psc)
			}

			args := map[string]string{}
			for _, a := range c.Args[1:] {
				name, value, _ := strings.Cut(a, "=")
				args[name] = value
			}
			if c.Args[0] != "manager" {
				t.Errorf("first argument = %q, want the manager subcommand", c.Args[0])
			}
			if args["--leader-elect"] != "true" {
				t.Errorf("--leader-elect = %q, want true with %d replicas", args["--leader-elect"], wantReplicas)
			}
			if args["--enable-webhooks"] != "true" {
				t.Errorf("--enable-webhooks = %q", args["--enable-webhooks"])
			}
			certDir := args["--webhook-cert-dir"]
			mounted := false
			for _, m := range c.VolumeMounts {
				if m.MountPath == certDir && m.ReadOnly {
					for _, v := range pod.Volumes {
						mounted = mounted || (v.Name == m.Name && v.Secret != nil)
					}
				}
			}
			if !mounted {
				t.Errorf("no Secret mounted read-only at --webhook-cert-dir=%q", certDir)
			}
			if len(c.Env) == 0 || c.Env[0].Name != "POD_NAMESPACE" || c.Env[0].ValueFrom == nil ||
				c.Env[0].ValueFrom.FieldRef == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
				t.Errorf("env = %+v, want POD_NAMESPACE from metadata.namespace", c.Env)
			}
			if deployment.Spec.Template.Spec.ServiceAccountName != one(t, objs, "ServiceAccount").GetName() {
				t.Errorf("the pod runs as %q, not the chart's ServiceAccount", pod.ServiceAccountName)
			}
			ports := map[string]string{}
			for _, p := range c.Ports {
				ports[p.Name] = fmt.Sprint(p.ContainerPort)
			}
			if ports["webhook-server"] != args["--webhook-port"] {
				t.Errorf("container port webhook-server %q, --webhook-port %q", ports["webhook-server"], args["--webhook-port"])
			}
			if ":"+ports["metrics"] != args["--metrics-bind-address"] || ":"+ports["health"] != args["--health-probe-bind-address"] {
				t.Errorf("container ports %v, flags %v", ports, args)
			}
			if c.LivenessProbe == nil || c.ReadinessProbe == nil {
				t.Error("want liveness and readiness probes")
			}
		})
	}
}

// TestLeaderElectionIsRequiredWithReplicas checks that values.schema.json refuses several replicas
// without leader election, which would reconcile every Tenant twice at once.
func TestLeaderElectionIsRequiredWithReplicas(t *testing.T) {
	out := helmTemplateErr(t, "--set", "replicaCount=2", "--set", "leaderElection.enabled=false")
	if !strings.Contains(out, "leaderElection") {
		t.Fatalf("want a schema error naming leaderElection, got:\n%s", out)
	}
	// One replica may run without.
	objs := helmTemplate(t, nil, "--set", "replicaCount=1", "--set", "leaderElection.enabled=false")
	if len(only(objs, "PodDisruptionBudget")) != 0 {
		t.Error("a PodDisruptionBudget with minAvailable 1 for a single replica would block node drains")
	}
}

// TestRBAC checks every Role and ClusterRole for wildcards, and that the operator's ClusterRole
// is exactly the one controller-gen generated from the kubebuilder markers.
func TestRBAC(t *testing.T) {
	generated := typed[rbacv1.ClusterRole](t, decodeFile(t, "config/rbac/role.yaml")[0])
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, vs)
			roles := append(only(objs, "ClusterRole"), only(objs, "Role")...)
			if len(roles) < 2 {
				t.Fatalf("want the operator's ClusterRole and the leader-election Role, got %v", keys(roles))
			}
			for _, obj := range roles {
				role := typed[rbacv1.ClusterRole](t, obj)
				for i, rule := range role.Rules {
					for _, list := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.ResourceNames, rule.NonResourceURLs} {
						for _, s := range list {
							if strings.Contains(s, "*") {
								t.Errorf("%s rule %d has a wildcard: %+v", key(obj), i, rule)
							}
						}
					}
					if slices.Contains(rule.Verbs, "escalate") || slices.Contains(rule.Verbs, "impersonate") {
						t.Errorf("%s rule %d grants %v", key(obj), i, rule.Verbs)
					}
				}
			}

			name := one(t, objs, "Deployment").GetName()
			var operatorRole *rbacv1.ClusterRole
			for _, obj := range only(objs, "ClusterRole") {
				if obj.GetName() == name {
					operatorRole = typed[rbacv1.ClusterRole](t, obj)
				}
			}
			if operatorRole == nil {
				t.Fatalf("no ClusterRole %q", name)
			}
			if !equalJSON(t, operatorRole.Rules, generated.Rules) {
				t.Error("the chart's ClusterRole differs from config/rbac/role.yaml; run make manifests")
			}
			binding := typed[rbacv1.ClusterRoleBinding](t, one(t, objs, "ClusterRoleBinding"))
			if binding.RoleRef.Name != name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != name ||
				binding.Subjects[0].Namespace != releaseNamespace {
				t.Errorf("ClusterRoleBinding = %+v, want %s bound to the ServiceAccount", binding, name)
			}
			election := typed[rbacv1.Role](t, one(t, objs, "Role"))
			if election.Namespace != releaseNamespace || !slices.ContainsFunc(election.Rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.APIGroups, "coordination.k8s.io") && slices.Contains(r.Resources, "leases")
			}) {
				t.Errorf("leader-election Role = %+v, want leases in %s", election, releaseNamespace)
			}
		})
	}
}
