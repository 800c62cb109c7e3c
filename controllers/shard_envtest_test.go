package controllers_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/controllers"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/shard"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

// shardTestTenant matches the names of the tenants TestShardedManagers creates, wherever a request
// names one (a path, a label selector, a name of the operator's namespace).
var shardTestTenant = regexp.MustCompile(`sharded-\d{2}`)

// TestShardedManagersReconcileEachTenantOnce runs three managers, shards 0, 1 and 2 of 3, against
// one API server of their own (the suite's manager, which is not sharded, would reconcile these
// tenants too), creates 30 probed tenants and a RetentionPolicy, and shows:
//   - every tenant converges as it does with one manager (TestTenantEnvironmentIsCreated), and is
//     probed;
//   - every request that names a tenant comes from the shard that owns it (shard.Of), and every
//     tenant's series are in that shard's metrics only: no other shard reconciled or probed it;
//   - each shard holds a lease of its own, and only shard 0 writes the policy's status;
//   - once the managers stop, each shard's uptime histories are in ConfigMaps of its own, and each
//     tenant's in its shard's only.
func TestShardedManagersReconcileEachTenantOnce(t *testing.T) {
	const shards, tenants = 3, 30
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		t.Fatal(err)
	}
	var probedMu sync.Mutex
	probed := map[string]int{}
	site := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probedMu.Lock()
		probed[strings.TrimPrefix(r.URL.Path, "/")]++
		probedMu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	defer site.Close()
	roots := x509.NewCertPool()
	roots.AddCert(site.Certificate())

	type shardRun struct {
		shard    shard.Shard
		requests *requestLog
		metrics  *prometheus.Registry
		stopped  chan struct{}
	}
	var runs []*shardRun
	for i := range shards {
		run := &shardRun{shard: shard.Shard{Index: i, Count: shards}, requests: &requestLog{}, metrics: prometheus.NewRegistry(), stopped: make(chan struct{})}
		opts := controllers.Options{
			Options:      builders.Options{OperatorNamespace: operatorNamespace, DefaultIssuer: v1alpha1.IssuerReference{Name: "selfsigned", Kind: "ClusterIssuer"}},
			ProbeRootCAs: roots, BackupVolumeRoot: t.TempDir(), Metrics: metrics.New(run.metrics), Shard: run.shard}
		mgrOpts := cp.ManagerOptions()
		mgrOpts.Scheme = scheme
		mgrOpts.Cache = controllers.CacheOptions(opts)
		mgrOpts.LeaderElection, mgrOpts.LeaderElectionNamespace = true, operatorNamespace
		mgrOpts.LeaderElectionID = run.shard.LeaseName("tenant-operator.tenancy.tenantops.io")
		// Three managers in one process register controllers of the same names.
		mgrOpts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
		mgrConfig := rest.CopyConfig(cp.Config)
		mgrConfig.Wrap(run.requests.wrap)
		mgr, err := ctrl.NewManager(mgrConfig, mgrOpts)
		if err != nil {
			t.Fatal(err)
		}
		if err := controllers.SetupWithManager(mgr, opts); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(run.stopped)
			if err := mgr.Start(ctx); err != nil {
				t.Errorf("shard %d stopped: %v", i, err)
			}
		}()
		runs = append(runs, run)
	}

	var names []string
	for i := range tenants {
		tenant := minimalTenant(fmt.Sprintf("sharded-%02d", i))
		tenant.Spec.Monitoring = &v1alpha1.MonitoringSpec{URL: site.URL + "/" + tenant.Name, Interval: &metav1.Duration{Duration: 5 * time.Second}}
		if err := c.Create(ctx, tenant); err != nil {
			t.Fatal(err)
		}
		names = append(names, tenant.Name)
	}
	policy := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "sharded-policy"}, Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](3)}}
	if err := c.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}

	// Converged as one manager converges them on a control plane without kubelet, and probed.
	eventually(t, 2*time.Minute, func() error {
		list := &v1alpha1.TenantList{}
		if err := c.List(ctx, list); err != nil {
			return err
		}
		waiting := 0
		var example string
		for _, tenant := range list.Items {
			if err := shardTestConverged(&tenant); err != nil {
				waiting++
				example = err.Error()
			}
		}
		if waiting > 0 || len(list.Items) != tenants {
			return fmt.Errorf("%d of %d tenants not converged, e.g. %s", waiting, len(list.Items), example)
		}
		return nil
	})
	expectConditionOn(t, c, policy, v1alpha1.ConditionReady, metav1.ConditionTrue)

	// Who wrote for whom: the tenant each request names, by shard.
	writers := map[string]map[int]int{}
	for i, run := range runs {
		for _, request := range run.requests.since(0, "/") {
			for _, tenant := range slices.Compact(slices.Sorted(slices.Values(shardTestTenant.FindAllString(request, -1)))) {
				if writers[tenant] == nil {
					writers[tenant] = map[int]int{}
				}
				writers[tenant][i]++
			}
		}
	}
	// Whose series each shard exports.
	exported := make([]map[string]bool, shards)
	for i, run := range runs {
		exported[i] = tenantsInMetrics(t, run.metrics)
	}
	perShard := make([]int, shards)
	for _, name := range names {
		owner := shard.Of(name, shards)
		perShard[owner]++
		if writers[name][owner] == 0 {
			t.Errorf("%s: its shard %d sent it no request", name, owner)
		}
		for i := range shards {
			if i != owner && writers[name][i] > 0 {
				t.Errorf("%s is shard %d's, yet shard %d sent %d requests for it", name, owner, i, writers[name][i])
			}
			if exported[i][name] != (i == owner) {
				t.Errorf("%s is shard %d's; shard %d exports its series: %v", name, owner, i, exported[i][name])
			}
		}
		probedMu.Lock()
		if probed[name] == 0 {
			t.Errorf("%s was never probed", name)
		}
		probedMu.Unlock()
	}
	t.Logf("tenants per shard: %v; requests naming a tenant, by tenant and shard: %v", perShard, writers)
	for i, run := range runs {
		if sent := run.requests.since(0, "/retentionpolicies/"+policy.Name); (i == 0) != (len(sent) > 0) {
			t.Errorf("shard %d sent %d requests for RetentionPolicy %s; want shard 0 alone to write its status", i, len(sent), policy.Name)
		}
	}
	leases := &coordinationv1.LeaseList{}
	if err := c.List(ctx, leases, client.InNamespace(operatorNamespace)); err != nil {
		t.Fatal(err)
	}
	var leaseNames []string
	for _, l := range leases.Items {
		leaseNames = append(leaseNames, l.Name)
	}
	wantLeases := []string{"tenant-operator-shard-0-of-3.tenancy.tenantops.io", "tenant-operator-shard-1-of-3.tenancy.tenantops.io", "tenant-operator-shard-2-of-3.tenancy.tenantops.io"}
	if slices.Sort(leaseNames); !slices.Equal(leaseNames, wantLeases) {
		t.Errorf("leases %v, want one per shard: %v", leaseNames, wantLeases)
	}

	// The managers save their uptime histories as they stop.
	cancel()
	for _, run := range runs {
		<-run.stopped
	}
	histories := &corev1.ConfigMapList{}
	if err := c.List(context.Background(), histories, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/component": "uptime-history"}); err != nil {
		t.Fatal(err)
	}
	savedBy := map[string][]string{}
	for _, cm := range histories.Items {
		set, _, _ := strings.Cut(strings.TrimPrefix(cm.Name, "uptime-history-"), "-of-3-")
		for tenant := range cm.BinaryData {
			savedBy[tenant] = append(savedBy[tenant], set+"-of-3")
		}
	}
	for _, name := range names {
		if want := fmt.Sprintf("shard-%d-of-3", shard.Of(name, shards)); !slices.Equal(savedBy[name], []string{want}) {
			t.Errorf("%s's uptime history is saved in %v, want %s's ConfigMaps only", name, savedBy[name], want)
		}
	}
}

