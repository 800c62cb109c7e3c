package probes

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// The manager runs the Scheduler: mgr.Add(scheduler).
var _ manager.Runnable = (*Scheduler)(nil)

// start is where the fake clock begins: not on any interval's boundary.
var start = time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)

func TestNextRun(t *testing.T) {
	epochAligned := time.Unix(1_772_000_010, 0) // a multiple of 30 s
	tests := []struct {
		name     string
		now      time.Time
		interval time.Duration
		offset   time.Duration
		want     time.Time
	}{
		{name: "on a boundary, the offset ahead", now: epochAligned, interval: 30 * time.Second, offset: 7 * time.Second, want: epochAligned.Add(7 * time.Second)},
		{name: "just before the turn", now: epochAligned.Add(7*time.Second - time.Nanosecond), interval: 30 * time.Second, offset: 7 * time.Second, want: epochAligned.Add(7 * time.Second)},
		{name: "at the turn, the next one", now: epochAligned.Add(7 * time.Second), interval: 30 * time.Second, offset: 7 * time.Second, want: epochAligned.Add(37 * time.Second)},
		{name: "zero offset", now: epochAligned.Add(time.Second), interval: 30 * time.Second, offset: 0, want: epochAligned.Add(30 * time.Second)},
		{name: "an hour", now: time.Unix(7200+1800, 0), interval: time.Hour, offset: 10 * time.Minute, want: time.Unix(3*3600+600, 0)},
		{name: "before 1970", now: time.Unix(-45, 0), interval: 30 * time.Second, offset: 10 * time.Second, want: time.Unix(-20, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextRun(tt.now, tt.interval, tt.offset); !got.Equal(tt.want) {
				t.Fatalf("nextRun(%v, %v, %v) = %v, want %v", tt.now.UTC(), tt.interval, tt.offset, got.UTC(), tt.want.UTC())
			}
		})
	}
}

// TestOffsetsSpread checks that hashing the keys of a thousand tenants spreads their probes over
// the interval in whole seconds: no second of a 30 s interval gets more than twice its share.
func TestOffsetsSpread(t *testing.T) {
	for _, interval := range []time.Duration{5 * time.Second, 30 * time.Second, time.Hour} {
		t.Run(interval.String(), func(t *testing.T) {
			const n = 1000
			slices := min(30, int(interval/offsetResolution))
			perSlice := make([]int, slices)
			for i := 0; i < n; i++ {
				off := offsetOf(fmt.Sprintf("tenant-%04d", i), interval)
				if off < 0 || off >= interval || off%offsetResolution != 0 {
					t.Fatalf("offset %v outside [0, %v) or not whole seconds", off, interval)
				}
				perSlice[int(off*time.Duration(slices)/interval)]++
			}
			lo, hi := n, 0
			for _, c := range perSlice {
				lo, hi = min(lo, c), max(hi, c)
			}
			t.Logf("probes per 1/%d of the interval: %d to %d (even: %d)", slices, lo, hi, n/slices)
			if hi > 2*n/slices || lo < n/slices/3 {
				t.Fatalf("uneven spread: %d to %d per slice, even is %d", lo, hi, n/slices)
			}
		})
	}
}

// harness runs a Scheduler on a fake clock and records what it delivers.
type harness struct {
	t     *testing.T
	clock *testingclock.FakeClock
	s     *Scheduler

	mu      sync.Mutex
	results map[string][]Result
}

func newHarness(t *testing.T, concurrency int) *harness {
	t.Helper()
	h := &harness{t: t, clock: testingclock.NewFakeClock(start), results: map[string][]Result{}}
	h.s = NewScheduler(SchedulerOptions{Clock: h.clock, Concurrency: concurrency}, func(key string, r Result) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.results[key] = append(h.results[key], r)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Start did not return after its context ended")
		}
	})
	return h
}

// up is a probe that succeeds, stamped with the fake clock.
func (h *harness) up(context.Context) Result { return Result{Time: h.clock.Now(), Success: true} }

func (h *harness) set(key string, interval time.Duration, probe func(context.Context) Result) {
	h.t.Helper()
	if err := h.s.Set(Target{Key: key, Interval: interval, Probe: probe}); err != nil {
		h.t.Fatal(err)
	}
}

