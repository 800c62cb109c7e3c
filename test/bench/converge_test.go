// Package bench measures the operator at scale on the local control plane. Run with make bench.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

const (
	operatorNamespace = "tenant-operator-system"
	workers           = 4        // the operator's --max-concurrent-reconciles, and the floor's workers
	qps, burst        = 200, 400 // the floor's client: the operator's defaults (--kube-api-qps, --kube-api-burst)
)

// BenchmarkConvergeTenants converges N tenants and compares with the floor: a plain client that
// applies the same objects directly against the same API server in the same run. It reports the
// time to all tenants reconciled as far as this control plane allows (no kubelet, so databases
// stay pending), API writes per tenant, and the manager's peak RSS. Between the two it times the
// writes any operator must make (requiredWrites).
//
// The operator runs with the shipped defaults, uptime probes on: every tenant's URL is served by
// a local HTTPS server (probeServer), where about half answer, half stay down and one in fifty
// flaps. Once every tenant is converged and probed, it measures an idle window (measureIdle):
// the operator's requests per tenant-hour by class and verb from the API server's audit log, its
// reconciles, CPU and memory; it fails when a target of issue 19 is broken.
//
// BENCH_TENANTS=100,1000 chooses N; BENCH_IDLE=10m the idle window (by default one refresh
// interval: each tenant's figures are refreshed once in it, and the histories saved once);
// BENCH_MEMORY_LIMIT=1Gi runs the operator as a Deployment with that memory limit runs it (the
// Go runtime kept to 90 % of it, manager.SoftMemoryLimit); BENCH_REQUIRED=0 skips the required
// writes, BENCH_FLOOR=0 the floor; BENCH_RESTART=0 the restart of the converged operator
// (measureRestart) at the end;
// BENCH_CPU_PROFILE=file saves a 30 s CPU profile of the operator converging;
// BENCH_SHARDS=3 runs the operator as 3 processes, --shards 3 --shard-index 0..2 (each its own
// API user, ports and lease), reports each shard's peak RSS and reconciles beside the totals, and
// fails when a tenant is written by any shard but its own (the audit log tells the shards apart).
func BenchmarkConvergeTenants(b *testing.B) {
	sizes := []int{100, 1000}
	if v := os.Getenv("BENCH_TENANTS"); v != "" {
		sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(s)
			if err != nil {
				b.Fatalf("BENCH_TENANTS: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	shards := 1
	if v := os.Getenv("BENCH_SHARDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_SHARDS=%q: want a number of shards, at least 1", v)
		}
		shards = n
	}
	idle := refreshInterval
	if v := os.Getenv("BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		idle = d
	}
	binary := buildOperator(b)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				converge(b, binary, n, shards, idle)
			}
		})
	}
}

func buildOperator(b *testing.B) string {
	root, err := controlplane.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "tenant-operator")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build operator: %v\n%s", err, msg)
	}
	return out
}

