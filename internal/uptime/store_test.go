package uptime

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// countingClient counts the writes a store makes.
func countingClient(objs ...client.Object) (client.WithWatch, *int) {
	writes := 0
	c := fake.NewClientBuilder().WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			writes++
			return c.Apply(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			writes++
			return c.Delete(ctx, obj, opts...)
		},
	}).Build()
	return c, &writes
}

func TestConfigMapStoreWritesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	legacy := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "tenant-old-uptime", Namespace: "ops",
		Labels: map[string]string{"app.kubernetes.io/managed-by": "tenant-operator", "tenancy.tenantops.io/tenant": "old"}},
		BinaryData: map[string][]byte{"history": []byte("old history")}}
	c, writes := countingClient(legacy)
	store := &ConfigMapStore{Client: c, Reader: c, Namespace: "ops", Owner: "tenant-operator"}
	loaded, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(loaded["old"]) != "old history" {
		t.Fatalf("the earlier per-tenant layout was not read: %v", loaded)
	}

	histories := map[string][]byte{"old": []byte("old history")}
	for i := range 200 {
		histories[fmt.Sprintf("tenant-%03d", i)] = []byte("steady")
	}
	if err := store.Save(ctx, histories); err != nil {
		t.Fatal(err)
	}
	if *writes != minShards+1 {
		t.Errorf("first save made %d writes, want one per shard (%d) and the old ConfigMap's deletion", *writes, minShards)
	}
	*writes = 0
	if err := store.Save(ctx, maps.Clone(histories)); err != nil {
		t.Fatal(err)
	}
	if *writes != 0 {
		t.Errorf("saving the same histories made %d writes, want none", *writes)
	}
	histories["tenant-007"] = []byte("an outage")
	if err := store.Save(ctx, histories); err != nil {
		t.Fatal(err)
	}
	if *writes != 1 {
		t.Errorf("one changed history made %d writes, want one (its shard)", *writes)
	}

	// A restart reads everything back, from the shards only.
	again := &ConfigMapStore{Client: c, Reader: c, Namespace: "ops", Owner: "tenant-operator"}
	reloaded, err := again.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(reloaded, histories, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("reloaded %d histories, want the %d saved", len(reloaded), len(histories))
	}
}

func TestConfigMapStoreSplitsLargeShards(t *testing.T) {
	ctx := context.Background()
	c, _ := countingClient()
	store := &ConfigMapStore{Client: c, Reader: c, Namespace: "ops", Owner: "tenant-operator"}
	// 200 tenants at the worst case of 26 KB each: 5 MB, more than 8 shards of 512 KiB hold.
	histories := map[string][]byte{}
	for i := range 200 {
		histories[fmt.Sprintf("flapping-%03d", i)] = []byte(strings.Repeat("x", 26<<10))
	}
	if err := store.Save(ctx, histories); err != nil {
		t.Fatal(err)
	}
	list := &corev1.ConfigMapList{}
	if err := c.List(ctx, list, client.InNamespace("ops")); err != nil {
		t.Fatal(err)
	}
	for _, cm := range list.Items {
		size := 0
		for k, v := range cm.BinaryData {
			size += len(k) + len(v)
		}
		if size > maxShardBytes {
			t.Errorf("shard %s holds %d bytes, more than %d", cm.Name, size, maxShardBytes)
		}
	}
	t.Logf("%d shards for 200 histories of 26 KB", len(list.Items))
	if len(list.Items) <= minShards {
		t.Errorf("%d shards, want more than %d for 5 MB", len(list.Items), minShards)
	}
	// Fewer, smaller histories later: the shards of the larger count are replaced, not left.
	small := map[string][]byte{"acme": []byte("steady")}
	if err := store.Save(ctx, small); err != nil {
		t.Fatal(err)
	}
	reloaded, err := (&ConfigMapStore{Client: c, Reader: c, Namespace: "ops"}).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reloaded) != 1 || string(reloaded["acme"]) != "steady" {
		t.Errorf("after saving one history, a restart loads %d", len(reloaded))
	}
}
