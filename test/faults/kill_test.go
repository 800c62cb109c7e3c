package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/test/localstack"
)

// startOperator starts an operator for the case and stops it when the case ends.
func startOperator(t *testing.T, name string, extra ...string) *localstack.Operator {
	t.Helper()
	op, err := cluster.StartOperator(name, true, extra...)
	if err != nil {
		cluster.DumpLogs(t.Output(), name+".log")
		t.Fatalf("start operator %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := op.Stop(); err != nil {
			t.Errorf("operator %s: %v", name, err)
		}
	})
	return op
}

// killer kills the operator at moments drawn from rng and starts it again at once, as a crash
// and the Deployment's restart would.
type killer struct {
	t     *testing.T
	rng   *rand.Rand
	name  string
	op    *localstack.Operator
	kills int
	// args are the operator's extra flags, the same at every restart.
	args []string
}

// killSoon kills the operator n times, each after a random 0.3 to 4 s of work, restarting it in
// between, and returns after the last restart.
func (k *killer) killSoon(n int, phase string) {
	k.t.Helper()
	for range n {
		time.Sleep(time.Duration(300+k.rng.IntN(3700)) * time.Millisecond)
		k.killNow(phase)
	}
}

// killNow kills the operator and starts it again at once.
func (k *killer) killNow(phase string) {
	k.t.Helper()
	k.op.Kill()
	k.kills++
	started := time.Now()
	op, err := cluster.StartOperator(k.name, true, k.args...)
	if err != nil {
		cluster.DumpLogs(k.t.Output(), k.name+".log")
		k.t.Fatalf("restart after kill %d (%s): %v", k.kills, phase, err)
	}
	k.op = op
	k.t.Logf("kill %d during %s; ready again in %s", k.kills, phase, time.Since(started).Round(10*time.Millisecond))
}

// The manager killed with SIGKILL at random moments while it creates, updates and deletes
// tenants (half kept under Retain, half erased under Delete): afterwards everything converges as
// if nothing had happened.
func TestManagerKilled(t *testing.T) {
	rng := requireCluster(t)
	n := envInt(t, "FAULTS_TENANTS", 50)
	kills := envInt(t, "FAULTS_KILLS", 20)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	k := &killer{t: t, rng: rng, name: "operator-killed", op: startOperator(t, "operator-killed-first")}
	ref := referenceShape(ctx, t, "kill-ref")
	var names []string
	policy := map[string]v1alpha1.DeletionPolicy{}
	for i := range n {
		name := fmt.Sprintf("kill-%03d", i)
		names = append(names, name)
		policy[name] = v1alpha1.DeletionPolicyRetain
		if i%2 == 1 {
			policy[name] = v1alpha1.DeletionPolicyDelete
		}
	}
	pw := newPasswordWatch()
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := pw.every(watchCtx, 2*time.Second, func() []string { return names })

	began := time.Now()
	// Creation: every tenant applied at once, the kills during the operator's work on them.
	for _, name := range names {
		if err := create(ctx, newTenant(name, policy[name])); err != nil {
			t.Fatal(err)
		}
	}
	perPhase := max(kills/3, 1)
	k.killSoon(perPhase, "creation")

	// Update: every tenant gets an editor (new generation, one more subject in a binding).
	for _, name := range names {
		err := update(ctx, name, withEditor)
		if err != nil {
			t.Fatal(err)
		}
	}
	k.killSoon(perPhase, "update")

	// Deletion of a third, drawn at random, with what Retain must keep noted first.
	exp := expectation{shape: ref, retained: map[string]kept{}, passwords: pw}
	for _, i := range rng.Perm(n) {
		name := names[i]
		if len(exp.retained)+len(exp.erased) >= n/3 {
			exp.live = append(exp.live, name)
			continue
		}
		if policy[name] == v1alpha1.DeletionPolicyRetain {
			// What exists now must be kept; what does not yet need not be.
			state, err := keptState(ctx, name)
			if err != nil {
				t.Logf("tenant %s deleted before its namespace, volume and password all existed (%v): checked for what exists", name, err)
			}
			exp.retained[name] = state
		} else {
			exp.erased = append(exp.erased, name)
		}
		if err := remove(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	k.killSoon(kills-2*perPhase, "deletion")
	stopWatch()
	if err := <-watched; err != nil {
		t.Error(err)
	}
	recovery := converge(ctx, t, exp, 10*time.Minute)
	record("manager SIGKILLed %d times during creation, update and deletion of %d tenants (%d kept, %d erased): converged %s after the last restart (%s in all)",
		k.kills, n, len(exp.retained), len(exp.erased), recovery.Round(100*time.Millisecond), time.Since(began).Round(time.Second))
	t.Cleanup(func() { _ = k.op.Stop() })
	cleanup(ctx, t, append(exp.live, "kill-ref"))
}

// cleanup deletes the case's remaining tenants, so that the next case starts from a quiet
// cluster, and checks that deletion completes.
func cleanup(ctx context.Context, t *testing.T, names []string) {
	t.Helper()
	for _, name := range names {
		if err := remove(ctx, name); err != nil {
			t.Error(err)
		}
	}
	converge(ctx, t, expectation{gone: names}, 5*time.Minute)
}