func converge(b *testing.B, binary string, n, shards int, idle time.Duration) {
	ctx := context.Background()
	dir := b.TempDir()
	probes := startProbeServer(b, dir)
	apiServerFlags, auditLog := auditFlags(b, dir)
	env, err := controlplane.Start(controlplane.Options{APIServerFlags: apiServerFlags})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	utilruntime.Must(cmapi.AddToScheme(scheme))
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = qps, burst
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		b.Fatal(err)
	}
	issuer := &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned"},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}}}
	if err := c.Create(ctx, issuer); err != nil {
		b.Fatal(err)
	}
	issuer.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionTrue, Reason: "IsReady"}}
	if err := c.Status().Update(ctx, issuer); err != nil {
		b.Fatal(err)
	}

	// Floor: the same objects, applied by a plain client with as many workers as the operator has.
	opts := builders.DefaultOptions()
	opts.OperatorNamespace = operatorNamespace
	opts.DefaultIssuer = v1alpha1.IssuerReference{Name: "selfsigned", Kind: "ClusterIssuer"}
	var floorWrites atomic.Int64
	cpuBeforeFloor := cpuByProcess()
	requestsBeforeFloor := apiServerRequests(b, cfg)
	if file := os.Getenv("BENCH_APISERVER_PROFILE"); file != "" {
		// The same for the floor, to compare with go tool pprof -diff_base.
		go saveAPIServerProfile(cfg, file+".floor", apiServerProfileTime())
	}
	var floorTime time.Duration
	var floorCPU cpuSeconds
	var floorRequests requestCounts
	// BENCH_FLOOR=0 skips the floor: at 10,000 tenants it and the removal of its objects take
	// half an hour, bound by the client's rate limit as every phase is.
	withFloor := os.Getenv("BENCH_FLOOR") != "0"
	if withFloor {
		floorStart := time.Now()
		parallel(n, func(i int) error {
			applied, err := applyAsFloor(ctx, c, benchTenant(fmt.Sprintf("floor-%04d", i), ""), opts)
			floorWrites.Add(int64(applied))
			return err
		}, b)
		floorTime = time.Since(floorStart)
		floorCPU = cpuByProcess().since(cpuBeforeFloor)
		floorRequests = apiServerRequests(b, cfg).since(requestsBeforeFloor)
		// The operator starts from the cluster the floor started from. Left in place, the floor's
		// objects make the operator's phase pay for them: the service IP allocator, for one, lists
		// every allocated address on each allocation.
		parallel(n, func(i int) error {
			return deleteOwned(ctx, c, benchTenant(fmt.Sprintf("floor-%04d", i), ""), opts)
		}, b)
	}

	var requiredTime time.Duration
	if os.Getenv("BENCH_REQUIRED") != "0" {
		requiredTime = requiredWrites(b, cfg, c, n, opts, probes)
	}

	// The operator, as its own process (or one per shard), so that its memory is its own.
	operators := startOperators(b, env, dir, binary, probes, shards)
	defer func() {
		for _, op := range operators {
			_ = op.proc.Process.Kill()
			_ = op.proc.Wait()
		}
	}()
	pids := make([]int, len(operators))
	for i, op := range operators {
		pids[i] = op.proc.Process.Pid
	}
	// The clock starts once the operator runs as it does in a cluster: started, its caches
	// filled and a first tenant reconciled (by every shard). (Its readyz answers before the
	// caches are synced, and filling them lists every kind it watches: at a hundred tenants that
	// was a third of the time measured.) The floor has no start-up either. Start-up is reported
	// on its own.
	for _, op := range operators {
		waitReady(b, op.probeAddr, 60*time.Second)
	}
	classOfTenant := map[string]string{}
	for i := range n {
		classOfTenant[benchTenantName(i)] = classOf(i)
	}
	warmUps := warmUpTenants(shards)
	for _, name := range warmUps {
		classOfTenant[name] = steadyUp
		if err := c.Create(ctx, benchTenant(name, probes.url(steadyUp, name))); err != nil {
			b.Fatal(err)
		}
	}
	waitTenants(b, cfg, scheme, len(warmUps), 5*time.Minute, "converged", isConverged)
	startup := time.Since(operators[0].started)
	requestsBeforeOperator := apiServerRequests(b, cfg)
	metricsBeforeOperator := make([]map[string]float64, len(operators))
	for i, op := range operators {
		metricsBeforeOperator[i] = scrapeMetrics(b, op.metricsAddr)
	}
	writesBeforeOperator := scrapeAllWrites(b, operators)
	start := time.Now()
	memory := sampleMemory(start, pids...)
	cpuBeforeOperator := cpuByProcess(pids...)
	if file := os.Getenv("BENCH_CPU_PROFILE"); file != "" {
		// A CPU profile of the operator's (its first shard's) first 30 s of convergence, for go tool pprof.
		go saveProfile("http://"+operators[0].pprofAddr+"/debug/pprof/profile?seconds=30", http.DefaultClient, file)
	}
	if file := os.Getenv("BENCH_APISERVER_PROFILE"); file != "" {
		// A CPU profile of the API server during the operator's convergence.
		go saveAPIServerProfile(cfg, file, apiServerProfileTime())
	}
	parallel(n, func(i int) error {
		return c.Create(ctx, benchTenant(benchTenantName(i), probes.url(classOf(i), benchTenantName(i))))
	}, b)
	waitTenants(b, cfg, scheme, n+len(warmUps), 30*time.Minute, "converged", isConverged)
	operatorTime := time.Since(start)
	operatorCPU := cpuByProcess(pids...).since(cpuBeforeOperator)
	if withFloor {
		fmt.Printf("tenants=%d cpu seconds, floor: %s\n", n, floorCPU)
		fmt.Printf("tenants=%d api server requests per tenant, floor: %s\n", n, floorRequests.perTenant(n))
	}
	operatorRequests := apiServerRequests(b, cfg).since(requestsBeforeOperator)
	fmt.Printf("tenants=%d api server requests per tenant, operator: %s\n", n, operatorRequests.perTenant(n))
	// The floor stands for the operator's objects only if it writes every one of them.
	for key, count := range operatorRequests {
		if !withFloor {
			break
		}
		// Half a tenant's slack, for an apply the operator retried.
		if strings.HasPrefix(key, "APPLY ") && floorRequests[key] < count-float64(n)/2 {
			b.Errorf("the floor applies %s %.1f times a tenant, the operator %.1f: the floor misses objects", strings.TrimPrefix(key, "APPLY "), floorRequests[key]/float64(n), count/float64(n))
		}
	}
	fmt.Printf("tenants=%d cpu seconds, operator: %s\n", n, operatorCPU)
	writes := scrapeAllWrites(b, operators)
	metricsAfterOperator := make([]map[string]float64, len(operators))
	for i, op := range operators {
		metricsAfterOperator[i] = scrapeMetrics(b, op.metricsAddr)
	}
	explain(sumMetrics(metricsBeforeOperator), sumMetrics(metricsAfterOperator), n)
	if shards > 1 {
		for i, op := range operators {
			reconciles := sumSeries(metricsAfterOperator[i], "controller_runtime_reconcile_total", `controller="tenant"`) -
				sumSeries(metricsBeforeOperator[i], "controller_runtime_reconcile_total", `controller="tenant"`)
			fmt.Printf("tenants=%d shard %d of %d: %d tenants, %.0f reconciles (%.2f a tenant), peak RSS so far %.0f MiB\n",
				n, i, shards, op.owned(n), reconciles, reconciles/float64(max(1, op.owned(n))), peakRSSMiB(b, op.proc.Process.Pid))
		}
		checkShardsKeepToTheirTenants(b, auditLog, operators, classOfTenant, n, start, time.Now())
	}

	// Idle starts once every tenant has been probed: the steady-up ones Available, the
	// steady-down ones Down, every one with its first figures in status. The last status writes
	// and events of that are given a few seconds (the flapping tenants never stop writing).
	waitTenants(b, cfg, scheme, n+len(warmUps), 10*time.Minute, "probed", func(t *v1alpha1.Tenant) bool {
		return isProbed(t, classOfTenant[t.Name])
	})
	probedTime := time.Since(start)
	// The wakes of the first figures (every tenant's, within one probe interval) queue up behind
	// each other; idle starts once they are done, or a write waiting in the queue would count
	// as idle.
	drained := waitQueueDrained(b, operators, 30*time.Minute)
	time.Sleep(5 * time.Second)
	settled := scrapeAllWrites(b, operators)
	fmt.Printf("tenants=%d probed %.1fs after the first tenant was created, the tenant queue empty %.1fs after that; writes after convergence until then: %.2f a tenant\n",
		n, probedTime.Seconds(), drained.Seconds(), float64(settled-writes)/float64(n))
	writes = settled

	if file := os.Getenv("BENCH_HEAP_PROFILE"); file != "" {
		// The operator's heap once converged, for go tool pprof.
		saveProfile("http://"+operators[0].pprofAddr+"/debug/pprof/heap", http.DefaultClient, file)
	}
	idleFigures := measureIdle(b, idleSetup{n: n, window: idle, operators: operators,
		auditLog: auditLog, probes: probes, classOf: classOfTenant})
	peakRSS := 0.0
	for i, op := range operators {
		shardPeak := peakRSSMiB(b, op.proc.Process.Pid)
		peakRSS = max(peakRSS, shardPeak)
		if shards > 1 {
			b.ReportMetric(shardPeak, fmt.Sprintf("MiB-peak-RSS-shard-%d", i))
		}
	}
	rss, at := memory()
	fmt.Printf("tenants=%d memory at the highest RSS sampled (all %d processes together): RSS %.0f MiB at %.0fs\n", n, len(operators), rss, at.Seconds())
	var restart restartFigures
	if os.Getenv("BENCH_RESTART") != "0" {
		operators, restart = measureRestart(b, env, dir, binary, probes, shards, operators, n+len(warmUps), auditLog, classOfTenant)
		fmt.Printf("tenants=%d restart: %s\n", n, restart)
		b.ReportMetric(restart.firstPass.Seconds(), "s-restart-first-pass")
		b.ReportMetric(float64(len(restart.restartWrites)), "restart-writes")
		b.ReportMetric(float64(len(restart.refreshes)), "restart-slot-refreshes")
	}

	convergeWrites := writes - writesBeforeOperator
	ratio := operatorTime.Seconds() / floorTime.Seconds()
	b.ReportMetric(operatorTime.Seconds(), "s-to-converge")
	if withFloor {
		b.ReportMetric(floorTime.Seconds(), "s-floor")
		b.ReportMetric(ratio, "ratio-to-floor")
	}
	b.ReportMetric(float64(convergeWrites)/float64(n), "writes/tenant")
	b.ReportMetric(float64(floorWrites.Load())/float64(n), "floor-writes/tenant")
	b.ReportMetric(peakRSS, "MiB-peak-RSS")
	b.ReportMetric(startup.Seconds(), "s-startup")
	if shards > 1 {
		b.ReportMetric(float64(shards), "shards")
		b.ReportMetric(rss, "MiB-peak-RSS-all-shards")
	}
	floorFigures := "floor skipped (BENCH_FLOOR=0)"
	if withFloor {
		floorFigures = fmt.Sprintf("floor=%.1fs ratio=%.2f", floorTime.Seconds(), ratio)
	}
	// The target: converging within 1.15 times the writes any operator must make.
	if requiredTime > 0 {
		ratioToRequired := operatorTime.Seconds() / requiredTime.Seconds()
		b.ReportMetric(ratioToRequired, "ratio-to-required")
		floorFigures += fmt.Sprintf(" required=%.1fs ratio-to-required=%.2f", requiredTime.Seconds(), ratioToRequired)
	}
	fmt.Printf("tenants=%d shards=%d converge=%.1fs %s writes/tenant=%.1f (floor %.1f) peak-RSS=%.0fMiB (the largest process) startup=%.1fs\n",
		n, shards, operatorTime.Seconds(), floorFigures, float64(convergeWrites)/float64(n),
		float64(floorWrites.Load())/float64(n), peakRSS, startup.Seconds())
	fmt.Printf("tenants=%d idle %s: %s\n", n, idle, idleFigures)
}

