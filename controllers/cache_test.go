package controllers

import (
	"go/ast"
	"go/types"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/randfill"
)

// fieldRead is a field of a cached kind that the reconcilers read, as a path from the object.
type fieldRead struct {
	kind string // the Go type's name, e.g. "StatefulSet"
	path []string
	at   string // file:line, for the failure message
}

// TestCachedKindsKeepWhatReconcilersRead finds, in the controllers' source, every field they read
// of a kind whose cached copy keepWhatIsRead reduces, and checks that the reduction keeps it: a
// reconciler reading a field the cache strips would see it empty and act on that. Adding a read of
// such a field (say a CronJob's schedule) fails here until the cache entry keeps it too.
func TestCachedKindsKeepWhatReconcilersRead(t *testing.T) {
	reduced := map[string]reflect.Type{}
	for _, obj := range ownedTypes(Options{GatewayAPI: true}) {
		if readsOnlyMetadata(obj) {
			typ := reflect.TypeOf(obj).Elem()
			reduced[typ.Name()] = typ
		}
	}
	reads := fieldReads(t, reduced)
	// The analysis must see the reads it is there to guard, or it proves nothing.
	for _, known := range []string{"StatefulSet.Status.ReadyReplicas", "StatefulSet.Status.ObservedGeneration"} {
		if !slices.ContainsFunc(reads, func(r fieldRead) bool { return r.kind+"."+strings.Join(r.path, ".") == known }) {
			t.Fatalf("the source analysis did not find the read of %s; it finds %d reads", known, len(reads))
		}
	}
	filler := randfill.NewWithSeed(1).NilChance(0).NumElements(1, 2).Funcs(
		func(q *resource.Quantity, c randfill.Continue) { *q = resource.MustParse("1") })
	for _, r := range reads {
		full := reflect.New(reduced[r.kind])
		filler.Fill(full.Interface())
		kept, err := keepWhatIsRead(full.Interface())
		if err != nil {
			t.Fatal(err)
		}
		before, after := fieldAt(full.Elem(), r.path), fieldAt(reflect.ValueOf(kept).Elem(), r.path)
		if !reflect.DeepEqual(before.Interface(), after.Interface()) {
			t.Errorf("%s reads %s.%s, which the cache strips (keepWhatIsRead); keep it there or read it elsewhere",
				r.at, r.kind, strings.Join(r.path, "."))
		}
	}
	t.Logf("%d reads of reduced kinds checked", len(reads))
}

// fieldReads lists the fields of the reduced kinds that the package's non-test code selects,
// each as the path from the object: up to the second field, e.g. Status.ReadyReplicas, or the
// whole Spec when the code passes it on.
func fieldReads(t *testing.T, reduced map[string]reflect.Type) []fieldRead {
	t.Helper()
	pkgs, err := packages.Load(&packages.Config{Mode: packages.NeedName | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo, Dir: "."}, ".")
	if err != nil || len(pkgs) != 1 || len(pkgs[0].Errors) > 0 {
		t.Fatalf("load the controllers package: %v %v", err, pkgs)
	}
	pkg := pkgs[0]
	var out []fieldRead
	for _, file := range pkg.Syntax {
		parents := map[ast.Expr]*ast.SelectorExpr{}
		ast.Inspect(file, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				parents[sel.X] = sel
			}
			return true
		})
		ast.Inspect(file, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			s := pkg.TypesInfo.Selections[sel]
			if s == nil || s.Kind() != types.FieldVal || len(s.Index()) != 1 {
				return true // methods, and fields promoted from ObjectMeta, which the cache keeps
			}
			named, ok := derefNamed(s.Recv())
			if !ok || reduced[named.Obj().Name()] == nil || !strings.HasPrefix(named.Obj().Pkg().Path(), "k8s.io/api/") {
				return true
			}
			path := []string{sel.Sel.Name}
			if parent := parents[sel]; parent != nil {
				if ps := pkg.TypesInfo.Selections[parent]; ps != nil && ps.Kind() == types.FieldVal {
					path = append(path, parent.Sel.Name)
				}
			}
			if path[0] == "ObjectMeta" || path[0] == "TypeMeta" {
				return true
			}
			out = append(out, fieldRead{kind: named.Obj().Name(), path: path, at: pkg.Fset.Position(sel.Pos()).String()})
			return true
		})
	}
	return out
}

func derefNamed(t types.Type) (*types.Named, bool) {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := t.(*types.Named)
	return n, ok
}

func fieldAt(v reflect.Value, path []string) reflect.Value {
	for _, name := range path {
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		v = v.FieldByName(name)
	}
	return v
}
