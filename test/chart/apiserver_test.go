package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/tenantops/tenant-operator/test/controlplane"
)

// The control plane is started once, by the first test that needs it, and stopped by TestMain.
var (
	envOnce sync.Once
	env     *controlplane.Env
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop control plane: %v\n", err)
		}
	}
	os.Exit(code)
}

// apiServer returns a client of the local control plane, with our CRDs, cert-manager's, the
// Prometheus Operator's and the Gateway API's (config/crd/external) installed, and
// kube-controller-manager running for role aggregation and quota usage, which the tests that act
// as tenant users need.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	envOnce.Do(func() {
		env, envErr = controlplane.Start(controlplane.Options{ControllerManager: true})
		if envErr != nil {
			return
		}
		_, envErr = envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
			Paths: []string{
				filepath.Join(repoRoot(t), "config", "crd", "external", "prometheus-operator"),
				filepath.Join(repoRoot(t), "config", "crd", "external", "gateway-api"),
			},
			ErrorIfPathMissing: true,
		})
	})
	if envErr != nil {
		t.Fatalf("start the local control plane: %v", envErr)
	}
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// validate creates every object on the API server with server-side dry run and strict field
// validation, in a fresh copy of the namespaces the objects name, and fails on any object the API
// server refuses: unknown or misplaced fields, schema, CEL rules, RBAC escalation checks,
// admission.
func validate(t *testing.T, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, err := range refusals(t, c, objs) {
		t.Error(err)
	}
}

// refusals are the API server's errors for each object it refuses. Objects that already exist
// (our CRDs, which the control plane installs) are dry-run updated instead.
func refusals(t *testing.T, c client.Client, objs []*unstructured.Unstructured) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ensureNamespaces(t, ctx, c, objs)
	strict := client.FieldValidation(metav1.FieldValidationStrict)
	var errs []error
	for _, obj := range objs {
		obj := obj.DeepCopy()
		err := c.Create(ctx, obj, client.DryRunAll, strict)
		if apierrors.IsAlreadyExists(err) {
			existing := &unstructured.Unstructured{}
			existing.SetGroupVersionKind(obj.GroupVersionKind())
			if err = c.Get(ctx, client.ObjectKeyFromObject(obj), existing); err == nil {
				obj.SetResourceVersion(existing.GetResourceVersion())
				err = c.Update(ctx, obj, client.DryRunAll, strict)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("the API server refuses %s: %w", key(obj), err))
		}
	}
	return errs
}

// TestAPIServerValidationCatchesMistakes keeps the validation honest: rendered objects with a
// misspelled field, a value the CRD's schema forbids, and a bad CEL expression must be refused.
func TestAPIServerValidationCatchesMistakes(t *testing.T) {
	c := apiServer(t)
	objs := render(t, valueSets[1])
	mutate := map[string]func(*unstructured.Unstructured){
		"Deployment": func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(o.Object, int64(2), "spec", "replica")
		},
		"Certificate": func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(o.Object, "DSA", "spec", "privateKey", "algorithm")
		},
		"ServiceMonitor": func(o *unstructured.Unstructured) {
			endpoints, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
			endpoints[0].(map[string]any)["interval"] = "every minute"
			_ = unstructured.SetNestedSlice(o.Object, endpoints, "spec", "endpoints")
		},
		"ValidatingAdmissionPolicy": func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedSlice(o.Object, []any{map[string]any{"expression": "object.metadata.name ==", "reason": "Forbidden"}}, "spec", "validations")
		},
	}
	// One object of each kind: the chart installs two ValidatingAdmissionPolicies.
	var broken []*unstructured.Unstructured
	for _, obj := range objs {
		if m, ok := mutate[obj.GetKind()]; ok && !slices.ContainsFunc(broken, func(b *unstructured.Unstructured) bool { return b.GetKind() == obj.GetKind() }) {
			obj = obj.DeepCopy()
			m(obj)
			broken = append(broken, obj)
		}
	}
	if len(broken) != len(mutate) {
		t.Fatalf("found %d of the %d kinds to break", len(broken), len(mutate))
	}
	errs := refusals(t, c, broken)
	for _, err := range errs {
		t.Log(err)
	}
	if len(errs) != len(broken) {
		t.Errorf("the API server refused %d of %d broken objects: %v", len(errs), len(broken), errs)
	}
}

// ensureNamespaces creates the namespaces the objects live in (the namespace a Helm release is
// installed into exists before the release).
func ensureNamespaces(t *testing.T, ctx context.Context, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, obj := range objs {
		ns := obj.GetNamespace()
		if obj.GetKind() == "Namespace" || ns == "" {
			continue
		}
		err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}
}

// TestChartValidOnAPIServer renders the chart under every value set and has the real API server
// validate each object, then runs the operator's pod (from the Deployment's template) through
// the API server's own Pod Security admission in a namespace that enforces "restricted".
func TestChartValidOnAPIServer(t *testing.T) {
	c := apiServer(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, vs)
			validate(t, c, objs)
			deployment := typed[appsv1.Deployment](t, one(t, objs, "Deployment"))
			admitPodRestricted(t, c, "chart-"+vs.name, deployment)
		})
	}
}

// TestKustomizeValidOnAPIServer builds config/default and config/prometheus and has the real API
// server validate each object.
func TestKustomizeValidOnAPIServer(t *testing.T) {
	c := apiServer(t)
	for _, dir := range []string{"config/default", "config/prometheus"} {
		t.Run(dir, func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			if dir == "config/prometheus" {
				for _, obj := range objs {
					obj.SetNamespace(releaseNamespace)
				}
			}
			validate(t, c, objs)
		})
	}
}

// admitPodRestricted dry-run creates a pod from the Deployment's template in a namespace labelled
// pod-security.kubernetes.io/enforce=restricted, so that the API server's PodSecurity admission
// plugin itself judges it.
func admitPodRestricted(t *testing.T, c client.Client, namespace string, deployment *appsv1.Deployment) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: *deployment.Spec.Template.ObjectMeta.DeepCopy(),
		Spec:       *deployment.Spec.Template.Spec.DeepCopy(),
	}
	pod.Name, pod.Namespace = deployment.Name, namespace
	if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
		t.Errorf("the API server's Pod Security admission refuses the operator's pod: %v", err)
	}

	// The same pod running as root must be refused, or the check above proves nothing.
	root := pod.DeepCopy()
	root.Spec.SecurityContext.RunAsNonRoot = nil
	root.Spec.SecurityContext.RunAsUser = new(int64)
	root.Spec.Containers[0].SecurityContext.RunAsNonRoot = nil
	if err := c.Create(ctx, root, client.DryRunAll); err == nil {
		t.Error("the API server admitted a root pod in a restricted namespace; Pod Security is not enforced")
	}
}