// benchTenantName is the name of the i-th tenant the operator converges.
func benchTenantName(i int) string { return fmt.Sprintf("tenant-%04d", i) }

// benchTenant is a tenant with two users and, when url is set, that URL probed for uptime.
func benchTenant(name, url string) *v1alpha1.Tenant {
	t := &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.TenantSpec{
			Hostnames: []string{name + ".app.example.com"},
			Database:  v1alpha1.DatabaseSpec{Version: "17", Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}},
			Firewall:  v1alpha1.FirewallSpec{IngressPorts: []int32{80, 443}, IngressNamespaces: []string{"ingress-nginx"}},
			Access: v1alpha1.AccessSpec{
				Admins:  []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: name + "-admin"}},
				Viewers: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: name + "-viewer"}},
			},
			DeletionPolicy: v1alpha1.DeletionPolicyRetain,
		},
	}
	if url != "" {
		t.Spec.Monitoring = &v1alpha1.MonitoringSpec{URL: url}
	}
	return t
}

// markAsFloor relabels a floor object so the operator, started afterwards against the same API
// server, does not take it for its own: with the operator's managed-by label its cache would hold
// the floor's thousand tenants too, and every one of them would be queued for a reconcile.
func markAsFloor(obj runtime.ApplyConfiguration) {
	withLabels := reflect.ValueOf(obj).MethodByName("WithLabels")
	if !withLabels.IsValid() {
		panic(fmt.Sprintf("%T has no WithLabels", obj))
	}
	withLabels.Call([]reflect.Value{reflect.ValueOf(map[string]string{builders.LabelManagedBy: "bench-floor"})})
}

