package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/tenantops/tenant-operator/internal/manager"
	"github.com/tenantops/tenant-operator/internal/shard"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

// operatorProcess is one process of the operator under test: the whole operator, or one shard of
// it (BENCH_SHARDS).
type operatorProcess struct {
	proc    *exec.Cmd
	started time.Time
	// shard is the process's shard; the zero Shard when not sharded.
	shard shard.Shard
	// user is the API server user it runs as, which tells its requests apart in the audit log.
	user                              string
	metricsAddr, probeAddr, pprofAddr string
}

// owned is how many of the bench tenants 0..n-1 the process reconciles.
func (op *operatorProcess) owned(n int) int {
	count := 0
	for i := range n {
		if op.shard.Owns(benchTenantName(i)) {
			count++
		}
	}
	return count
}

// startOperators starts the operator as shards processes: one, as shipped, or --shards N
// --shard-index i for each i, every one with its own API user, metrics, health and pprof ports,
// log file (operator.log, operator-shard-<i>.log in dir) and lease.
func startOperators(b *testing.B, env *controlplane.Env, dir, binary string, probes *probeServer, shards int) []*operatorProcess {
	var out []*operatorProcess
	for i := range shards {
		op := &operatorProcess{user: "operator", metricsAddr: freeAddress(b), probeAddr: freeAddress(b), pprofAddr: freeAddress(b)}
		logName := "operator.log"
		if shards > 1 {
			op.shard = shard.Shard{Index: i, Count: shards}
			op.user, logName = "operator-"+op.shard.String(), "operator-"+op.shard.String()+".log"
		}
		admin, err := env.Environment.AddUser(envtest.User{Name: op.user, Groups: []string{"system:masters"}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		kubeconfig, err := admin.KubeConfig()
		if err != nil {
			b.Fatal(err)
		}
		kubeconfigPath := filepath.Join(dir, op.user+".kubeconfig")
		if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
			b.Fatal(err)
		}
		args := []string{"--kubeconfig", kubeconfigPath, "--enable-webhooks=false",
			"--operator-namespace", operatorNamespace, "--default-issuer-name", "selfsigned",
			"--metrics-bind-address", op.metricsAddr, "--health-probe-bind-address", op.probeAddr,
			"--max-concurrent-reconciles", strconv.Itoa(workers),
			"--zap-log-level", "error", // the API client limits are the defaults, as shipped
			// Uptime probes are on, as shipped; the probe server's CA is the only thing added.
			// Leader election is on, as the chart and config/default install it (one replica
			// here, of each shard).
			"--probe-ca-file", probes.caFile, "--leader-elect=true", "--pprof-bind-address", op.pprofAddr}
		if shards > 1 {
			args = append(args, "--shards", strconv.Itoa(shards), "--shard-index", strconv.Itoa(i))
		}
		op.proc = exec.Command(binary, args...)
		if limit := os.Getenv("BENCH_MEMORY_LIMIT"); limit != "" {
			// As the chart and config/manager run it: the container's memory limit in bytes, of
			// which the operator keeps the Go runtime to 90 %.
			q, err := resource.ParseQuantity(strings.TrimSuffix(limit, "B"))
			if err != nil {
				b.Fatalf("BENCH_MEMORY_LIMIT=%q: want a memory size such as 1Gi: %v", limit, err)
			}
			op.proc.Env = append(os.Environ(), manager.MemoryLimitEnv+"="+strconv.FormatInt(q.Value(), 10))
		}
		logFile, err := os.Create(filepath.Join(dir, logName))
		if err != nil {
			b.Fatal(err)
		}
		op.proc.Stdout, op.proc.Stderr = logFile, logFile
		op.started = time.Now()
		if err := op.proc.Start(); err != nil {
			b.Fatal(err)
		}
		out = append(out, op)
	}
	return out
}

// warmUpTenants are the tenants created before the clock starts, one for each shard (the first
// name warm-up, warm-up-1, ... that is the shard's), so that every shard has synced its caches
// and reconciled once: warm-up alone when not sharded.
func warmUpTenants(shards int) []string {
	names := make([]string, shards)
	found := 0
	for i := 0; found < shards; i++ {
		name := "warm-up"
		if i > 0 {
			name = fmt.Sprintf("warm-up-%d", i)
		}
		if s := shard.Of(name, shards); names[s] == "" {
			names[s] = name
			found++
		}
	}
	return names
}

// scrapeAllWrites sums the writes every operator process counted.
func scrapeAllWrites(b *testing.B, operators []*operatorProcess) int64 {
	var total int64
	for _, op := range operators {
		total += scrapeWrites(b, op.metricsAddr)
	}
	return total
}

// sumMetrics adds up the series of several processes' metrics, for counters and sums.
func sumMetrics(all []map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, m := range all {
		for series, v := range m {
			out[series] += v
		}
	}
	return out
}

// checkShardsKeepToTheirTenants reads the shards' requests in [from, to) from the audit log and
// fails the benchmark when a request about a tenant of classOf came from any shard but the
// tenant's own, or one of the n bench tenants got none from its own. It prints how many requests each shard sent, and for how many
// tenants.
func checkShardsKeepToTheirTenants(b *testing.B, auditLog string, operators []*operatorProcess, classOf map[string]string, n int, from, to time.Time) {
	// A request is in the audit log once answered; give the last ones time to be.
	time.Sleep(2 * time.Second)
	shards := len(operators)
	byTenant := map[string][]int{}
	for i, op := range operators {
		requests, tenants := 0, map[string]bool{}
		for _, r := range operatorRequests(b, auditLog, op.user, from, to) {
			if r.tenant == "" || r.tenant == sharedOwner {
				continue
			}
			requests++
			tenants[r.tenant] = true
			if len(byTenant[r.tenant]) == 0 {
				byTenant[r.tenant] = make([]int, shards)
			}
			byTenant[r.tenant][i]++
		}
		fmt.Printf("  shard %d (%s): %d requests about %d tenants\n", i, op.user, requests, len(tenants))
	}
	var foreign []string
	for tenant, counts := range byTenant {
		if _, ours := classOf[tenant]; !ours {
			continue
		}
		owner := shard.Of(tenant, shards)
		for i, c := range counts {
			if i != owner && c > 0 {
				foreign = append(foreign, fmt.Sprintf("%s (shard %d's) got %d requests from shard %d", tenant, owner, c, i))
			}
		}
	}
	var untouched []string
	for i := range n {
		if tenant := benchTenantName(i); byTenant[tenant] == nil || byTenant[tenant][shard.Of(tenant, shards)] == 0 {
			untouched = append(untouched, tenant)
		}
	}
	sort.Strings(foreign)
	sort.Strings(untouched)
	fmt.Printf("  tenants reconciled by a shard not their own: %d; tenants their own shard sent nothing: %d\n", len(foreign), len(untouched))
	if len(foreign) > 0 {
		b.Errorf("%d tenants were written by a shard not their own, e.g. %s", len(foreign), strings.Join(foreign[:min(5, len(foreign))], "; "))
	}
	if len(untouched) > 0 {
		b.Errorf("%d tenants got no request from their own shard, e.g. %s", len(untouched), strings.Join(untouched[:min(5, len(untouched))], ", "))
	}
}
