package chart

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/tenantops/tenant-operator/test/controlplane"
)

// TestHelmInstallFindsTheMonitoringAPI installs the chart with helm itself into a control plane of
// its own, so that helm's discovery of a real API server, not --api-versions, decides "auto".
// Without the Prometheus Operator's CRDs the release installs without its monitoring objects and
// NOTES.txt says why; once the CRDs are there, an upgrade with the same values creates the
// PrometheusRule (with TenantDown), the ServiceMonitor and the dashboard, and NOTES.txt says so.
func TestHelmInstallFindsTheMonitoringAPI(t *testing.T) {
	tool(t, "helm")
	env, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		t.Fatalf("start a control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop the control plane: %v", err)
		}
	})
	admin, err := env.Environment.AddUser(envtest.User{Name: "helm", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The control plane has our CRDs already, not owned by a release: the chart leaves them.
	release := []string{releaseName, "charts/tenant-operator", "--namespace", releaseNamespace,
		"--kubeconfig", kubeconfigPath, "--set", "crds.install=false"}

	notes := helmAgainst(t, append([]string{"install", "--create-namespace"}, release...)...)
	for _, want := range []string{
		"PrometheusRule tenant-operator (the alerts, TenantDown among them): not installed (the cluster does not serve monitoring.coreos.com/v1/PrometheusRule; prometheusRule.enabled=auto, true installs it anyway)",
		"ServiceMonitor tenant-operator (scrapes the operator's metrics): not installed (the cluster does not serve monitoring.coreos.com/v1/ServiceMonitor; serviceMonitor.enabled=auto, true installs it anyway)",
		"ConfigMap tenant-operator-dashboard (the Grafana dashboard): not installed (the cluster does not serve monitoring.coreos.com/v1/PrometheusRule; grafanaDashboard.enabled=auto, true installs it anyway)",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("helm install's notes lack %q:\n%s", want, notes)
		}
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "tenant-operator"}, &appsv1.Deployment{}); err != nil {
		t.Errorf("the release installed no Deployment: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "tenant-operator-dashboard"}, &corev1.ConfigMap{}); err == nil {
		t.Error("the release installed the dashboard ConfigMap where the cluster does not serve the Prometheus Operator's API")
	}
	manifest, err := decode([]byte(helmAgainst(t, "get", "manifest", releaseName, "--namespace", releaseNamespace, "--kubeconfig", kubeconfigPath)))
	if err != nil {
		t.Fatal(err)
	}
	if got := monitoringObjects(manifest); len(got) > 0 {
		t.Errorf("the release has %v where the cluster does not serve the Prometheus Operator's API", got)
	}

	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(repoRoot(t), "config", "crd", "external", "prometheus-operator")},
		ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatalf("install the Prometheus Operator's CRDs: %v", err)
	}
	notes = helmAgainst(t, append([]string{"upgrade"}, release...)...)
	for _, want := range []string{
		"PrometheusRule tenant-operator (the alerts, TenantDown among them): installed (the cluster serves monitoring.coreos.com/v1/PrometheusRule; prometheusRule.enabled=auto)",
		"ServiceMonitor tenant-operator (scrapes the operator's metrics): installed (the cluster serves monitoring.coreos.com/v1/ServiceMonitor; serviceMonitor.enabled=auto)",
		"ConfigMap tenant-operator-dashboard (the Grafana dashboard): installed (the cluster serves monitoring.coreos.com/v1/PrometheusRule; grafanaDashboard.enabled=auto)",
		"TenantDown fires\nwithin 2 minutes",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("helm upgrade's notes lack %q:\n%s", want, notes)
		}
	}
	for _, kind := range []string{"PrometheusRule", "ServiceMonitor"} {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: kind})
		if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "tenant-operator"}, obj); err != nil {
			t.Errorf("the upgrade made no %s: %v", kind, err)
			continue
		}
		if kind == "PrometheusRule" && !hasAlert(obj, "TenantDown") {
			t.Errorf("the PrometheusRule has no TenantDown alert: %v", obj.Object["spec"])
		}
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "tenant-operator-dashboard"}, &corev1.ConfigMap{}); err != nil {
		t.Errorf("the upgrade made no dashboard ConfigMap: %v", err)
	}
}

// hasAlert tells whether a PrometheusRule object has an alert of that name.
func hasAlert(rule *unstructured.Unstructured, name string) bool {
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			if r.(map[string]any)["alert"] == name {
				return true
			}
		}
	}
	return false
}

// helmAgainst runs bin/helm against a cluster and returns its output. HOME is a fresh directory
// too, so that no discovery cached by an earlier call hides what the cluster serves now.
func helmAgainst(t *testing.T, args ...string) string {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(tool(t, "helm"), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