// settle waits (in real time) until the scheduler has started everything due, every probe has
// returned and been delivered, and the scheduler waits on the clock again.
func (h *harness) settle() {
	h.t.Helper()
	h.waitFor("the scheduler to settle", func() bool {
		h.s.mu.Lock()
		empty := len(h.s.queue) == 0
		h.s.mu.Unlock()
		return h.s.running() == 0 && (empty || h.clock.HasWaiters())
	})
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// advance moves the fake clock by d in steps, settling after each.
func (h *harness) advance(d, step time.Duration) {
	h.t.Helper()
	h.settle()
	for moved := time.Duration(0); moved < d; moved += step {
		h.clock.Step(step)
		h.settle()
	}
}

func (h *harness) times(key string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ts []time.Time
	for _, r := range h.results[key] {
		ts = append(ts, r.Time)
	}
	return ts
}

func (h *harness) count(key string) int { return len(h.times(key)) }

func TestSchedulerProbesEachTargetOnItsInterval(t *testing.T) {
	h := newHarness(t, 0)
	intervals := map[string]time.Duration{"fast": 5 * time.Second, "default": 30 * time.Second, "slow": time.Minute}
	for key, interval := range intervals {
		h.set(key, interval, h.up)
	}
	h.advance(3*time.Minute, time.Second)
	for key, interval := range intervals {
		ts := h.times(key)
		if want := int(3 * time.Minute / interval); len(ts) != want {
			t.Errorf("%s: %d probes in 3 minutes, want %d", key, len(ts), want)
			continue
		}
		if first := ts[0].Sub(start); first <= 0 || first > interval {
			t.Errorf("%s: first probe %v after the start, want within one interval", key, first)
		}
		// Results carry their turn, on the target's grid, not the second the fake clock
		// stepped to.
		if off := time.Duration(ts[0].UnixNano() % int64(interval)); off != offsetOf(key, interval) {
			t.Errorf("%s: result at %v into its interval, want its offset %v", key, off, offsetOf(key, interval))
		}
		for i := 1; i < len(ts); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap != interval {
				t.Errorf("%s: probes %d and %d are %v apart, want %v", key, i-1, i, gap, interval)
			}
		}
	}
}

// TestSchedulerSpreadsAThousandTargets runs 1000 targets at 30 s for one interval: each is probed
// once, and no second sees more than twice the even share of 33.
func TestSchedulerSpreadsAThousandTargets(t *testing.T) {
	h := newHarness(t, 0)
	for i := 0; i < 1000; i++ {
		h.set(fmt.Sprintf("tenant-%04d", i), 30*time.Second, h.up)
	}
	h.settle()
	total, busiest := 0, 0
	for s := 0; s < 30; s++ {
		h.clock.Step(time.Second)
		h.settle()
		n := 0
		for i := 0; i < 1000; i++ {
			n += h.count(fmt.Sprintf("tenant-%04d", i))
		}
		busiest = max(busiest, n-total)
		total = n
	}
	t.Logf("busiest second: %d probes", busiest)
	for i := 0; i < 1000; i++ {
		if c := h.count(fmt.Sprintf("tenant-%04d", i)); c != 1 {
			t.Fatalf("tenant-%04d probed %d times in one interval, want 1", i, c)
		}
	}
	if busiest > 66 {
		t.Fatalf("%d probes in one second, want them spread (even is 33)", busiest)
	}
}

func TestSchedulerBoundsConcurrency(t *testing.T) {
	h := newHarness(t, 3)
	var now, most atomic.Int32
	slow := func(context.Context) Result {
		n := now.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		now.Add(-1)
		return Result{Time: h.clock.Now(), Success: true}
	}
	for i := 0; i < 10; i++ {
		h.set(fmt.Sprintf("t%d", i), 10*time.Second, slow)
	}
	h.advance(10*time.Second, 10*time.Second)
	for i := 0; i < 10; i++ {
		if c := h.count(fmt.Sprintf("t%d", i)); c != 1 {
			t.Fatalf("t%d probed %d times, want 1", i, c)
		}
	}
	if m := most.Load(); m != 3 {
		t.Fatalf("%d probes ran at once, want the limit of 3", m)
	}
}

func TestSchedulerSkipsATurnWhileAProbeRuns(t *testing.T) {
	h := newHarness(t, 0)
	release := make(chan struct{})
	var calls atomic.Int32
	h.set("stuck", 5*time.Second, func(context.Context) Result {
		if calls.Add(1) == 1 {
			<-release
		}
		return Result{Time: h.clock.Now()}
	})
	h.settle()
	// The first turn starts and hangs; the next two come while it runs.
	for i := 0; i < 15; i++ {
		h.clock.Step(time.Second)
		h.waitFor("the scheduler to wait again", h.clock.HasWaiters)
	}
	if c := calls.Load(); c != 1 {
		t.Fatalf("%d probes started while the first still ran, want none", c-1)
	}
	close(release)
	h.advance(10*time.Second, time.Second)
	if c := h.count("stuck"); c != 3 {
		t.Fatalf("%d results, want the hung one and two after it", c)
	}
}

