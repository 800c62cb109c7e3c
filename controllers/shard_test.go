package controllers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/shard"
)

// countWrites counts every request of the fake client that writes, on top of applyAsUpsert.
func countWrites(writes *int) interceptor.Funcs {
	f := applyAsUpsert()
	apply, patch := f.Apply, f.Patch
	f.Apply = func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
		*writes++
		return apply(ctx, c, obj, opts...)
	}
	f.Patch = func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
		*writes++
		return patch(ctx, c, obj, p, opts...)
	}
	f.Create = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		*writes++
		return c.Create(ctx, obj, opts...)
	}
	f.Update = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
		*writes++
		return c.Update(ctx, obj, opts...)
	}
	f.Delete = func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
		*writes++
		return c.Delete(ctx, obj, opts...)
	}
	f.SubResourcePatch = func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
		*writes++
		return c.SubResource(sub).Patch(ctx, obj, p, opts...)
	}
	f.SubResourceUpdate = func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
		*writes++
		return c.SubResource(sub).Update(ctx, obj, opts...)
	}
	return f
}

// Every per-tenant reconciler refuses, before anything else, what belongs to a tenant of another
// shard, however it was asked (a map function from a policy can name any tenant); the shard that
// owns the tenant does reconcile it. acme is shard 1 of 3.
func TestShardGuardRefusesAForeignTenant(t *testing.T) {
	const operatorNS = "tenant-operator-system"
	if shard.Of("acme", 3) != 1 {
		t.Fatal("acme is no longer shard 1 of 3: the golden values of package shard changed")
	}
	tenant := func() *v1alpha1.Tenant {
		return &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "uid-acme", Generation: 1},
			Spec: v1alpha1.TenantSpec{Hostnames: []string{"acme.example.com"},
				Database: v1alpha1.DatabaseSpec{Version: "17", Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}}}}
	}
	keptData, err := json.Marshal(builders.KeptTenant{Tenant: "acme", TenantUIDs: []string{"uid-earlier-acme"}, BackupPolicy: "nightly",
		CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), DeletedAt: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	kept := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: builders.KeptTenantName("acme", "uid-earlier-acme"),
		Labels: map[string]string{builders.LabelManagedBy: builders.ManagedByValue, builders.LabelTenant: "acme", builders.LabelComponent: builders.ComponentKeptTenant}},
		Data: map[string]string{builders.KeptTenantKey: string(keptData)}}

	for _, tt := range []struct {
		name string
		objs []client.Object
		req  types.NamespacedName
		// reconcile builds the reconciler of a shard on c and reconciles req once.
		reconcile func(c client.Client, opts Options, req ctrl.Request) (ctrl.Result, error)
	}{
		{name: "Tenant", objs: []client.Object{tenant()}, req: types.NamespacedName{Name: "acme"},
			reconcile: func(c client.Client, opts Options, req ctrl.Request) (ctrl.Result, error) {
				r, err := NewTenantReconciler(c, c, nil, opts)
				if err != nil {
					return ctrl.Result{}, err
				}
				return r.Reconcile(context.Background(), req)
			}},
		{name: "kept-tenant record", objs: []client.Object{kept}, req: client.ObjectKeyFromObject(kept),
			reconcile: func(c client.Client, opts Options, req ctrl.Request) (ctrl.Result, error) {
				r, err := NewTenantReconciler(c, c, nil, opts)
				if err != nil {
					return ctrl.Result{}, err
				}
				return (&KeptTenantReconciler{r}).Reconcile(context.Background(), req)
			}},
		{name: "TenantRestore into the tenant", req: types.NamespacedName{Name: "restore-acme"},
			objs: []client.Object{&v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "restore-acme"},
				Spec: v1alpha1.TenantRestoreSpec{Tenant: "elsewhere", TargetTenant: "acme", Backup: "latest"}}},
			reconcile: func(c client.Client, opts Options, req ctrl.Request) (ctrl.Result, error) {
				return (&TenantRestoreReconciler{Client: c, Options: opts}).Reconcile(context.Background(), req)
			}},
		{name: "TenantExport of the tenant", req: types.NamespacedName{Name: "export-acme"},
			objs: []client.Object{tenant(), &v1alpha1.TenantExport{ObjectMeta: metav1.ObjectMeta{Name: "export-acme"},
				Spec: v1alpha1.TenantExportSpec{Tenant: "acme", Backup: "latest"}}},
			reconcile: func(c client.Client, opts Options, req ctrl.Request) (ctrl.Result, error) {
				return (&TenantExportReconciler{Client: c, Options: opts}).Reconcile(context.Background(), req)
			}},
		{name: "ErasureRequest in the tenant's namespace", req: types.NamespacedName{Namespace: "tenant-acme", Name: "forget"},
			objs: []client.Object{tenant(), &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-acme", Name: "forget"},
				Spec: v1alpha1.ErasureRequestSpec{Subject: "4711", Function: "app.forget"}}},
			reconcile: func(c client.Client, opts Options, req ctrl.Request) (ctrl.Result, error) {
				return (&ErasureRequestReconciler{Client: c, Options: opts}).Reconcile(context.Background(), req)
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := func(s shard.Shard) (int, ctrl.Result) {
				writes := 0
				c := withTenantIndexes(fake.NewClientBuilder()).WithScheme(testScheme(t)).WithObjects(tt.objs...).
					WithStatusSubresource(&v1alpha1.Tenant{}, &v1alpha1.TenantRestore{}, &v1alpha1.TenantExport{}, &v1alpha1.ErasureRequest{}).
					WithInterceptorFuncs(countWrites(&writes)).Build()
				opts := Options{Options: builders.Options{OperatorNamespace: operatorNS}, DisableUptimeProbes: true,
					Metrics: metrics.New(prometheus.NewRegistry()), Shard: s}
				res, err := tt.reconcile(c, opts, ctrl.Request{NamespacedName: tt.req})
				if err != nil && s.Owns("acme") {
					t.Logf("shard %v: %v", s, err)
				} else if err != nil {
					t.Errorf("shard %v, not acme's, returned %v", s, err)
				}
				return writes, res
			}
			for _, foreign := range []shard.Shard{{Index: 0, Count: 3}, {Index: 2, Count: 3}} {
				if writes, res := run(foreign); writes != 0 || res != (ctrl.Result{}) {
					t.Errorf("shard %v, not acme's, wrote %d times and asked for %+v; want nothing", foreign, writes, res)
				}
			}
			// The owner does the work: it writes, or (a kept record whose policy is missing) asks
			// to look again.
			if writes, res := run(shard.Shard{Index: 1, Count: 3}); writes == 0 && res == (ctrl.Result{}) {
				t.Errorf("shard 1 of 3, acme's, neither wrote nor asked to look again: the test proves nothing")
			}
		})
	}
}