// ownedObjects are the objects the operator creates for a tenant (the database password is
// generated by the operator; any value does for the floor).
func ownedObjects(t *v1alpha1.Tenant, opts builders.Options) []runtime.ApplyConfiguration {
	objs := []runtime.ApplyConfiguration{builders.Namespace(t), builders.ResourceQuota(t), builders.LimitRange(t)}
	for _, rb := range builders.RoleBindings(t) {
		objs = append(objs, rb)
	}
	objs = append(objs, builders.TenantReaderClusterRole(t), builders.TenantReaderClusterRoleBinding(t),
		builders.DatabaseSecret(t, "floor-password-floor-password-floor"),
		builders.DatabaseBackupSecret(t, "floor-password-floor-password-floor"),
		builders.ProbeSecret(t, "floor-password-floor-password-floor", "SCRAM-SHA-256$4096:floor", opts),
		builders.DatabaseProbeSecret(t, "SCRAM-SHA-256$4096:floor"), builders.DatabaseConfigMap(t),
		builders.DatabaseService(t), builders.DatabaseHeadlessService(t), builders.DatabaseCertificate(t, opts),
		builders.DatabaseStatefulSet(t, opts))
	for _, p := range builders.NetworkPolicies(t, opts) {
		objs = append(objs, p)
	}
	if builders.RouteFor(t).Kind == v1alpha1.RouteKindIngress {
		objs = append(objs, builders.Ingress(t, opts))
	}
	return append(objs, builders.TenantCertificate(t, opts))
}

