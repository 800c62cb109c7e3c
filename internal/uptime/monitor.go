package uptime

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	tenancyv1alpha1 "github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/probes"
)

// Defaults of MonitorOptions, and so of a tenant that sets no spec.monitoring.interval. Together
// with Prometheus scraping and evaluating every 30 s they make the TenantDown alert fire within
// DetectionTime(DefaultInterval) = 2×15 s + 10 s + 60 s = 100 s of an outage (docs/promises.md).
const (
	// DefaultInterval between two probes of a tenant's URL, and of its database.
	DefaultInterval = 15 * time.Second
	// DefaultFailureThreshold is how many probes in a row must fail before a tenant is down:
	// one lost probe between successes is noise, not an outage.
	DefaultFailureThreshold = 2
	// DefaultRefreshInterval is how often the uptime figures in a tenant's status may change.
	DefaultRefreshInterval = 10 * time.Minute
	// DefaultMetricsInterval is how often a tenant's uptime ratio series are recomputed.
	DefaultMetricsInterval = time.Minute
	// DefaultSaveInterval is how often the histories are saved, so a manager that is killed loses
	// at most this much of them (a gap, which counts neither up nor down).
	DefaultSaveInterval = 10 * time.Minute
	// PrometheusDelay is the longest time from a change of tenantops_tenant_up to an alert on it
	// firing, with the shipped settings: a 30 s scrape interval, a 30 s rule evaluation interval
	// and the TenantDown rule's `for: 0s`.
	PrometheusDelay = 60 * time.Second
)

// DetectionTime is the worst case from a tenant going down to the TenantDown alert firing when it
// is probed every interval: the probe just before the outage succeeded, so the first failing one
// starts up to one interval later and the threshold's last one (threshold-1) intervals after it,
// which then takes up to the probe timeout; Prometheus adds PrometheusDelay.
func DetectionTime(interval time.Duration) time.Duration {
	return DefaultFailureThreshold*interval + probes.DefaultTimeout + PrometheusDelay
}

// State is whether a tenant answers.
type State int

const (
	// Unknown: not probed enough yet to say.
	Unknown State = iota
	// Up: every target answered its last probe.
	Up
	// Down: a target failed DefaultFailureThreshold probes in a row.
	Down
)

// Targets are what to probe of one tenant.
type Targets struct {
	URL       string
	Interval  time.Duration
	Objective Objective
	// Database is probed once it is ready; nil before. DatabaseKey changes when its
	// credentials or certificate do, so the probe is rebuilt.
	Database    *probes.DatabaseTarget
	DatabaseKey string
}

// Report is what the Monitor says of a tenant. It changes only when the tenant goes up or down,
// or when its published figures are refreshed, so a pass that reads it twice writes nothing.
type Report struct {
	State State
	// Since is when the tenant went down (the first failed probe of the outage) or came back.
	Since time.Time
	// LastOutage is how long the tenant was down before it came back; zero before any outage.
	LastOutage time.Duration
	// Reason and Message are those of the probe that found the tenant down.
	Reason, Message string
	// Figures are the uptime figures as last published; nil before the first refresh, which for
	// a tenant whose history an earlier process saved waits for the tenant's slot.
	Figures *Figures
}

// Figures are the uptime figures a tenant's status shows, at the precision it shows them.
type Figures struct {
	Ratio24h, Ratio7d, Ratio30d, ErrorBudgetRemaining string
	// Objective is UptimeObjectiveMet, without observedGeneration.
	Objective metav1.Condition
}

// MonitorOptions configure a Monitor.
type MonitorOptions struct {
	HTTP     *probes.HTTPProber
	Database *probes.PostgresProber
	Clock    clock.WithTicker
	Metrics  *metrics.Metrics
	// Notify is called with a tenant's name when its Report changed.
	Notify func(tenant string)
	// Store keeps the histories across restarts; nil keeps them in memory only.
	Store HistoryStore
	// Intervals; the defaults above when zero.
	RefreshInterval, MetricsInterval, SaveInterval time.Duration
}

// HistoryStore keeps the tenants' histories across manager restarts.
type HistoryStore interface {
	// Load returns every saved history by tenant name.
	Load(ctx context.Context) (map[string][]byte, error)
	// Save replaces what is saved with histories, writing only what changed.
	Save(ctx context.Context, histories map[string][]byte) error
}

