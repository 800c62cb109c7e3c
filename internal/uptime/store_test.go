package uptime

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

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

// encodedHistory is a History with one probe at t, encoded.
func encodedHistory(t *testing.T, at time.Time) []byte {
	t.Helper()
	var h History
	h.Record(at, true)
	data, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Managers that are shards of one operator each keep their own tenants' histories in ConfigMaps of
// their own: one saving never overwrites, nor deletes, what another saved.
func TestConfigMapStoreKeepsEachShardToItsOwn(t *testing.T) {
	ctx := context.Background()
	c, _ := countingClient()
	owns := func(i int) func(string) bool {
		return func(tenant string) bool { return strings.HasSuffix(tenant, fmt.Sprint(i)) }
	}
	histories := func(i int, content string) map[string][]byte {
		out := map[string][]byte{}
		for j := range 20 {
			out[fmt.Sprintf("tenant-%02d%d", j, i)] = []byte(content)
		}
		return out
	}
	stores := []*ConfigMapStore{
		{Client: c, Reader: c, Namespace: "ops", Owner: "tenant-operator", Set: "shard-0-of-2", Owns: owns(0)},
		{Client: c, Reader: c, Namespace: "ops", Owner: "tenant-operator", Set: "shard-1-of-2", Owns: owns(1)},
	}
	for i, store := range stores {
		if _, err := store.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.Save(ctx, histories(i, "first")); err != nil {
			t.Fatal(err)
		}
	}
	// Shard 0 saves again, with fewer tenants: shard 1's ConfigMaps stay as they were.
	if err := stores[0].Save(ctx, map[string][]byte{"tenant-000": []byte("second")}); err != nil {
		t.Fatal(err)
	}
	list := &corev1.ConfigMapList{}
	if err := c.List(ctx, list, client.InNamespace("ops")); err != nil {
		t.Fatal(err)
	}
	perSet := map[string]int{}
	for _, cm := range list.Items {
		set, _, ok := parseShardName(cm.Name)
		if !ok || !strings.HasPrefix(cm.Name, "uptime-history-"+set+"-") {
			t.Fatalf("ConfigMap %s is named unlike a shard", cm.Name)
		}
		perSet[set]++
		for tenant := range cm.BinaryData {
			if i := map[string]int{"shard-0-of-2": 0, "shard-1-of-2": 1}[set]; !owns(i)(tenant) {
				t.Errorf("%s holds %s, a tenant of the other shard", cm.Name, tenant)
			}
		}
	}
	if perSet["shard-0-of-2"] != minShards || perSet["shard-1-of-2"] != minShards || len(perSet) != 2 {
		t.Errorf("ConfigMaps per set: %v, want %d of each shard's", perSet, minShards)
	}
	for i, want := range []map[string][]byte{{"tenant-000": []byte("second")}, histories(1, "first")} {
		loaded, err := (&ConfigMapStore{Client: c, Reader: c, Namespace: "ops", Set: stores[i].Set, Owns: owns(i)}).Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.EqualFunc(loaded, want, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Errorf("shard %d reloads %d histories, want the %d it saved", i, len(loaded), len(want))
		}
	}
}

// When the shard count changes, a tenant moves to another manager, which finds its history in the
// ConfigMaps of the earlier count; and back again, where the newer history wins over the one its
// first manager left behind.
func TestConfigMapStoreFindsTheNewestHistoryOfATenantThatMoved(t *testing.T) {
	ctx := context.Background()
	c, _ := countingClient()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	older, newer := encodedHistory(t, now.Add(-time.Hour)), encodedHistory(t, now)

	unsharded := &ConfigMapStore{Client: c, Reader: c, Namespace: "ops", Owner: "tenant-operator"}
	if _, err := unsharded.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := unsharded.Save(ctx, map[string][]byte{"acme": older, "globex": older}); err != nil {
		t.Fatal(err)
	}
	// Sharded: acme goes to shard 1 of 2, which has only the unsharded manager's history of it.
	sharded := &ConfigMapStore{Client: c, Reader: c, Namespace: "ops", Owner: "tenant-operator", Set: "shard-1-of-2",
		Owns: func(tenant string) bool { return tenant == "acme" }}
	loaded, err := sharded.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || !bytes.Equal(loaded["acme"], older) {
		t.Fatalf("shard 1 loaded %v, want acme's history only", slices.Sorted(maps.Keys(loaded)))
	}
	if err := sharded.Save(ctx, map[string][]byte{"acme": newer}); err != nil {
		t.Fatal(err)
	}
	// Unsharded again: acme's newer history is in shard 1's set, its older one in its own.
	loaded, err = (&ConfigMapStore{Client: c, Reader: c, Namespace: "ops", Owner: "tenant-operator"}).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loaded["acme"], newer) || !bytes.Equal(loaded["globex"], older) {
		t.Errorf("the unsharded manager did not load the newest history of each tenant")
	}
}

func TestParseShardName(t *testing.T) {
	for _, tt := range []struct {
		name, set string
		count     int
		ok        bool
	}{
		{"uptime-history-8-3", "", 8, true},
		{"uptime-history-shard-1-of-3-16-15", "shard-1-of-3", 16, true},
		{"uptime-history-8", "", 0, false},
		{"uptime-history-x-3", "", 0, false},
		{"tenant-acme-uptime", "", 0, false},
	} {
		set, count, ok := parseShardName(tt.name)
		if set != tt.set || count != tt.count || ok != tt.ok {
			t.Errorf("parseShardName(%q) = %q, %d, %v; want %q, %d, %v", tt.name, set, count, ok, tt.set, tt.count, tt.ok)
		}
	}
	for _, set := range []string{"", "shard-1-of-3"} {
		if got, count, ok := parseShardName(shardName(set, 16, 15)); got != set || count != 16 || !ok {
			t.Errorf("parseShardName(shardName(%q, 16, 15)) = %q, %d, %v", set, got, count, ok)
		}
	}
}
