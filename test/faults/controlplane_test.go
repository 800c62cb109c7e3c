package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
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
		recovery := converge(ctx, t, expectation{live: live, shape: ref, passwords: pw}, 5*time.Minute)
		record("%s killed with 10 new tenants converging, started again %s later: all %d converged %s after it was back",
			component, away.Round(100*time.Millisecond), len(live), recovery.Round(100*time.Millisecond))
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