// requiredWrites times what the API server must do for a tenant whatever the operator: a plain
// client with the floor's workers creates the Tenant, adds the finalizer, applies the owned
// objects, writes a status like the operator's first one and records one event, and watches
// nothing. Its ratio to the floor is the part of the operator's ratio no implementation avoids
// on a control plane that the operator shares its cores with. Its objects are removed afterwards.
func requiredWrites(b *testing.B, cfg *rest.Config, c client.Client, n int, opts builders.Options, probes *probeServer) time.Duration {
	ctx := context.Background()
	name := func(i int) string { return fmt.Sprintf("required-%04d", i) }
	if file := os.Getenv("BENCH_APISERVER_PROFILE"); file != "" {
		go saveAPIServerProfile(cfg, file+".required", apiServerProfileTime())
	}
	cpuBefore := cpuByProcess()
	start := time.Now()
	parallel(n, func(i int) error {
		t := benchTenant(name(i), probes.url(classOf(i), name(i)))
		if err := c.Create(ctx, t); err != nil {
			return err
		}
		before := t.DeepCopy()
		t.Finalizers = append(t.Finalizers, v1alpha1.TenantFinalizer)
		if err := c.Patch(ctx, t, client.MergeFrom(before)); err != nil {
			return err
		}
		if _, err := applyAsFloor(ctx, c, t, opts); err != nil {
			return err
		}
		before = t.DeepCopy()
		t.Status = firstStatus(t)
		if err := c.Status().Patch(ctx, t, client.MergeFrom(before)); err != nil {
			return err
		}
		return c.Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: t.Name + ".credentials"},
			InvolvedObject: corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Tenant", Name: t.Name, UID: t.UID},
			Type:           corev1.EventTypeNormal, Reason: "CredentialsGenerated",
			Message: "Generated the database credentials in secret postgres-credentials", Source: corev1.EventSource{Component: "floor"},
			FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
		})
	}, b)
	elapsed := time.Since(start)
	fmt.Printf("tenants=%d required writes without an operator: %.1fs, cpu seconds: %s\n", n, elapsed.Seconds(), cpuByProcess().since(cpuBefore))
	b.ReportMetric(elapsed.Seconds(), "s-required-writes")
	parallel(n, func(i int) error {
		t := benchTenant(name(i), probes.url(classOf(i), name(i)))
		if err := deleteOwned(ctx, c, t, opts); err != nil {
			return err
		}
		if err := c.Patch(ctx, t, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))); err != nil {
			return err
		}
		return c.Delete(ctx, t)
	}, b)
	return elapsed
}

// firstStatus is the status the operator writes for a new bench tenant on a control plane
// without kubelet, before its first probes: twelve conditions, the database's and certificate's
// names and the uptime's detection time.
func firstStatus(t *v1alpha1.Tenant) v1alpha1.TenantStatus {
	waiting := "DatabaseReady: Waiting for the database pod to be created; CertificateReady: Waiting for cert-manager to issue the certificate: no status from cert-manager yet"
	noPolicy := "No BackupPolicy referenced: this tenant's database is not backed up"
	status := v1alpha1.TenantStatus{ObservedGeneration: t.Generation, Phase: v1alpha1.TenantPhaseProvisioning, Namespace: "tenant-" + t.Name,
		Database:    &v1alpha1.DatabaseStatus{Version: "17", Host: "postgres.tenant-" + t.Name + ".svc", SecretName: "postgres-credentials"},
		Certificate: &v1alpha1.CertificateStatus{SecretName: "tenant-tls"},
		Uptime:      &v1alpha1.UptimeStatus{DetectionSeconds: 100}}
	for _, c := range []metav1.Condition{
		{Type: v1alpha1.ConditionNamespaceReady, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "Namespace tenant-" + t.Name + " with Pod Security restricted, quota and limits"},
		{Type: v1alpha1.ConditionAccessReady, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "1 admins, 0 editors, 1 viewers bound"},
		{Type: v1alpha1.ConditionDatabaseReady, Status: metav1.ConditionFalse, Reason: "Progressing", Message: "Waiting for the database pod to be created"},
		{Type: v1alpha1.ConditionFirewallReady, Status: metav1.ConditionTrue, Reason: "Succeeded", Message: "5 network policies: default deny, with the listed allows"},
		{Type: v1alpha1.ConditionCertificateReady, Status: metav1.ConditionFalse, Reason: "CertificateNotIssued", Message: "Waiting for cert-manager to issue the certificate: no status from cert-manager yet"},
		{Type: v1alpha1.ConditionPoliciesResolved, Status: metav1.ConditionTrue, Reason: "NoPolicy", Message: noPolicy},
		{Type: v1alpha1.ConditionBackupsFresh, Status: metav1.ConditionTrue, Reason: "NoPolicy", Message: noPolicy},
		{Type: v1alpha1.ConditionBackupVerified, Status: metav1.ConditionUnknown, Reason: "NoPolicy", Message: "No BackupPolicy referenced"},
		{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionUnknown, Reason: "Progressing", Message: "Waiting for the first probes of " + t.Spec.Monitoring.URL},
		{Type: v1alpha1.ConditionUptimeObjectiveMet, Status: metav1.ConditionUnknown, Reason: "Progressing", Message: "Waiting for the first probes"},
		{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Progressing", Message: waiting},
		{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: "Progressing", Message: waiting},
	} {
		c.ObservedGeneration = t.Generation
		meta.SetStatusCondition(&status.Conditions, c)
	}
	return status
}

// applyAsFloor applies a tenant's owned objects as a plain client, labelled as the floor's, and
// tells how many it applied.
func applyAsFloor(ctx context.Context, c client.Client, t *v1alpha1.Tenant, opts builders.Options) (int, error) {
	objs := ownedObjects(t, opts)
	for i, obj := range objs {
		markAsFloor(obj)
		if err := c.Apply(ctx, obj, client.FieldOwner("floor"), client.ForceOwnership); err != nil {
			return i, err
		}
	}
	return len(objs), nil
}

// deleteOwned deletes what applyAsFloor applied for a tenant.
func deleteOwned(ctx context.Context, c client.Client, t *v1alpha1.Tenant, opts builders.Options) error {
	for _, obj := range ownedObjects(t, opts) {
		if err := deleteApplied(ctx, c, obj); err != nil {
			return err
		}
	}
	return nil
}

// deleteApplied deletes the object an apply configuration describes.
func deleteApplied(ctx context.Context, c client.Client, obj runtime.ApplyConfiguration) error {
	ac := obj.(interface {
		GetName() *string
		GetNamespace() *string
		GetKind() *string
		GetAPIVersion() *string
	})
	target := &metav1.PartialObjectMetadata{}
	target.APIVersion, target.Kind = *ac.GetAPIVersion(), *ac.GetKind()
	target.Name = *ac.GetName()
	if ns := ac.GetNamespace(); ns != nil {
		target.Namespace = *ns
	}
	if err := c.Delete(ctx, target); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %s %s/%s: %w", target.Kind, target.Namespace, target.Name, err)
	}
	return nil
}

