package chart

import (
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
	chart := render(t, valueSets[0])
	kustomized := kustomizeBuild(t, "config/default")

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