func TestSchedulerSetAndRemove(t *testing.T) {
	h := newHarness(t, 0)
	h.set("a", 10*time.Second, h.up)
	h.advance(30*time.Second, time.Second)
	if c := h.count("a"); c != 3 {
		t.Fatalf("%d probes at 10 s in 30 s, want 3", c)
	}

	// A new interval takes effect at once.
	h.set("a", 20*time.Second, h.up)
	h.advance(60*time.Second, time.Second)
	ts := h.times("a")
	if len(ts) != 6 {
		t.Fatalf("%d probes, want 3 more at 20 s in 60 s", len(ts))
	}
	for i := 4; i < 6; i++ {
		if gap := ts[i].Sub(ts[i-1]); gap != 20*time.Second {
			t.Fatalf("probes %v apart after the change, want 20s", gap)
		}
	}

	// A new probe with the same interval keeps the target's place in the schedule.
	down := func(context.Context) Result { return Result{Time: h.clock.Now(), Reason: ReasonTimeout} }
	h.set("a", 20*time.Second, down)
	h.advance(40*time.Second, time.Second)
	h.mu.Lock()
	rs := h.results["a"]
	h.mu.Unlock()
	if len(rs) != 8 || rs[7].Success || rs[7].Time.Sub(rs[5].Time) != 40*time.Second {
		t.Fatalf("after replacing the probe: %d results, last %+v", len(rs), rs[len(rs)-1])
	}

	h.s.Remove("a")
	h.advance(60*time.Second, time.Second)
	if c := h.count("a"); c != 8 {
		t.Fatalf("%d probes after Remove, want none", c-8)
	}
	h.s.Remove("a") // removing what is not there is fine

	h.set("a", 20*time.Second, h.up)
	h.advance(60*time.Second, time.Second)
	if c := h.count("a"); c != 11 {
		t.Fatalf("%d probes after adding it back, want 3", c-8)
	}
}

func TestSchedulerDropsTheResultOfARemovedTarget(t *testing.T) {
	h := newHarness(t, 0)
	started, release := make(chan struct{}), make(chan struct{})
	h.set("leaving", 10*time.Second, func(context.Context) Result {
		close(started)
		<-release
		return Result{Time: h.clock.Now(), Success: true}
	})
	h.settle()
	h.clock.Step(10 * time.Second)
	<-started
	h.s.Remove("leaving")
	close(release)
	h.settle()
	if c := h.count("leaving"); c != 0 {
		t.Fatalf("%d results delivered for a removed target", c)
	}
}

func TestSchedulerStopsOnCancel(t *testing.T) {
	fake := testingclock.NewFakeClock(start)
	var delivered atomic.Int32
	s := NewScheduler(SchedulerOptions{Clock: fake}, func(string, Result) { delivered.Add(1) })
	started := make(chan struct{})
	if err := s.Set(Target{Key: "a", Interval: 5 * time.Second, Probe: func(ctx context.Context) Result {
		close(started)
		<-ctx.Done()
		return Result{Reason: ReasonTimeout}
	}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Start(ctx) }()
	for fired := false; !fired; {
		for !fake.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		fake.Step(time.Second)
		select {
		case <-started:
			fired = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
	if n := delivered.Load(); n != 0 {
		t.Fatalf("%d results of probes cut short by the shutdown were delivered", n)
	}
}

func TestSchedulerRejectsInvalidTargets(t *testing.T) {
	probe := func(context.Context) Result { return Result{} }
	tests := []struct {
		target  Target
		wantErr string
	}{
		{Target{Interval: time.Second, Probe: probe}, "empty key"},
		{Target{Key: "a", Probe: probe}, "interval must be positive"},
		{Target{Key: "a", Interval: -time.Second, Probe: probe}, "interval must be positive"},
		{Target{Key: "a", Interval: time.Second}, "no probe"},
	}
	s := NewScheduler(SchedulerOptions{}, func(string, Result) {})
	for _, tt := range tests {
		if err := s.Set(tt.target); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Set(%+v) = %v, want an error about %q", tt.target, err, tt.wantErr)
		}
	}
}

func TestOffsetOfAnIntervalUnderASecond(t *testing.T) {
	for _, key := range []string{"a", "b", "tenant-0001"} {
		if off := offsetOf(key, 500*time.Millisecond); off < 0 || off >= 500*time.Millisecond {
			t.Fatalf("offsetOf(%q, 500ms) = %v, want within the interval", key, off)
		}
	}
}