func parallel(n int, work func(i int) error, b *testing.B) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := work(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// waitTenants waits until n tenants are done (isConverged, isProbed). It watches rather than
// polls: listing a thousand tenants every few hundred milliseconds would load the API server (and
// the two cores the operator shares with it) more than the operator does.
func waitTenants(b *testing.B, cfg *rest.Config, scheme *runtime.Scheme, n int, timeout time.Duration, what string, done func(*v1alpha1.Tenant) bool) {
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	finished := map[string]bool{}
	observe := func(t *v1alpha1.Tenant) {
		if done(t) {
			finished[t.Name] = true
		} else {
			delete(finished, t.Name)
		}
	}
	for {
		list := &v1alpha1.TenantList{}
		if err := c.List(ctx, list); err != nil {
			b.Fatalf("%d of %d tenants %s: %v", len(finished), n, what, err)
		}
		clear(finished)
		for i := range list.Items {
			observe(&list.Items[i])
		}
		if len(finished) == n {
			return
		}
		w, err := c.Watch(ctx, &v1alpha1.TenantList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
		if err != nil {
			b.Fatalf("%d of %d tenants %s: %v", len(finished), n, what, err)
		}
		for event := range w.ResultChan() {
			if t, ok := event.Object.(*v1alpha1.Tenant); ok && event.Type != watch.Error {
				observe(t)
			}
			if len(finished) == n {
				w.Stop()
				return
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			b.Fatalf("%d of %d tenants %s after %v", len(finished), n, what, timeout)
		}
		// The watch ended (expired or closed by the server): list again and go on watching.
	}
}

// isProbed tells whether a tenant's status shows what its probes found, for its class: Available
// for steady-up tenants, Down for steady-down ones, either for flapping ones, and its uptime
// figures.
func isProbed(t *v1alpha1.Tenant, class string) bool {
	available := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionAvailable)
	if available == nil || t.Status.Uptime == nil || t.Status.Uptime.Ratio24h == "" {
		return false
	}
	switch class {
	case steadyUp:
		return available.Status == metav1.ConditionTrue
	case steadyDown:
		return available.Status == metav1.ConditionFalse && available.Reason == v1alpha1.ReasonDown
	default:
		return available.Status != metav1.ConditionUnknown
	}
}

// isConverged tells whether a tenant's status describes its generation with every part reported,
// and the parts that need nothing but the API server are true.
func isConverged(t *v1alpha1.Tenant) bool {
	if t.Status.ObservedGeneration != t.Generation || t.Status.Phase == "" {
		return false
	}
	for _, p := range []string{v1alpha1.ConditionNamespaceReady, v1alpha1.ConditionAccessReady, v1alpha1.ConditionDatabaseReady,
		v1alpha1.ConditionFirewallReady, v1alpha1.ConditionCertificateReady, v1alpha1.ConditionReady} {
		if meta.FindStatusCondition(t.Status.Conditions, p) == nil {
			return false
		}
	}
	return meta.IsStatusConditionTrue(t.Status.Conditions, v1alpha1.ConditionNamespaceReady) &&
		meta.IsStatusConditionTrue(t.Status.Conditions, v1alpha1.ConditionFirewallReady) &&
		meta.IsStatusConditionTrue(t.Status.Conditions, v1alpha1.ConditionAccessReady)
}

// scrapeWrites sums the manager's client-go request counter over the verbs that write.
func scrapeWrites(b *testing.B, addr string) int64 {
	var total float64
	for series, v := range scrapeMetrics(b, addr) {
		if !strings.HasPrefix(series, "rest_client_requests_total{") {
			continue
		}
		for _, verb := range []string{`method="POST"`, `method="PUT"`, `method="PATCH"`, `method="DELETE"`} {
			if strings.Contains(series, verb) {
				total += v
			}
		}
	}
	return int64(total)
}

// scrapeMetrics reads the manager's metrics as series (name with labels) to value.
func scrapeMetrics(b *testing.B, addr string) map[string]float64 {
	return readMetrics(b, http.DefaultClient, "http://"+addr+"/metrics")
}

// readMetrics reads a Prometheus text exposition as series (name with labels) to value.
func readMetrics(b *testing.B, httpClient *http.Client, url string) map[string]float64 {
	resp, err := httpClient.Get(url)
	if err != nil {
		b.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			b.Fatalf("parse %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sumSeries adds up the series of one metric whose labels contain every one of want.
func sumSeries(m map[string]float64, name string, want ...string) float64 {
	var total float64
	for series, v := range m {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		matches := true
		for _, w := range want {
			if !strings.Contains(series, w) {
				matches = false
			}
		}
		if matches {
			total += v
		}
	}
	return total
}

// explain prints how often each tenant was reconciled while converging, and how long a reconcile
// and a wait in the queue took, from the operator's metrics before and after.
func explain(before, after map[string]float64, n int) {
	tenant := `controller="tenant"`
	delta := func(name string, labels ...string) float64 {
		return sumSeries(after, name, labels...) - sumSeries(before, name, labels...)
	}
	fmt.Printf("tenants=%d reconciles/tenant=%.2f errors=%.0f requeue-after=%.0f reconcile-mean=%.0fms queue-wait-mean=%.0fms\n",
		n, delta("controller_runtime_reconcile_total", tenant)/float64(n),
		delta("controller_runtime_reconcile_total", tenant, `result="error"`),
		delta("controller_runtime_reconcile_total", tenant, `result="requeue_after"`),
		1000*delta("controller_runtime_reconcile_time_seconds_sum", tenant)/max(1, delta("controller_runtime_reconcile_time_seconds_count", tenant)),
		1000*delta("workqueue_queue_duration_seconds_sum", `name="tenant"`)/max(1, delta("workqueue_queue_duration_seconds_count", `name="tenant"`)))
}

// cpuSeconds is CPU time (user and system) by process: the API server, etcd, this benchmark (its
// clients) and the operator.
type cpuSeconds map[string]float64

// cpuByProcess reads the CPU time so far of the control plane's processes, this process and the
// operator's processes (their sum: one, or one per shard). The control plane is the etcd and
// kube-apiserver this process started: others may run on the same machine.
func cpuByProcess(operatorPIDs ...int) cpuSeconds {
	out := cpuSeconds{"bench": processCPU(os.Getpid())}
	for _, pid := range operatorPIDs {
		out["operator"] += processCPU(pid)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != os.Getpid() {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			continue
		}
		if name := strings.TrimSpace(string(comm)); name == "kube-apiserver" || name == "etcd" {
			out[name] += processCPU(pid)
		}
	}
	return out
}

// parentPID is a process's parent, from /proc; 0 when it cannot be read.
func parentPID(pid int) int {
	fields := statFields(pid)
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// statFields are the fields of /proc/<pid>/stat after the command name (which is in parentheses
// and may hold spaces): the process state first.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
}

func (c cpuSeconds) since(before cpuSeconds) cpuSeconds {
	out := cpuSeconds{}
	for k, v := range c {
		out[k] = v - before[k]
	}
	return out
}

func (c cpuSeconds) String() string {
	var parts []string
	for _, k := range []string{"kube-apiserver", "etcd", "operator", "bench"} {
		if v, ok := c[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.1f", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// processCPU is a process's user and system CPU time in seconds, from /proc (clock ticks of 1/100 s).
func processCPU(pid int) float64 {
	fields := statFields(pid)
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

// sampleMemory samples the operator's resident set (of all its processes together) every 250 ms
// from start on (reading /proc only, so as not to load the operator), and returns a function that
// stops sampling and tells the highest sample and when it was taken.
func sampleMemory(start time.Time, pids ...int) func() (float64, time.Duration) {
	var peak float64
	var peakAt time.Duration
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(250 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			if rss := rssMiB(pids...); rss > peak {
				peak, peakAt = rss, time.Since(start)
			}
		}
	}()
	return func() (float64, time.Duration) {
		close(stop)
		<-done
		return peak, peakAt
	}
}

// rssMiB is the resident set of the processes together; those that cannot be read count nothing.
func rssMiB(pids ...int) float64 {
	total := 0.0
	for _, pid := range pids {
		if rss, err := statusMiB(pid, "VmRSS:"); err == nil {
			total += rss
		}
	}
	return total
}

// statusMiB reads a size field (in kB) of /proc/<pid>/status, in MiB.
func statusMiB(pid int, field string) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			kb, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				return 0, fmt.Errorf("%s in /proc/%d/status: %w", field, pid, err)
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func peakRSSMiB(b *testing.B, pid int) float64 {
	mib, err := statusMiB(pid, "VmHWM:")
	if err != nil {
		b.Fatal(err)
	}
	return mib
}

// requestCounts counts the API server's requests by verb and resource (and subresource), and the
// watch events it sent by kind, from its own metrics.
type requestCounts map[string]float64

func apiServerRequests(b *testing.B, cfg *rest.Config) requestCounts {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	out := requestCounts{}
	label := func(series, name string) string {
		i := strings.Index(series, name+`="`)
		if i < 0 {
			return ""
		}
		rest := series[i+len(name)+2:]
		return rest[:strings.IndexByte(rest, '"')]
	}
	for series, v := range readMetrics(b, httpClient, strings.TrimSuffix(cfg.Host, "/")+"/metrics") {
		switch {
		case strings.HasPrefix(series, "apiserver_request_total{"):
			key := label(series, "verb") + " " + label(series, "resource")
			if sub := label(series, "subresource"); sub != "" {
				key += "/" + sub
			}
			out[key] += v
		case strings.HasPrefix(series, "apiserver_watch_events_total{"):
			out["watch-event "+label(series, "resource")] += v
		}
	}
	return out
}

func (c requestCounts) since(before requestCounts) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// perTenant lists the counts that reach one in ten tenants, divided by n, largest first.
func (c requestCounts) perTenant(n int) string {
	keys := make([]string, 0, len(c))
	for k, v := range c {
		if v/float64(n) >= 0.1 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return c[keys[i]] > c[keys[j]] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, c[k]/float64(n)))
	}
	return strings.Join(parts, ", ")
}

// apiServerProfileTime is how long the API server is profiled in each phase: BENCH_PROFILE_TIME,
// 10 s unless set; it should be shorter than the floor takes.
func apiServerProfileTime() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BENCH_PROFILE_TIME")); err == nil {
		return d
	}
	return 10 * time.Second
}

// saveAPIServerProfile saves a CPU profile of the API server (its /debug/pprof, open to
// system:masters) for go tool pprof.
func saveAPIServerProfile(cfg *rest.Config, file string, d time.Duration) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "api server profile:", err)
		return
	}
	saveProfile(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(cfg.Host, "/"), int(d.Seconds())), httpClient, file)
}

