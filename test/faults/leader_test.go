package faults

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/test/localstack"
)

const (
	leaseName = "tenant-operator.tenancy.tenantops.io"
	// testLease is short so that handovers take seconds; the default is 30s.
	testLease = 8 * time.Second
)

// replica is one of several managers, acting as a user of its own so that the audit log tells
// their writes apart.
type replica struct {
	user string
	op   *localstack.Operator
}

func startReplica(t *testing.T, user string) *replica {
	t.Helper()
	kubeconfig, err := cluster.KubeconfigAs(user)
	if err != nil {
		t.Fatal(err)
	}
	return &replica{user: user, op: startOperator(t, user, "--kubeconfig", kubeconfig, "--leader-elect",
		"--leader-elect-lease-duration", testLease.String())}
}

// holder waits until the lease is held by one of the replicas and returns it, with the time it
// acquired the lease.
func holder(ctx context.Context, t *testing.T, replicas ...*replica) (*replica, time.Time) {
	t.Helper()
	for {
		lease := &coordinationv1.Lease{}
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: localstack.OperatorNamespace, Name: leaseName}, lease); err == nil &&
			lease.Spec.HolderIdentity != nil && lease.Spec.AcquireTime != nil {
			for _, r := range replicas {
				if r.holds(*lease.Spec.HolderIdentity) {
					return r, lease.Spec.AcquireTime.Time
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no replica of %d acquired the lease", len(replicas))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// holds tells whether identity is this replica's: the operator logs the identity it runs for the
// lease as.
func (r *replica) holds(identity string) bool {
	data, err := os.ReadFile(r.op.Log)
	return err == nil && strings.Contains(string(data), `"identity":"`+identity+`"`)
}

// Two managers with leader election: the leader killed while work is queued hands over, and a
// leader paused past its lease (a frozen VM, a long stop-the-world pause) writes nothing once it
// wakes: the lease fence refuses its writes until it exits.
func TestTwoManagers(t *testing.T) {
	rng := requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	a, b := startReplica(t, "replica-a"), startReplica(t, "replica-b")
	leader, _ := holder(ctx, t, a, b)
	standby := a
	if leader == a {
		standby = b
	}
	ref := referenceShape(ctx, t, "leader-ref")

	// The leader killed a random moment after 20 tenants were created.
	n := 20
	var names []string
	for i := range n {
		name := fmt.Sprintf("leader-%03d", i)
		names = append(names, name)
		tenant := newTenant(name, v1alpha1.DeletionPolicyRetain)
		withEditor(tenant)
		if err := create(ctx, tenant); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
	leader.op.Kill()
	killed := time.Now()
	if next, _ := holder(ctx, t, standby); next != standby {
		t.Fatal("the standby did not take over")
	}
	handover := time.Since(killed)
	recovery := converge(ctx, t, expectation{live: append([]string{"leader-ref"}, names...), shape: ref, passwords: newPasswordWatch()}, 5*time.Minute)
	record("leader SIGKILLed with 20 tenants queued: the standby led after %s (lease %s), all converged %s after the kill",
		handover.Round(100*time.Millisecond), testLease, (recovery + handover).Round(100*time.Millisecond))

	// The leader paused past its lease; a third replica takes over; work arrives; the old leader
	// wakes.
	paused := standby
	c := startReplica(t, "replica-c")
	if err := paused.op.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	next, acquired := holder(ctx, t, c)
	if next != c {
		t.Fatal("the new replica did not take over")
	}
	pw := newPasswordWatch()
	if err := pw.look(ctx, names); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		err := update(ctx, name, func(t *v1alpha1.Tenant) { t.Spec.DisplayName += " (changed)" })
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := n; i < n+5; i++ {
		name := fmt.Sprintf("leader-%03d", i)
		names = append(names, name)
		tenant := newTenant(name, v1alpha1.DeletionPolicyRetain)
		withEditor(tenant)
		if err := create(ctx, tenant); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	if err := paused.op.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	woke := time.Now()
	select {
	case <-paused.op.Exited():
	case <-time.After(2 * testLease):
		t.Fatalf("the paused leader still runs %s after waking", 2*testLease)
	}
	exited := time.Since(woke)
	recovery = converge(ctx, t, expectation{live: append([]string{"leader-ref"}, names...), shape: ref, passwords: pw}, 5*time.Minute)
	writes, refused := staleWrites(t, paused.user, acquired), refusedWrites(t, paused.op.Log)
	if len(writes) > 0 {
		t.Errorf("the paused leader %s wrote %d times after %s took the lease:\n%s", paused.user, len(writes), c.user, strings.Join(writes, "\n"))
	}
	record("leader paused (SIGSTOP) past its lease while a new leader took over and 25 tenants changed: woken, it exited in %s with %d writes after the handover (%d refused by its fence); converged %s later",
		exited.Round(100*time.Millisecond), len(writes), refused, recovery.Round(100*time.Millisecond))
	cleanup(ctx, t, append([]string{"leader-ref"}, names...))
}

// staleWrites lists the writes user made that the API server accepted after since (leases
// excepted: giving the lease up is allowed).
func staleWrites(t *testing.T, user string, since time.Time) []string {
	t.Helper()
	requests, accepted := auditedWrites(t, user, since, time.Now().Add(time.Hour))
	if requests == 0 {
		t.Fatalf("the audit log holds no write of %s: it cannot show what the paused leader did", user)
	}
	writes := make([]string, 0, len(accepted))
	for _, e := range accepted {
		writes = append(writes, fmt.Sprintf("%s %s %s/%s at %s", e.Verb, e.ObjectRef.Resource, e.ObjectRef.Namespace, e.ObjectRef.Name, e.RequestReceived.Format(time.RFC3339Nano)))
	}
	return writes
}

// refusedWrites counts the writes the operator's fence refused, from its log.
func refusedWrites(t *testing.T, log string) int {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "leadership not confirmed")
}
