package leadership

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// memoryLock is a lease in memory.
type memoryLock struct {
	identity string
	record   resourcelock.LeaderElectionRecord
	fail     error
}

func (l *memoryLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r := l.record
	return &r, nil, nil
}
func (l *memoryLock) Create(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	return l.Update(context.Background(), r)
}
func (l *memoryLock) Update(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	if l.fail != nil {
		return l.fail
	}
	l.record = r
	return nil
}
func (l *memoryLock) RecordEvent(string) {}
func (l *memoryLock) Identity() string   { return l.identity }
func (l *memoryLock) Describe() string   { return "memory" }

// A write is let through only while the last renewal sent is younger than the lease less its
// margin; a failed renewal does not extend it, a release ends it.
func TestFenceRefusesWritesOnceTheLeaseMayHaveExpired(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	inner := &memoryLock{identity: "me"}
	fence, lock := New(inner, 30*time.Second)
	fence.now = func() time.Time { return now }
	c := fence.Client(fake.NewClientBuilder().Build())
	write := func(name string) error {
		return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}})
	}
	writeStatus := func() error {
		return c.Status().Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}})
	}

	if err := write("before"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("before the lease is held: %v, want ErrNotLeader", err)
	}
	if err := lock.Create(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	if err := write("a"); err != nil {
		t.Fatalf("just after acquiring: %v", err)
	}
	now = now.Add(26 * time.Second)
	if err := write("b"); err != nil {
		t.Fatalf("26s after the renewal of a 30s lease (27s valid): %v", err)
	}
	// A renewal that failed (the API server away) extends nothing.
	inner.fail = errors.New("connection refused")
	_ = lock.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"})
	now = now.Add(2 * time.Second)
	for name, w := range map[string]func() error{"create": func() error { return write("c") }, "status": writeStatus,
		"delete": func() error {
			return c.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}})
		},
		"patch": func() error {
			return c.Patch(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}}, client.RawPatch("application/merge-patch+json", []byte(`{}`)))
		}} {
		if err := w(); !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s 28s after the last renewal: %v, want ErrNotLeader", name, err)
		}
	}
	// Reads pass.
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "a"}, &corev1.ConfigMap{}); err != nil {
		t.Errorf("read refused: %v", err)
	}
	inner.fail = nil
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	if err := write("d"); err != nil {
		t.Fatalf("after a renewal: %v", err)
	}
	// Released on shutdown: the record names nobody.
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: ""}); err != nil {
		t.Fatal(err)
	}
	if err := write("e"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("after release: %v, want ErrNotLeader", err)
	}
}
