package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// The kube-apiserver, then etcd, killed (SIGKILL) and started again a few seconds later while the
// operator converges tenants: its watches break and resume, and everything converges.
func TestControlPlaneRestarted(t *testing.T) {
	rng := requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	startOperator(t, "operator-control-plane")
	ref := referenceShape(ctx, t, "cp-ref")
	live := []string{"cp-ref"}
	pw := newPasswordWatch()
	for round, component := range []string{"kube-apiserver", "etcd"} {
		for i := range 10 {
			tenant := newTenant(fmt.Sprintf("cp-%d-%02d", round, i), v1alpha1.DeletionPolicyRetain)
			withEditor(tenant)
			if err := create(ctx, tenant); err != nil {
				t.Fatal(err)
			}
			live = append(live, tenant.Name)
		}
		away := restartComponent(t, rng, component)
		// As the kubelet restarts static pods: a component that exits because its API server or
		// etcd went away (kube-controller-manager loses its lease) is started again.
		superviseCtx, stopSupervising := context.WithCancel(ctx)
		restarted := supervise(superviseCtx, t)
		recovery := converge(ctx, t, expectation{live: live, shape: ref, passwords: pw}, 5*time.Minute)
		stopSupervising()
		also := ""
		if others := <-restarted; len(others) > 0 {
			also = fmt.Sprintf(" (%s exited meanwhile and was started again)", strings.Join(others, ", "))
		}
		record("%s killed with 10 new tenants converging, started again %s later: all %d converged %s after it was back%s",
			component, away.Round(100*time.Millisecond), len(live), recovery.Round(100*time.Millisecond), also)
	}
	cleanup(ctx, t, live)
}

// restartComponent kills a control plane component a random 0.2 to 2 s from now, starts it again
// 2 to 6 s later, and returns how long it was away.
func restartComponent(t *testing.T, rng *rand.Rand, component string) time.Duration {
	t.Helper()
	time.Sleep(time.Duration(200+rng.IntN(1800)) * time.Millisecond)
	if err := cluster.KillComponent(component); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(time.Duration(2000+rng.IntN(4000)) * time.Millisecond)
	if err := cluster.StartComponents(); err != nil {
		t.Fatal(err)
	}
	return time.Since(killed)
}

// supervise starts again, every 2 s until ctx ends, any control plane component that has exited,
// and then sends the ones it started.
func supervise(ctx context.Context, t *testing.T) <-chan []string {
	done := make(chan []string, 1)
	go func() {
		var restarted []string
		defer func() { done <- restarted }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			dead, err := cluster.DeadComponents()
			if err != nil || len(dead) == 0 {
				continue
			}
			t.Logf("%s exited; starting it again", strings.Join(dead, ", "))
			if err := cluster.StartComponents(); err != nil {
				t.Logf("start components: %v", err)
				continue
			}
			restarted = append(restarted, dead...)
		}
	}()
	return done
}