// Monitor probes every tracked tenant's URL and database on its interval, keeps each tenant's
// uptime history, and tells (Notify) when a tenant's Report changed: when it goes down or up, and
// when its figures, refreshed at most once per RefreshInterval at a time of its own, read
// differently. Probe counts and latencies go to metrics only.
//
// It runs on the leader: Start loads the saved histories, then probes, refreshes and saves until
// its context ends, and saves once more.
type Monitor struct {
	opts      MonitorOptions
	scheduler *probes.Scheduler

	mu      sync.Mutex
	tenants map[string]*monitored
	// loaded is closed once the saved histories are in.
	loaded chan struct{}
}

// monitored is what the Monitor knows of one tenant.
type monitored struct {
	targets Targets
	// tracked is false for a history loaded from the store whose tenant no pass has asked for
	// yet; it is kept (and saved) until it ages out.
	tracked bool
	// httpKey and dbKey are what is scheduled, to tell when targets change.
	httpKey, dbKey string
	history        History
	// nextMetrics and nextPublish are when the ratio series and the published figures are next
	// recomputed.
	nextMetrics, nextPublish time.Time
	// resumed is true for a history an earlier process saved: that process published the
	// tenant's figures at the tenant's slots, so this one publishes its first at a slot too,
	// not at once, or a restart would add a change between two slots.
	resumed bool
	http    targetState
	db      targetState
	report  Report
}

// targetState is the run of results of one probe target.
type targetState struct {
	probed bool
	last   probes.Result
	// failures in a row, and when the first of them was.
	failures     int
	failingSince time.Time
}

// NewMonitor returns a Monitor; Start runs it.
func NewMonitor(opts MonitorOptions) *Monitor {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.HTTP == nil {
		opts.HTTP = probes.NewHTTPProber(probes.HTTPOptions{Clock: opts.Clock})
	}
	if opts.Database == nil {
		opts.Database = probes.NewPostgresProber(probes.PostgresOptions{Clock: opts.Clock})
	}
	if opts.Notify == nil {
		opts.Notify = func(string) {}
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.MetricsInterval <= 0 {
		opts.MetricsInterval = DefaultMetricsInterval
	}
	if opts.SaveInterval <= 0 {
		opts.SaveInterval = DefaultSaveInterval
	}
	m := &Monitor{opts: opts, tenants: map[string]*monitored{}, loaded: make(chan struct{})}
	m.scheduler = probes.NewScheduler(probes.SchedulerOptions{Clock: opts.Clock}, m.deliver)
	return m
}

const (
	httpProbe     = "http"
	databaseProbe = "database"
)

// Track probes the tenant as targets say, from now on; calling it again with the same targets
// changes nothing.
func (m *Monitor) Track(name string, t Targets) error {
	if t.Interval <= 0 {
		t.Interval = DefaultInterval
	}
	httpKey, dbKey := t.URL+"@"+t.Interval.String(), ""
	if t.Database != nil {
		dbKey = t.DatabaseKey + "@" + t.Interval.String()
	}
	m.mu.Lock()
	mt := m.tenant(name)
	mt.targets, mt.tracked = t, true
	setHTTP, setDB := mt.httpKey != httpKey, mt.dbKey != dbKey
	mt.httpKey, mt.dbKey = httpKey, dbKey
	if setDB && t.Database == nil {
		mt.db = targetState{}
	}
	m.mu.Unlock()
	if setHTTP {
		url := t.URL
		if err := m.scheduler.Set(probes.Target{Key: httpProbe + "/" + name, Interval: t.Interval,
			Probe: func(ctx context.Context) probes.Result { return m.opts.HTTP.Probe(ctx, url) }}); err != nil {
			return fmt.Errorf("schedule probes of %s: %w", url, err)
		}
	}
	switch {
	case !setDB:
	case t.Database == nil:
		m.scheduler.Remove(databaseProbe + "/" + name)
	default:
		db := *t.Database
		if err := m.scheduler.Set(probes.Target{Key: databaseProbe + "/" + name, Interval: t.Interval,
			Probe: func(ctx context.Context) probes.Result { return m.opts.Database.Probe(ctx, db) }}); err != nil {
			return fmt.Errorf("schedule database probes: %w", err)
		}
	}
	return nil
}

// Forget stops probing a tenant and drops its history (the tenant was deleted, or has nothing to
// probe any more).
func (m *Monitor) Forget(name string) {
	m.scheduler.Remove(httpProbe + "/" + name)
	m.scheduler.Remove(databaseProbe + "/" + name)
	// The series go under the lock deliver takes: a probe that was running when the tenant was
	// forgotten must not bring them back.
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tenants, name)
	if m.opts.Metrics != nil {
		m.opts.Metrics.DeleteUptime(name)
	}
}

