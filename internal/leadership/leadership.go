// Package leadership fences the manager's writes with its lease. Leader election alone does not
// stop a paused leader (a long GC pause, a frozen VM, SIGSTOP) from writing when it wakes: its
// workers run on before its renewal notices that another replica holds the lease. A Fence
// remembers when this replica last renewed the lease (the moment the renewal was sent, before
// the API server stamped it) and refuses every write once the lease could have expired since,
// so a stale leader's writes fail instead of racing the new leader's.
package leadership

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrNotLeader is the error of a write refused because the lease is not known to be held.
var ErrNotLeader = errors.New("leadership not confirmed")

// Fence tracks the lease this replica holds.
type Fence struct {
	// valid is how long after a renewal was sent the lease is surely still ours: the lease
	// duration less a margin for the clocks of two machines running at different rates.
	valid time.Duration
	now   func() time.Time

	mu        sync.Mutex
	renewedAt time.Time // monotonic; zero when not held
}

// New returns a Fence for a lease of leaseDuration and the lock to give leader election
// (controller-runtime's Options.LeaderElectionResourceLockInterface), which tells the Fence of
// every renewal.
func New(lock resourcelock.Interface, leaseDuration time.Duration) (*Fence, resourcelock.Interface) {
	f := &Fence{valid: leaseDuration - leaseDuration/10, now: time.Now}
	return f, &fencedLock{Interface: lock, fence: f}
}

// Check is nil while the lease is surely held.
func (f *Fence) Check() error {
	f.mu.Lock()
	renewed := f.renewedAt
	f.mu.Unlock()
	if renewed.IsZero() {
		return fmt.Errorf("%w: this replica does not hold the lease", ErrNotLeader)
	}
	if age := f.now().Sub(renewed); age >= f.valid {
		return fmt.Errorf("%w: the lease was last renewed %s ago, and another replica may hold it after %s", ErrNotLeader, age.Round(time.Millisecond), f.valid)
	}
	return nil
}

func (f *Fence) renewed(sent time.Time) {
	f.mu.Lock()
	f.renewedAt = sent
	f.mu.Unlock()
}

func (f *Fence) lost() {
	f.mu.Lock()
	f.renewedAt = time.Time{}
	f.mu.Unlock()
}

// fencedLock is the lease lock, telling the Fence of each write of the lease that made this
// replica its holder, and of each that gave it up.
type fencedLock struct {
	resourcelock.Interface
	fence *Fence
}

func (l *fencedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	sent := l.fence.now()
	err := l.Interface.Create(ctx, ler)
	l.note(ler, sent, err)
	return err
}

func (l *fencedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	sent := l.fence.now()
	err := l.Interface.Update(ctx, ler)
	l.note(ler, sent, err)
	return err
}

func (l *fencedLock) note(ler resourcelock.LeaderElectionRecord, sent time.Time, err error) {
	switch {
	case err != nil:
		// A failed renewal changes nothing: the last one still bounds the lease.
	case ler.HolderIdentity == l.Identity():
		l.fence.renewed(sent)
	default:
		// Released on shutdown.
		l.fence.lost()
	}
}

// Client wraps c so that every write is refused unless the lease is surely held. Reads pass.
func (f *Fence) Client(c client.Client) client.Client { return &fencedClient{Client: c, fence: f} }

type fencedClient struct {
	client.Client
	fence *Fence
}

func (c *fencedClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := c.fence.Check(); err != nil {
		return err
	}
	return c.Client.Create(ctx, obj, opts...)
}

func (c *fencedClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.fence.Check(); err != nil {
		return err
	}
	return c.Client.Update(ctx, obj, opts...)
}

func (c *fencedClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if err := c.fence.Check(); err != nil {
		return err
	}
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *fencedClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	if err := c.fence.Check(); err != nil {
		return err
	}
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *fencedClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := c.fence.Check(); err != nil {
		return err
	}
	return c.Client.Delete(ctx, obj, opts...)
}

func (c *fencedClient) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	if err := c.fence.Check(); err != nil {
		return err
	}
	return c.Client.DeleteAllOf(ctx, obj, opts...)
}

func (c *fencedClient) Status() client.SubResourceWriter {
	return &fencedSubResource{SubResourceClient: c.Client.SubResource("status"), fence: c.fence}
}

func (c *fencedClient) SubResource(name string) client.SubResourceClient {
	return &fencedSubResource{SubResourceClient: c.Client.SubResource(name), fence: c.fence}
}

type fencedSubResource struct {
	client.SubResourceClient
	fence *Fence
}

func (s *fencedSubResource) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	if err := s.fence.Check(); err != nil {
		return err
	}
	return s.SubResourceClient.Create(ctx, obj, sub, opts...)
}

func (s *fencedSubResource) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if err := s.fence.Check(); err != nil {
		return err
	}
	return s.SubResourceClient.Update(ctx, obj, opts...)
}

func (s *fencedSubResource) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if err := s.fence.Check(); err != nil {
		return err
	}
	return s.SubResourceClient.Patch(ctx, obj, patch, opts...)
}

func (s *fencedSubResource) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	if err := s.fence.Check(); err != nil {
		return err
	}
	return s.SubResourceClient.Apply(ctx, obj, opts...)
}

// NewLease is a Fence over the Lease namespace/name that identity holds while leading, with the
// lock that leader election uses: what controller-runtime builds for its default lock, plus the
// fence.
func NewLease(config *rest.Config, namespace, name string, leaseDuration time.Duration) (*Fence, resourcelock.Interface, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, nil, fmt.Errorf("leader election identity: %w", err)
	}
	coordination, err := coordinationv1.NewForConfig(rest.AddUserAgent(rest.CopyConfig(config), "leader-election"))
	if err != nil {
		return nil, nil, fmt.Errorf("leader election client: %w", err)
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, namespace, name, nil, coordination,
		resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID())})
	if err != nil {
		return nil, nil, fmt.Errorf("leader election lock: %w", err)
	}
	fence, fenced := New(lock, leaseDuration)
	return fence, fenced, nil
}

// NewClient is controller-runtime's client, fenced: for Options.NewClient.
func (f *Fence) NewClient(config *rest.Config, options client.Options) (client.Client, error) {
	c, err := client.New(config, options)
	if err != nil {
		return nil, err
	}
	return f.Client(c), nil
}
