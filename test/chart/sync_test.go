package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestChartFilesInSync checks that the chart's copies under charts/tenant-operator/files are the
// files of config/ that hack/chart-sync.sh copies, and nothing else: edits belong in config/.
func TestChartFilesInSync(t *testing.T) {
	root := repoRoot(t)
	sources := map[string][]string{
		"crds":       glob(t, root, "config/crd/bases/*.yaml"),
		"rbac":       {"config/rbac/role.yaml", "config/rbac/erasurerequest_roles.yaml"},
		"webhook":    {"config/webhook/manifests.yaml"},
		"policies":   policyFiles(t, root),
		"prometheus": {"config/prometheus/prometheus-rule.yaml", "config/prometheus/dashboard.json"},
	}
	for dir, files := range sources {
		copies := glob(t, root, filepath.Join("charts/tenant-operator/files", dir, "*"))
		if len(copies) != len(files) {
			t.Errorf("charts/tenant-operator/files/%s has %v, want copies of %v; run make manifests", dir, copies, files)
		}
		for _, src := range files {
			want, err := os.ReadFile(filepath.Join(root, src))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(root, "charts/tenant-operator/files", dir, filepath.Base(src)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("the chart's copy of %s is stale (%v); run make manifests", src, err)
			}
		}
	}
}

// policyFiles are the ValidatingAdmissionPolicy files of config/policies: every YAML file but the
// kustomization.
func policyFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, f := range glob(t, root, "config/policies/*.yaml") {
		if filepath.Base(f) != "kustomization.yaml" {
			out = append(out, f)
		}
	}
	if len(out) < 2 {
		t.Fatalf("config/policies has %v; want protect-tenant-objects.yaml and confine-tenant-traffic.yaml", out)
	}
	return out
}

func glob(t *testing.T, root, pattern string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(root, pattern))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range matches {
		matches[i], _ = filepath.Rel(root, m)
	}
	return matches
}