func TestShardFilters(t *testing.T) {
	s := shard.Shard{Index: 1, Count: 3} // acme's, not globex-2's
	if shard.Of("acme", 3) != 1 || shard.Of("tenant-0000", 3) != 0 {
		t.Fatal("the golden values of package shard changed")
	}
	labelled := func(tenant string) client.Object {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "tenant-" + tenant}}
		if tenant != "" {
			cm.Labels = map[string]string{builders.LabelTenant: tenant}
		}
		return cm
	}
	for _, tt := range []struct {
		what string
		got  bool
		want bool
	}{
		{"Tenant acme", ownTenants(s).Generic(eventOf(&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme"}})), true},
		{"Tenant tenant-0000", ownTenants(s).Generic(eventOf(&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "tenant-0000"}})), false},
		{"object of acme", ownLabelled(s).Generic(eventOf(labelled("acme"))), true},
		{"object of tenant-0000", ownLabelled(s).Generic(eventOf(labelled("tenant-0000"))), false},
		{"object of no tenant", ownLabelled(s).Generic(eventOf(labelled(""))), true},
		{"namespace of acme", ownsNamespace(s, "tenant-acme"), true},
		{"namespace of tenant-0000", ownsNamespace(s, "tenant-tenant-0000"), false},
		{"namespace of no tenant, on shard 1", ownsNamespace(s, "default"), false},
		{"namespace of no tenant, on shard 0", ownsNamespace(shard.Shard{Index: 0, Count: 3}, "default"), true},
		{"namespace of no tenant, unsharded", ownsNamespace(shard.Shard{}, "default"), true},
		{"kept record of acme", keptTenantOf(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{builders.LabelTenant: "acme"}}}) == "acme", true},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.what, tt.got, tt.want)
		}
	}
	mapped := ownRequests(s, func(context.Context, client.Object) []ctrl.Request {
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Name: "acme"}}, {NamespacedName: types.NamespacedName{Name: "tenant-0000"}}}
	})(context.Background(), nil)
	if len(mapped) != 1 || mapped[0].Name != "acme" {
		t.Errorf("ownRequests kept %v, want acme only", mapped)
	}
}

func eventOf(o client.Object) event.GenericEvent { return event.GenericEvent{Object: o} }