// saveProfile fetches a pprof profile into file; a failure is reported, not fatal, as the
// profile is only a help for investigating.
func saveProfile(url string, httpClient *http.Client, file string) {
	resp, err := httpClient.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	out, err := os.Create(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer out.Close()
	_, _ = io.Copy(out, resp.Body)
}

func waitReady(b *testing.B, addr string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("operator not ready after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddress(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitQueueDrained waits until the operators' tenant queues are empty at once and returns how
// long that took. Flapping tenants wake their reconciler every few seconds, so the queues are
// rarely empty for long; sampled often, an empty moment shows once the backlog is done.
func waitQueueDrained(b *testing.B, operators []*operatorProcess, timeout time.Duration) time.Duration {
	start := time.Now()
	for {
		if _, depth := tenantQueue(b, operators); depth == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			b.Fatalf("the tenant queues were not empty %s after every tenant was probed", timeout)
		}
		time.Sleep(pollInterval(time.Since(start)))
	}
}

// tenantQueue is the tenant reconciles the operators made so far and the tenants queued now.
// Only the two series are asked for (name[]): the operator still gathers every metric for a
// scrape, 10,000 tenants' series among them, but does not encode them.
func tenantQueue(b *testing.B, operators []*operatorProcess) (reconciles, depth float64) {
	for _, op := range operators {
		m := readMetrics(b, http.DefaultClient, "http://"+op.metricsAddr+"/metrics?name[]=controller_runtime_reconcile_total&name[]=workqueue_depth")
		reconciles += sumSeries(m, "controller_runtime_reconcile_total", `controller="tenant"`)
		depth += sumSeries(m, "workqueue_depth", `name="tenant"`)
	}
	return reconciles, depth
}

// pollInterval is how long to wait between two looks at the operator after waiting elapsed: a
// fiftieth of it, from 200 ms up to 2 s. A look gathers every metric, which at 10,000 tenants
// costs the operator tens of milliseconds; a fixed 200 ms would make the benchmark a load of its
// own, while a fiftieth keeps the error in a measured time within 2 %.
func pollInterval(elapsed time.Duration) time.Duration {
	return min(max(elapsed/50, 200*time.Millisecond), 2*time.Second)
}
