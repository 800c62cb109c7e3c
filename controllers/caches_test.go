package controllers_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/controllers"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// A manager with warmed caches is not ready until every watched kind is listed, and is then, on a
// standby as on the leader: its Tenant cache holds the cluster's tenants before it leads.
func TestReadyOnlyOnceCachesSynced(t *testing.T) {
	opts := controllers.Options{Options: builders.Options{OperatorNamespace: operatorNamespace}}
	mgrOpts := env.ManagerOptions()
	mgrOpts.Scheme = scheme
	mgrOpts.Cache = controllers.CacheOptions(opts)
	// A standby: it never leads (the lease is another's), so no controller runs.
	mgrOpts.LeaderElection, mgrOpts.LeaderElectionNamespace, mgrOpts.LeaderElectionID = true, operatorNamespace, "caches-test-never-leads"
	mgr, err := ctrl.NewManager(env.Config, mgrOpts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := controllers.WarmCaches(ctx, mgr, opts); err != nil {
		t.Fatal(err)
	}
	ready := controllers.CachesSynced(mgr)
	req := httptest.NewRequest("GET", "/readyz", nil)
	if err := ready(req); err == nil {
		t.Fatal("ready before the manager started")
	}
	tenant := &v1alpha1.Tenant{}
	tenant.Name = "caches-test"
	tenant.Spec.Hostnames = []string{"caches-test.example.com"}
	tenant.Spec.Database.Version = "17"
	tenant.Spec.Database.Storage.Size.Set(1 << 30)
	if err := k8s.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), tenant) })
	mgrCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mgrCtx) }()
	defer func() { stop(); <-done }()
	for ready(req) != nil {
		if ctx.Err() != nil {
			t.Fatal("never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Synced: the standby's Tenant informer existed and is full, without any controller having
	// asked for it (a cold cache would make a new one here, not synced yet).
	informer, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.Tenant{}, cache.BlockUntilSynced(false))
	if err != nil {
		t.Fatal(err)
	}
	if !informer.HasSynced() {
		t.Fatal("ready, but the Tenant informer had not synced: the caches were not warmed")
	}
	if err := mgr.GetCache().Get(ctx, client.ObjectKeyFromObject(tenant), &v1alpha1.Tenant{}); err != nil {
		t.Fatalf("the standby's cache lacks the tenant once ready: %v", err)
	}
}