// Report is what is known of the tenant now.
func (m *Monitor) Report(name string) Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mt := m.tenants[name]; mt != nil {
		return mt.report
	}
	return Report{}
}

func (m *Monitor) tenant(name string) *monitored {
	mt := m.tenants[name]
	if mt == nil {
		mt = &monitored{}
		m.tenants[name] = mt
	}
	return mt
}

// deliver records a probe's result; keys are "http/<tenant>" and "database/<tenant>".
func (m *Monitor) deliver(key string, r probes.Result) {
	kind, name, _ := strings.Cut(key, "/")
	m.mu.Lock()
	mt := m.tenants[name]
	if mt == nil || !mt.tracked {
		// Forgotten while its probe ran: its series are gone and stay gone.
		m.mu.Unlock()
		return
	}
	if m.opts.Metrics != nil {
		m.opts.Metrics.ObserveProbe(name, kind, r.Latency)
		if kind == httpProbe && !r.CertificateNotAfter.IsZero() {
			m.opts.Metrics.SetCertificateExpiry(name, r.CertificateNotAfter)
		}
	}
	target := &mt.db
	if kind == httpProbe {
		target = &mt.http
		mt.history.Record(r.Time, r.Success)
	}
	target.record(r)
	changed := mt.judge()
	if changed && m.opts.Metrics != nil {
		m.opts.Metrics.SetUp(name, mt.report.State == Up)
	}
	m.mu.Unlock()
	if changed {
		m.opts.Notify(name)
	}
}

func (s *targetState) record(r probes.Result) {
	s.probed, s.last = true, r
	if r.Success {
		s.failures = 0
		return
	}
	if s.failures == 0 {
		s.failingSince = r.Time
	}
	s.failures++
}

// judge decides the tenant's state from its targets' runs and reports whether it changed. Called
// with the Monitor's lock held.
func (mt *monitored) judge() bool {
	r := &mt.report
	for _, s := range []*targetState{&mt.http, &mt.db} {
		if s.failures >= DefaultFailureThreshold {
			if r.State == Down {
				return false
			}
			r.State, r.Since, r.Reason, r.Message = Down, s.failingSince, s.last.Reason, s.last.Message
			if s == &mt.db {
				r.Message = "database: " + r.Message
			}
			return true
		}
	}
	allUp := mt.http.probed && mt.http.last.Success && (!mt.db.probed || mt.db.last.Success)
	if !allUp || r.State == Up {
		return false
	}
	if r.State == Down {
		r.LastOutage = mt.http.last.Time.Sub(r.Since)
	}
	r.State, r.Since, r.Reason, r.Message = Up, mt.http.last.Time, "", ""
	return true
}

// NeedLeaderElection is true: one replica probes.
func (m *Monitor) NeedLeaderElection() bool { return true }

// Start loads the saved histories, then probes, refreshes figures and saves histories until ctx
// ends; then it saves once more.
func (m *Monitor) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("uptime")
	m.load(ctx)
	close(m.loaded)
	go func() { _ = m.scheduler.Start(ctx) }()
	refresh := m.opts.Clock.NewTicker(time.Second)
	defer refresh.Stop()
	save := m.opts.Clock.NewTicker(m.opts.SaveInterval)
	defer save.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := m.save(final); err != nil {
				log.Error(err, "Save uptime histories at shutdown")
			}
			cancel()
			return nil
		case <-refresh.C():
			m.refresh(m.opts.Clock.Now())
		case <-save.C():
			if err := m.save(ctx); err != nil {
				log.Error(err, "Save uptime histories")
			}
		}
	}
}

// load restores the saved histories; a tenant tracked meanwhile keeps its targets.
func (m *Monitor) load(ctx context.Context) {
	if m.opts.Store == nil {
		return
	}
	saved, err := m.opts.Store.Load(ctx)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Load uptime histories; starting new ones")
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, data := range saved {
		var h History
		if err := h.UnmarshalBinary(data); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Uptime history unreadable; starting a new one", "tenant", name)
			continue
		}
		// No probe has been recorded yet: the scheduler starts after this.
		mt := m.tenant(name)
		mt.history, mt.resumed = h, true
	}
}

