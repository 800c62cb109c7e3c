package ssa_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/tenantops/tenant-operator/internal/cachemeta"
	"github.com/tenantops/tenant-operator/internal/ssa"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

// TestApplySkipsOnlyUnchangedObjects runs against a real API server with an informer cache.
func TestApplySkipsOnlyUnchangedObjects(t *testing.T) {
	env, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// The cache keeps who wrote each object and not what, with the operator's transform.
	informers, err := cache.New(env.Config, cache.Options{Scheme: scheme, DefaultTransform: func(obj any) (any, error) {
		if o, ok := obj.(client.Object); ok {
			cachemeta.Compact(o)
		}
		return obj, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	c, err := client.New(env.Config, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: informers}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := informers.GetInformer(ctx, &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	informers.WaitForCacheSync(ctx)
	applier := &ssa.Applier{Client: c, Owner: client.FieldOwner("test")}

	desired := func(value string) *corev1ac.ConfigMapApplyConfiguration {
		return corev1ac.ConfigMap("cm", "default").WithData(map[string]string{"key": value})
	}
	waitForCache := func(want string) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			cm := &corev1.ConfigMap{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cm"}, cm); err == nil && cm.Data["key"] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("cache never showed key=%s", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	apply := func(step, value string, wantSent bool) *corev1.ConfigMap {
		t.Helper()
		current := &corev1.ConfigMap{}
		sent, err := applier.Apply(ctx, desired(value), current)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if sent != wantSent {
			t.Fatalf("%s: sent = %v, want %v", step, sent, wantSent)
		}
		if current.Data["key"] != value || current.ResourceVersion == "" {
			t.Fatalf("%s: current = %v rv %q, want key=%s", step, current.Data, current.ResourceVersion, value)
		}
		return current
	}

	first := apply("first apply", "a", true)
	waitForCache("a")
	if applier.NeedsReconcile(first) {
		t.Fatal("the object as our apply left it is not recognised as our own write")
	}
	apply("same request, object unchanged", "a", false)
	apply("another request", "b", true)
	waitForCache("b")
	apply("same request again", "b", false)

	// Someone edits the object: the same request must be sent again to put it back.
	edited := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cm"}, edited); err != nil {
		t.Fatal(err)
	}
	edited.Data["key"] = "by hand"
	if err := c.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	waitForCache("by hand")
	if !applier.NeedsReconcile(edited) {
		t.Fatal("a hand edit is taken for our own write")
	}
	back := apply("after a hand edit", "b", true)
	if back.Data["key"] != "b" {
		t.Fatal("the hand edit was not reverted")
	}

	// Someone deletes it: sent again.
	waitForCache("b")
	if err := c.Delete(ctx, back); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cm"}, &corev1.ConfigMap{})
		if client.IgnoreNotFound(err) == nil && err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("cache still has the deleted object"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The deletion's watch event makes the applier forget the object, so a manager that
	// outlives many tenants does not keep a record of each object it ever applied.
	if n := applier.Remembered(); n != 1 {
		t.Fatalf("the applier remembers %d objects before the deletion event, want 1", n)
	}
	applier.Forget(back)
	if n := applier.Remembered(); n != 0 {
		t.Fatalf("the applier remembers %d objects after forgetting the deleted one, want 0", n)
	}
	apply("after deletion", "b", true)

	// Without a current object to fill, the API server answers with metadata only; the
	// resourceVersion in it is what a repeat is checked against.
	for _, step := range []struct {
		value    string
		wantSent bool
	}{{"c", true}, {"c", false}, {"d", true}, {"d", false}} {
		sent, err := applier.Apply(ctx, desired(step.value), nil)
		if err != nil {
			t.Fatalf("metadata-only apply of %s: %v", step.value, err)
		}
		if sent != step.wantSent {
			t.Fatalf("metadata-only apply of %s: sent = %v, want %v", step.value, sent, step.wantSent)
		}
		waitForCache(step.value)
	}

	// A restart: a new applier remembers nothing, and finds the object as an earlier one left it
	// (the hash of its request in AnnotationApplied, no other writer): nothing is sent.
	applier = &ssa.Applier{Client: c, Owner: client.FieldOwner("test")}
	restarted := apply("after a restart, same request", "d", false)
	if restarted.Annotations[ssa.AnnotationApplied] == "" {
		t.Fatal("the applied object carries no hash of its request")
	}
	apply("after a restart, the same request again", "d", false)
	// Someone edits it while the manager is down: after the restart the same request goes again
	// and puts it back.
	edited = &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cm"}, edited); err != nil {
		t.Fatal(err)
	}
	edited.Data["key"] = "while down"
	if err := c.Update(ctx, edited, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	waitForCache("while down")
	applier = &ssa.Applier{Client: c, Owner: client.FieldOwner("test")}
	if back := apply("after a restart, edited while down", "d", true); back.Data["key"] != "d" {
		t.Fatal("the edit made while the manager was down was not reverted")
	}
	waitForCache("d")
	// A changed request after a restart is sent.
	applier = &ssa.Applier{Client: c, Owner: client.FieldOwner("test")}
	apply("after a restart, another request", "e", true)
}

// The watch event of a create can reach the informer before the apply's response reaches the
// applier. Such an event is held until the apply returns: dropped if it reports that apply,
// passed to Changed if someone else wrote.
func TestEventsDuringAnApplyAreJudgedWhenItReturns(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	var applier *ssa.Applier
	var changed []string
	// eventDuringApply is what the informer delivers while the request is in flight.
	var eventDuringApply func(response *corev1.ConfigMap) []*corev1.ConfigMap
	c := interceptor.NewClient(fake.NewClientBuilder().WithScheme(scheme).Build(), interceptor.Funcs{
		// The applier sends the request as an apply patch and asks for metadata back; the fake
		// client is given the apply configuration instead.
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if patch.Type() != types.ApplyPatchType {
				t.Fatalf("patch of type %s, want an apply patch", patch.Type())
			}
			data, err := patch.Data(obj)
			if err != nil {
				return err
			}
			ac := &corev1ac.ConfigMapApplyConfiguration{}
			if err := json.Unmarshal(data, ac); err != nil {
				return err
			}
			if err := c.Apply(ctx, ac, client.FieldOwner("test"), client.ForceOwnership); err != nil {
				return err
			}
			response := &corev1.ConfigMap{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "cm"}, response); err != nil {
				return err
			}
			for _, event := range eventDuringApply(response) {
				if applier.NeedsReconcile(event) {
					t.Errorf("event with resourceVersion %s during the apply asked for a reconcile at once", event.ResourceVersion)
				}
			}
			obj.SetResourceVersion(response.ResourceVersion)
			return nil
		},
	})
	applier = &ssa.Applier{Client: c, Owner: client.FieldOwner("test"), Changed: func(obj client.Object) {
		changed = append(changed, obj.GetResourceVersion())
	}}
	desired := func(value string) *corev1ac.ConfigMapApplyConfiguration {
		return corev1ac.ConfigMap("cm", "default").WithData(map[string]string{"key": value})
	}

	// Our own create, seen before the response: nothing to do, then or later.
	eventDuringApply = func(response *corev1.ConfigMap) []*corev1.ConfigMap { return []*corev1.ConfigMap{response} }
	if _, err := applier.Apply(context.Background(), desired("a"), nil); err != nil {
		t.Fatal(err)
	}
	if len(changed) != 0 {
		t.Fatalf("our own write was passed on as a change: %v", changed)
	}

	// Someone else's write just before ours, seen during our apply: passed on when it returns.
	eventDuringApply = func(response *corev1.ConfigMap) []*corev1.ConfigMap {
		theirs := response.DeepCopy()
		theirs.ResourceVersion = "someone-elses"
		return []*corev1.ConfigMap{theirs, response}
	}
	if _, err := applier.Apply(context.Background(), desired("b"), nil); err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0] != "someone-elses" {
		t.Fatalf("changed = %v, want only the other writer's event", changed)
	}

	// After the apply, events are judged at once again.
	latest := &corev1.ConfigMap{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "cm"}, latest); err != nil {
		t.Fatal(err)
	}
	if applier.NeedsReconcile(latest) {
		t.Fatal("the object as our apply left it asks for a reconcile")
	}
	latest.ResourceVersion = "later"
	if !applier.NeedsReconcile(latest) {
		t.Fatal("a later write by someone else does not ask for a reconcile")
	}
}
