package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/uptime"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

// restartFigures are what a restart of the converged operator costs.
type restartFigures struct {
	// firstPass is from the new processes' start until every tenant was reconciled once and the
	// queue was empty: caches synced, leases taken, the first pass done.
	firstPass  time.Duration
	reconciles float64
	// writes are the operators' writes in the audit log from the restart until the first pass
	// was done, by verb and resource.
	writes      []operatorRequest
	writesByKey string
	// settle is the window after the first pass in which the new processes probe every tenant
	// until they have judged it (failuresToDown probes, and a little more); settleWrites are the
	// writes about steady tenants in it, by class. A steady-up tenant must get none; a
	// steady-down one at most its figures' refresh at its own slot, once.
	settle       time.Duration
	settleWrites map[string][]operatorRequest
}

func (f restartFigures) String() string {
	return fmt.Sprintf("first pass done %.1fs after the start (%.0f reconciles), %d writes in it (%s); "+
		"in the %.0fs after it, while every tenant was probed and judged again: %d writes to steady-up tenants (%s), %d to steady-down ones (%s)",
		f.firstPass.Seconds(), f.reconciles, len(f.writes), f.writesByKey, f.settle.Seconds(),
		len(f.settleWrites[steadyUp]), byVerbAndResource(f.settleWrites[steadyUp], 1),
		len(f.settleWrites[steadyDown]), byVerbAndResource(f.settleWrites[steadyDown], 1))
}

// measureRestart stops the converged operator as the kubelet does (SIGTERM: it releases its lease)
// and starts it again, as a rollout or a node drain would; it returns the new processes and what
// the restart cost. A restarted operator must find nothing to write: every tenant is as its spec
// says.
func measureRestart(b *testing.B, env *controlplane.Env, dir, binary string, probes *probeServer, shards int,
	old []*operatorProcess, tenants int, auditLog string, classOf map[string]string) ([]*operatorProcess, restartFigures) {
	for _, op := range old {
		_ = op.proc.Process.Signal(syscall.SIGTERM)
	}
	for i, op := range old {
		_ = op.proc.Wait()
		// startOperators writes the logs afresh; keep the first run's.
		name := "operator.log"
		if shards > 1 {
			name = "operator-" + op.shard.String() + ".log"
		}
		_ = os.Rename(filepath.Join(dir, name), filepath.Join(dir, fmt.Sprintf("before-restart-%d-%s", i, name)))
	}
	started := time.Now()
	operators := startOperators(b, env, dir, binary, probes, shards)
	for _, op := range operators {
		waitReady(b, op.probeAddr, 5*time.Minute)
	}
	var f restartFigures
	deadline := started.Add(30 * time.Minute)
	for {
		var reconciles, depth float64
		for _, op := range operators {
			m := scrapeMetrics(b, op.metricsAddr)
			reconciles += sumSeries(m, "controller_runtime_reconcile_total", `controller="tenant"`)
			depth += sumSeries(m, "workqueue_depth", `name="tenant"`)
		}
		if reconciles >= float64(tenants) && depth == 0 {
			f.firstPass, f.reconciles = time.Since(started), reconciles
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("restarted operator: %.0f of %d tenants reconciled, %.0f queued, after %s", reconciles, tenants, depth, time.Since(started))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A request is in the audit log once answered.
	time.Sleep(2 * time.Second)
	for _, op := range operators {
		for _, q := range operatorRequests(b, auditLog, op.user, started, started.Add(f.firstPass)) {
			if isWrite(q.verb) && q.resource != "leases" && !isEvent(q) {
				f.writes = append(f.writes, q)
			}
		}
	}
	f.writesByKey = byVerbAndResource(f.writes, 1)

	// Back to idle: each tenant probed failuresToDown times by the new processes (a steady-down
	// one judged down again), the reconciles that wakes given a few seconds.
	f.settle = failuresToDown*uptime.DefaultInterval + 10*time.Second
	settleFrom := started.Add(f.firstPass)
	time.Sleep(time.Until(settleFrom.Add(f.settle + 2*time.Second)))
	f.settleWrites = map[string][]operatorRequest{}
	perTenant := map[string]int{}
	for _, op := range operators {
		for _, q := range operatorRequests(b, auditLog, op.user, settleFrom, settleFrom.Add(f.settle)) {
			class := classOf[q.tenant]
			if !isWrite(q.verb) || q.resource == "leases" || (class != steadyUp && class != steadyDown) {
				continue
			}
			f.settleWrites[class] = append(f.settleWrites[class], q)
			if !isEvent(q) {
				perTenant[q.tenant]++
			}
		}
	}
	if n := len(f.settleWrites[steadyUp]); n > 0 {
		b.Errorf("restart: %d writes to steady-up tenants while they were probed again, want none: %s", n, examples(f.settleWrites[steadyUp], 5))
	}
	for tenant, n := range perTenant {
		if classOf[tenant] == steadyDown && n > 1 {
			b.Errorf("restart: steady-down tenant %s written %d times in %s, want at most its figures' refresh", tenant, n, f.settle)
		}
	}
	return operators, f
}