// save hands every history that holds probes to the store. Histories whose newest probe is older
// than Retention (a tenant deleted while the manager was down) are dropped.
func (m *Monitor) save(ctx context.Context) error {
	if m.opts.Store == nil {
		return nil
	}
	now := m.opts.Clock.Now()
	histories := map[string][]byte{}
	m.mu.Lock()
	for name, mt := range m.tenants {
		if mt.history.Counts(Retention, now).Total == 0 {
			if !mt.tracked {
				delete(m.tenants, name)
			}
			continue
		}
		data, err := mt.history.MarshalBinary()
		if err != nil {
			m.mu.Unlock()
			return fmt.Errorf("encode uptime history of %s: %w", name, err)
		}
		histories[name] = data
	}
	m.mu.Unlock()
	return m.opts.Store.Save(ctx, histories)
}

// refresh recomputes, for each tenant whose turn it is, the ratio series every MetricsInterval
// and the published figures every RefreshInterval. Each tenant's turns are at an offset of its
// own within the interval, so a thousand tenants are spread over it, never computed (nor
// written) at once; a turn missed because the manager was busy is taken at the next tick.
func (m *Monitor) refresh(now time.Time) {
	var changed []string
	m.mu.Lock()
	for name, mt := range m.tenants {
		if !mt.tracked || !mt.http.probed {
			continue
		}
		if mt.resumed && mt.nextPublish.IsZero() {
			mt.nextPublish = NextSlot(name, m.opts.RefreshInterval, now)
		}
		metricsDue := !now.Before(mt.nextMetrics)
		publishDue := (mt.report.Figures == nil && !mt.resumed) || !now.Before(mt.nextPublish)
		if !metricsDue && !publishDue {
			continue
		}
		sum := Summarize(&mt.history, mt.targets.Objective, now)
		if metricsDue {
			mt.nextMetrics = NextSlot(name, m.opts.MetricsInterval, now)
			if m.opts.Metrics != nil {
				m.opts.Metrics.SetRatios(name, metrics.Ratios{Day: sum.Day, Week: sum.Week, Month: sum.Month,
					Objective: sum.Objective.Ratio(), BudgetRemaining: sum.Evaluation.BudgetRemaining, Probed: sum.Evaluation.Total > 0})
			}
		}
		if publishDue {
			mt.nextPublish = nextPublish(name, m.opts.RefreshInterval, now)
			f := sum.Figures()
			if old := mt.report.Figures; old == nil || *old != f {
				mt.report.Figures = &f
				changed = append(changed, name)
			}
		}
	}
	m.mu.Unlock()
	for _, name := range changed {
		m.opts.Notify(name)
	}
}

// nextPublish is when figures published now may next change: the tenant's slot a whole interval
// on, less a tenth for a late tick. So the first figures, published at once whatever the slot,
// are not followed by others seconds later, and figures change at most once an interval.
func nextPublish(name string, interval time.Duration, now time.Time) time.Time {
	return NextSlot(name, interval, now.Add(interval-interval/10))
}

// NextSlot is the first time after now at name's own offset into interval: a hash of the name
// picks the offset, in whole seconds, so each tenant has its own. A tenant's figures are
// published at its slots of RefreshInterval; the benchmark tells those writes from others by it.
func NextSlot(name string, interval time.Duration, now time.Time) time.Time {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	seconds := max(int64(interval/time.Second), 1)
	offset := time.Duration(h.Sum64()%uint64(seconds)) * time.Second
	next := time.Unix(now.Unix()/seconds*seconds, 0).Add(offset)
	for !next.After(now) {
		next = next.Add(interval)
	}
	return next
}

// Figures are what the summary shows in status.
func (s Summary) Figures() Figures {
	f := Figures{Ratio24h: FormatRatio(s.Day), Ratio7d: FormatRatio(s.Week), Ratio30d: FormatRatio(s.Month), Objective: s.ObjectiveCondition()}
	if s.Evaluation.Total > 0 {
		f.ErrorBudgetRemaining = FormatBudget(s.Evaluation.BudgetRemaining)
	}
	return f
}

// ApplyTo writes the figures into a tenant's uptime status.
func (f Figures) ApplyTo(st *tenancyv1alpha1.UptimeStatus) {
	st.Ratio24h, st.Ratio7d, st.Ratio30d, st.ErrorBudgetRemaining = f.Ratio24h, f.Ratio7d, f.Ratio30d, f.ErrorBudgetRemaining
}
