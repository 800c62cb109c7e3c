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
	// settle is the window after the first pass in which the new processes probe every tenant
	// until they have judged it (failuresToDown probes, and a little more).
	settle time.Duration
	// The operators' writes from the restart until the end of settle (leases aside), split by
	// what caused them. restartWrites are the restart's own: none is wanted. refreshes are
	// steady-down tenants' figures published at their slot of the refresh interval, once, as
	// every 10 minutes without a restart (the outage grows, so the figures change); transitions
	// are flapping tenants' status writes and events, made whether or not the operator restarted.
	restartWrites, refreshes, transitions []operatorRequest
	// firstPassWrites is how many of them all came before the first pass was done.
	firstPassWrites int
}

func (f restartFigures) String() string {
	return fmt.Sprintf("first pass done %.1fs after the start (%.0f reconciles); from the start until %.0fs after it, "+
		"while every tenant was probed and judged again, %d writes (%d in the first pass): %d caused by the restart (%s), "+
		"%d steady-down tenants' figures refreshed at their slot (%s), %d by flapping tenants' transitions (%s)",
		f.firstPass.Seconds(), f.reconciles, f.settle.Seconds(),
		len(f.restartWrites)+len(f.refreshes)+len(f.transitions), f.firstPassWrites,
		len(f.restartWrites), byVerbAndResource(f.restartWrites, 1),
		len(f.refreshes), byVerbAndResource(f.refreshes, 1),
		len(f.transitions), byVerbAndResource(f.transitions, 1))
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
		reconciles, depth := tenantQueue(b, operators)
		if reconciles >= float64(tenants) && depth == 0 {
			f.firstPass, f.reconciles = time.Since(started), reconciles
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("restarted operator: %.0f of %d tenants reconciled, %.0f queued, after %s", reconciles, tenants, depth, time.Since(started))
		}
		time.Sleep(pollInterval(time.Since(started)))
	}

	// Back to idle: each tenant probed failuresToDown times by the new processes (a steady-down
	// one judged down again), the reconciles that wakes given a few seconds.
	f.settle = failuresToDown*uptime.DefaultInterval + 10*time.Second
	firstPassDone := started.Add(f.firstPass)
	end := firstPassDone.Add(f.settle)
	// A request is in the audit log once answered.
	time.Sleep(time.Until(end.Add(2 * time.Second)))
	refreshed := map[string]int{}
	for _, op := range operators {
		for _, q := range operatorRequests(b, auditLog, op.user, started, end) {
			if !isWrite(q.verb) || q.resource == "leases" {
				continue
			}
			if q.at.Before(firstPassDone) {
				f.firstPassWrites++
			}
			switch class := classOf[q.tenant]; {
			case class == flapping && (isStatusWrite(q) || isEvent(q)):
				f.transitions = append(f.transitions, q)
			case class == steadyDown && isStatusWrite(q) && slotSince(q, started) && refreshed[q.tenant] == 0:
				refreshed[q.tenant]++
				f.refreshes = append(f.refreshes, q)
			default:
				f.restartWrites = append(f.restartWrites, q)
			}
		}
	}
	if n := len(f.restartWrites); n > 0 {
		b.Errorf("restart: %d writes caused by the restart, want none: %s", n, examples(f.restartWrites, 5))
	}
	return operators, f
}

// slotSince tells whether the tenant's slot of the refresh interval came between since and the
// request: a write then may be the tenant's figures published at that slot.
func slotSince(q operatorRequest, since time.Time) bool {
	slot := uptime.NextSlot(q.tenant, uptime.DefaultRefreshInterval, q.at.Add(-uptime.DefaultRefreshInterval))
	return !slot.Before(since.Truncate(time.Second))
}