// shardTestConverged is nil once a tenant is as the Tenant controller leaves it on a control plane
// without kubelet: its status describes its generation, the parts that need only the API server
// are ready, and it has been probed.
func shardTestConverged(t *v1alpha1.Tenant) error {
	if t.Status.ObservedGeneration != t.Generation {
		return fmt.Errorf("%s: observedGeneration %d, generation %d", t.Name, t.Status.ObservedGeneration, t.Generation)
	}
	for _, c := range []string{v1alpha1.ConditionNamespaceReady, v1alpha1.ConditionAccessReady, v1alpha1.ConditionFirewallReady,
		v1alpha1.ConditionRouteReady, v1alpha1.ConditionAvailable} {
		if !meta.IsStatusConditionTrue(t.Status.Conditions, c) {
			return fmt.Errorf("%s: %s not true", t.Name, c)
		}
	}
	if c := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionCertificateReady); c == nil || c.Reason != v1alpha1.ReasonIssuerNotFound {
		return fmt.Errorf("%s: CertificateReady %+v, want IssuerNotFound (no ClusterIssuer here)", t.Name, c)
	}
	return nil
}

// expectConditionOn waits for a condition of obj's, read with c.
func expectConditionOn(t *testing.T, c client.Client, obj client.Object, conditionType string, status metav1.ConditionStatus) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		var conditions []metav1.Condition
		if p, ok := obj.(*v1alpha1.RetentionPolicy); ok {
			conditions = p.Status.Conditions
		}
		if got := meta.FindStatusCondition(conditions, conditionType); got == nil || got.Status != status {
			return fmt.Errorf("%s %s = %+v, want %s", obj.GetName(), conditionType, got, status)
		}
		return nil
	})
}

// tenantsInMetrics lists the tenants a registry has series of.
func tenantsInMetrics(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" {
					out[l.GetValue()] = true
				}
			}
		}
	}
	return out
}
