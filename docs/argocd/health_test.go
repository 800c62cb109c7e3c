// Package argocd tests the Argo CD health checks in this directory. It has only test files, so
// the Lua VM never enters the operator's binary.
package argocd

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// scripts maps each kind to the health check Argo CD runs for it, by the argocd-cm key it is
// installed under.
var scripts = map[string]struct{ key, file string }{
	"Tenant":          {"resource.customizations.health.tenancy.tenantops.io_Tenant", "health.lua"},
	"BackupPolicy":    {"resource.customizations.health.tenancy.tenantops.io_BackupPolicy", "policy-health.lua"},
	"RetentionPolicy": {"resource.customizations.health.tenancy.tenantops.io_RetentionPolicy", "policy-health.lua"},
}

// healthStatus is what a health check returns, as Argo CD reads it.
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// healthTests is health_test.yaml, in the layout of Argo CD's resource_customizations.
type healthTests struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus healthStatus `json:"healthStatus"`
	} `json:"tests"`
}

// Argo CD's health statuses; a script returning anything else is reported as Unknown.
var validStatuses = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

func TestHealthChecks(t *testing.T) {
	var tests healthTests
	readYAML(t, "health_test.yaml", &tests)
	seen := map[string]bool{}
	for _, tc := range tests.Tests {
		seen[filepath.Base(tc.InputPath)] = true
		t.Run(tc.InputPath, func(t *testing.T) {
			obj := &unstructured.Unstructured{}
			// Through JSON, as the API server serves it: integers stay int64.
			data, err := os.ReadFile(tc.InputPath)
			if err != nil {
				t.Fatal(err)
			}
			data, err = yaml.YAMLToJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := obj.UnmarshalJSON(data); err != nil {
				t.Fatal(err)
			}
			script, ok := scripts[obj.GetKind()]
			if !ok {
				t.Fatalf("no health check for kind %q", obj.GetKind())
			}
			got := runHealthCheck(t, readFile(t, script.file), obj)
			if got != tc.HealthStatus {
				t.Errorf("%s says %+v, want %+v", script.file, got, tc.HealthStatus)
			}
		})
	}
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		if !seen[filepath.Base(in)] {
			t.Errorf("%s is in no test of health_test.yaml", in)
		}
	}
}

// TestArgoCDConfigMapHoldsTheScripts keeps argocd-cm.yaml, the patch users apply, equal to the
// scripts the tests run.
func TestArgoCDConfigMapHoldsTheScripts(t *testing.T) {
	var cm corev1.ConfigMap
	readYAML(t, "argocd-cm.yaml", &cm)
	if cm.Name != "argocd-cm" {
		t.Errorf("argocd-cm.yaml patches ConfigMap %q, want argocd-cm", cm.Name)
	}
	keys := map[string]bool{}
	for kind, script := range scripts {
		keys[script.key] = true
		if cm.Data[script.key] != readFile(t, script.file) {
			t.Errorf("argocd-cm.yaml: %s (for %s) differs from %s; copy it in, indented", script.key, kind, script.file)
		}
	}
	for key := range cm.Data {
		if !keys[key] {
			t.Errorf("argocd-cm.yaml has key %s, which no test covers", key)
		}
	}
}

// runHealthCheck runs script on obj as Argo CD runs a health check from argocd-cm: without the
// standard libraries except package, base and table (Argo CD adds a reduced os library, which
// our scripts do not use), with obj as a global, under a one-second deadline.
func runHealthCheck(t *testing.T, script string, obj *unstructured.Unstructured) healthStatus {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj.Object))
	if err := l.DoString(script); err != nil {
		t.Fatalf("script failed: %v", err)
	}
	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("script returned %s, want a table", l.Get(-1).Type())
	}
	status, ok := hs.RawGetString("status").(lua.LString)
	if !ok || !slices.Contains(validStatuses, string(status)) {
		t.Fatalf("script returned status %v, which Argo CD reports as Unknown", hs.RawGetString("status"))
	}
	got := healthStatus{Status: string(status)}
	switch m := hs.RawGetString("message").(type) {
	case lua.LString:
		got.Message = string(m)
	case *lua.LNilType:
	default:
		t.Fatalf("script returned message of type %s, want a string", m.Type())
	}
	return got
}

// toLua converts an object's content to Lua values the way Argo CD does: maps to tables with
// string keys, lists to arrays, every number to a Lua number.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	case []any:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	default:
		return lua.LNil
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func readYAML(t *testing.T, name string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(readFile(t, name)), into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}
