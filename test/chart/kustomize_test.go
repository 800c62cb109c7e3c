package chart

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestKustomizeMatchesChartDefaults checks that `kustomize build config/default` and the chart with
// its default values install the same objects: the same kinds and names, and the same content
// apart from labels and annotations (Helm's and kustomize's own labels differ, and the chart keeps
// its CRDs on uninstall). The one object only kustomize makes is the Namespace, which `helm install
// --create-namespace` makes; the webhook's cert-manager annotation must agree too.
func TestKustomizeMatchesChartDefaults(t *testing.T) {
	sameObjects(t, kustomizeBuild(t, "config/default"), render(t, valueSets[0]))
}

// TestKustomizeWithMonitoringMatchesChartDefaults follows the comment of config/default's
// ../prometheus line, uncommenting it in a copy of config/, and checks that the result installs
// what the chart's defaults install where the cluster serves the Prometheus Operator's API.
func TestKustomizeWithMonitoringMatchesChartDefaults(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config")
	if err := os.CopyFS(config, os.DirFS(filepath.Join(repoRoot(t), "config"))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(config, "default", "kustomization.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	commented := regexp.MustCompile(`(?m)^  # - \.\./prometheus\b.*$`)
	if !commented.Match(data) {
		t.Fatal("config/default/kustomization.yaml has no commented-out ../prometheus line to uncomment")
	}
	if err := os.WriteFile(path, commented.ReplaceAll(data, []byte("  - ../prometheus")), 0o644); err != nil {
		t.Fatal(err)
	}
	kustomized := kustomizeBuild(t, filepath.Join(config, "default"))
	chart := render(t, valueSets[len(valueSets)-1])
	if got := monitoringObjects(chart); len(got) != 3 {
		t.Fatalf("the chart's defaults with the Prometheus Operator install %v, want its three monitoring objects", got)
	}
	sameObjects(t, kustomized, chart)
}

// sameObjects checks that kustomize and the chart install the same objects.
func sameObjects(t *testing.T, kustomized, chart []*unstructured.Unstructured) {
	t.Helper()
	var withoutNamespace []*unstructured.Unstructured
	for _, obj := range kustomized {
		if obj.GetKind() == "Namespace" {
			if obj.GetName() != releaseNamespace {
				t.Errorf("kustomize makes namespace %q, the chart is rendered into %q", obj.GetName(), releaseNamespace)
			}
			continue
		}
		withoutNamespace = append(withoutNamespace, obj)
	}
	kustomized = withoutNamespace

	if got, want := keys(kustomized), keys(chart); !slices.Equal(got, want) {
		t.Fatalf("config/default installs\n  %v\nthe chart's defaults install\n  %v", got, want)
	}
	byKey := map[string]*unstructured.Unstructured{}
	for _, obj := range chart {
		byKey[key(obj)] = obj
	}
	for _, k := range kustomized {
		h := byKey[key(k)]
		if k.GetKind() == "ValidatingWebhookConfiguration" {
			a, b := k.GetAnnotations()["cert-manager.io/inject-ca-from"], h.GetAnnotations()["cert-manager.io/inject-ca-from"]
			if a != b || a == "" {
				t.Errorf("inject-ca-from: kustomize %q, chart %q", a, b)
			}
		}
		if !equalJSON(t, content(k), content(h)) {
			a, _ := k.MarshalJSON()
			b, _ := h.MarshalJSON()
			t.Errorf("%s differs:\nkustomize: %s\nchart:     %s", key(k), a, b)
		}
	}
}

// content is an object without its labels and annotations.
func content(obj *unstructured.Unstructured) map[string]any {
	c := obj.DeepCopy()
	c.SetLabels(nil)
	c.SetAnnotations(nil)
	return c.Object
}
