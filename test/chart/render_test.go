package chart

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/test/controlplane"
)

// The release every test renders: named so that the chart's objects get the names config/default
// gives them.
const (
	releaseName      = "tenant-operator"
	releaseNamespace = "tenant-operator-system"
	// kubeVersion is the local control plane's. helm built by go install, without the release
	// build's flags, would otherwise assume Kubernetes 1.20, older than the chart's kubeVersion.
	kubeVersion = "v1.37.0"
)

// valueSet is one way of installing the chart.
type valueSet struct {
	name string
	// files are values files under testdata.
	files []string
	// apiVersions are what the cluster serves beyond Kubernetes' own APIs, for
	// .Capabilities.APIVersions (helm template --api-versions).
	apiVersions []string
}

// prometheusOperatorAPI is what the discovery of a cluster with the Prometheus Operator's CRDs
// (those of config/crd/external/prometheus-operator) lists, as helm install sees it: the group
// version and each kind in it.
var prometheusOperatorAPI = []string{
	"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/PrometheusRule", "monitoring.coreos.com/v1/ServiceMonitor",
}

// valueSets are the installations every test renders.
var valueSets = []valueSet{
	{name: "defaults"},
	{name: "monitoring", files: []string{"values-monitoring.yaml"}},
	{name: "existing-webhook-secret", files: []string{"values-existing-secret.yaml"}},
	{name: "custom-image", files: []string{"values-custom-image.yaml"}},
	{name: "everything", files: []string{"values-all.yaml"}},
	{name: "defaults-with-prometheus-operator", apiVersions: prometheusOperatorAPI},
}

// repoRoot is the repository's root directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool is the path of a tool make chart-tools installs into bin/.
func tool(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "bin", name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s not found at %s: run 'make chart-tools' first", name, path)
	}
	return path
}

// run runs a command in the repository root and returns its stdout; stderr goes into the error.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot(t)
	// Keep helm away from the user's configuration, repositories and cache.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// helmTemplate renders the chart with the value files (under testdata) and extra arguments.
func helmTemplate(t testing.TB, files []string, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", releaseName, "charts/tenant-operator", "--namespace", releaseNamespace, "--kube-version", kubeVersion}
	for _, f := range files {
		args = append(args, "--values", filepath.Join("test", "chart", "testdata", f))
	}
	objs, err := decode(run(t, tool(t, "helm"), append(args, extra...)...))
	if err != nil {
		t.Fatalf("decode helm template output: %v", err)
	}
	return objs
}

// render renders the chart for a value set.
func render(t testing.TB, vs valueSet) []*unstructured.Unstructured {
	t.Helper()
	return helmTemplate(t, vs.files, apiVersionArgs(vs.apiVersions)...)
}

// apiVersionArgs are helm template's arguments for a cluster that serves apiVersions.
func apiVersionArgs(apiVersions []string) []string {
	var args []string
	for _, v := range apiVersions {
		args = append(args, "--api-versions", v)
	}
	return args
}

// kustomizeBuild builds a kustomization directory relative to the repository root.
func kustomizeBuild(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := decode(run(t, tool(t, "kustomize"), "build", dir))
	if err != nil {
		t.Fatalf("decode kustomize build %s: %v", dir, err)
	}
	return objs
}

// decode splits a multi-document YAML stream into objects, skipping empty documents.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	reader := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		if s := strings.TrimSpace(string(j)); s == "null" || s == "{}" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("%w in\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
}

// key names an object: Kind namespace/name.
func key(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() == "" {
		return obj.GetKind() + " " + obj.GetName()
	}
	return obj.GetKind() + " " + obj.GetNamespace() + "/" + obj.GetName()
}

// keys are the sorted keys of objects.
func keys(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, obj := range objs {
		out = append(out, key(obj))
	}
	sort.Strings(out)
	return out
}

// only returns the objects of a kind.
func only(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == kind {
			out = append(out, obj)
		}
	}
	return out
}

// one returns the single object of a kind, failing the test when there is not exactly one.
func one(t testing.TB, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := only(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, got %d: %v", kind, len(found), keys(objs))
	}
	return found[0]
}

// helmTemplateErr renders the chart with extra arguments, expecting helm to refuse; it returns
// helm's error output.
func helmTemplateErr(t testing.TB, extra ...string) string {
	t.Helper()
	args := append([]string{"template", releaseName, "charts/tenant-operator", "--namespace", releaseNamespace, "--kube-version", kubeVersion}, extra...)
	cmd := exec.Command(tool(t, "helm"), args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("helm %s succeeded; want an error", strings.Join(args, " "))
	}
	return string(out)
}

// decodeFile decodes a YAML file relative to the repository root.
func decodeFile(t testing.TB, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(data)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return objs
}

// equalJSON compares two values by their JSON form, so that typed and unstructured values and
// nil and empty lists compare as the API server would store them.
func equalJSON(t testing.TB, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}
