// Package metrics defines the Prometheus metrics of tenant-operator. Names are a contract with the
// alert rules and dashboard in config/prometheus: change them together.
package metrics

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The series are held as plain values per tenant and turned into Prometheus metrics only while
// scraped, as kube-state-metrics does: client_golang's vectors kept label pairs, a child struct and
// a hash entry for every series, about 15 KB for a typical tenant, which at 10,000 tenants was a
// large part of the manager's 1 GiB.

var (
	backupLastSuccessDesc = prometheus.NewDesc("tenantops_backup_last_success_timestamp_seconds",
		"When the newest complete backup of a tenant's schedule finished, as found in storage.",
		[]string{"tenant", "schedule"}, nil)
	backupIntervalDesc = prometheus.NewDesc("tenantops_backup_expected_interval_seconds",
		"How old the newest backup of a schedule may be before it is stale (interval plus grace, or maxAge).",
		[]string{"tenant", "schedule"}, nil)
	backupLastVerifiedDesc = prometheus.NewDesc("tenantops_backup_last_verified_timestamp_seconds",
		"When a backup of the schedule last passed verification.",
		[]string{"tenant", "schedule"}, nil)
	backupSizeDesc = prometheus.NewDesc("tenantops_backup_size_bytes",
		"Stored size of the newest complete backup of the schedule.",
		[]string{"tenant", "schedule"}, nil)
	walLastArchivedDesc = prometheus.NewDesc("tenantops_wal_last_archived_timestamp_seconds",
		"When the newest WAL segment of a physical schedule's archive was stored.",
		[]string{"tenant", "schedule"}, nil)
	walReceiverReadyDesc = prometheus.NewDesc("tenantops_wal_receiver_ready",
		"1 while a physical schedule's WAL receiver keeps up (its Deployment is available), else 0.",
		[]string{"tenant", "schedule"}, nil)
	recoverableFromDesc = prometheus.NewDesc("tenantops_recoverable_earliest_timestamp_seconds",
		"The oldest moment a physical schedule's storage restores the tenant to.",
		[]string{"tenant", "schedule"}, nil)
	recoverableToDesc = prometheus.NewDesc("tenantops_recoverable_latest_timestamp_seconds",
		"The newest moment a physical schedule's storage restores the tenant to: the end of its archived WAL.",
		[]string{"tenant", "schedule"}, nil)
	tenantConditionDesc = prometheus.NewDesc("tenantops_tenant_condition",
		"1 for each condition of a tenant, labelled with its current status.",
		[]string{"tenant", "type", "status"}, nil)
	tenantUpDesc = prometheus.NewDesc("tenantops_tenant_up",
		"0 once the tenant's URL or database failed 2 probes in a row, 1 once every probe answers again.",
		[]string{"tenant"}, nil)
	probeDurationDesc = prometheus.NewDesc("tenantops_probe_duration_seconds",
		"How long a tenant's probes took, by probe (http or database).",
		[]string{"tenant", "probe"}, nil)
	uptimeRatioDesc = prometheus.NewDesc("tenantops_tenant_uptime_ratio",
		"Share of successful probes of the tenant's URL over the window (24h, 7d, 30d).",
		[]string{"tenant", "window"}, nil)
	objectiveRatioDesc = prometheus.NewDesc("tenantops_tenant_uptime_objective_ratio",
		"The tenant's uptime objective as a fraction (0.995 for 99.5 %).",
		[]string{"tenant"}, nil)
	budgetRemainingDesc = prometheus.NewDesc("tenantops_tenant_error_budget_remaining_ratio",
		"Share of the error budget left over the objective's 30-day window; negative when overspent.",
		[]string{"tenant"}, nil)
	certificateExpiryDesc = prometheus.NewDesc("tenantops_tenant_certificate_expiry_timestamp_seconds",
		"When the certificate the tenant's URL served at the last probe expires.",
		[]string{"tenant"}, nil)
)

// probeBuckets are the upper bounds of tenantops_probe_duration_seconds, in seconds.
var probeBuckets = [...]float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// windows are the uptime ratio windows in the order of tenantSeries.ratios.
var windows = [...]string{"24h", "7d", "30d"}

// Which of a tenant's single-valued series exist: bits of tenantSeries.has.
const (
	hasUp uint16 = 1 << iota
	hasObjective
	hasBudget
	hasCertificateExpiry
	hasRatio // and the next bits, one for each of windows
)

// The gauges of one backup schedule, indexes of scheduleSeries.values and of scheduleDescs.
const (
	backupInterval = iota
	backupLastSuccess
	backupSize
	backupLastVerified
	walReceiverReady
	walLastArchived
	recoverableFrom
	recoverableTo
	scheduleGauges
)

var scheduleDescs = [scheduleGauges]*prometheus.Desc{
	backupInterval:     backupIntervalDesc,
	backupLastSuccess:  backupLastSuccessDesc,
	backupSize:         backupSizeDesc,
	backupLastVerified: backupLastVerifiedDesc,
	walReceiverReady:   walReceiverReadyDesc,
	walLastArchived:    walLastArchivedDesc,
	recoverableFrom:    recoverableFromDesc,
	recoverableTo:      recoverableToDesc,
}

// maxInterned bounds the strings Metrics shares between tenants. Condition types, statuses and
// probe kinds are a few dozen set by the operator's code; the bound only matters if a caller
// passes something unbounded, which then is kept per tenant as it would have been without sharing.
const maxInterned = 256

// Metrics holds every tenant's series; New registers it once with a registry.
type Metrics struct {
	// An RWMutex so that a scrape's copy of the state does not wait for another scrape; setters
	// hold it for a few map and field writes.
	mu      sync.RWMutex
	tenants map[string]*tenantSeries
	// interned shares condition types, statuses and probe kinds between tenants: each tenant would
	// otherwise keep its own copies, those of the Tenant object its status was set from.
	interned map[string]string
}

// tenantSeries is one tenant's series. Collect copies it by value and reads the copy without the
// lock, so conditions and schedules are replaced by setters, never changed in place; probe
// histograms are changed in place and so are arrays (copied with the struct) or deep-copied.
type tenantSeries struct {
	has                                      uint16
	up, objective, budget, certificateExpiry float64
	ratios                                   [len(windows)]float64
	// probes are the first two probe kinds observed (http and database); a tenant rarely has more.
	probes     [2]probeHistogram
	moreProbes []probeHistogram
	conditions []conditionSeries
	schedules  []scheduleSeries
}

type probeHistogram struct {
	kind string
	// count is 0 while the slot is unused.
	count uint64
	sum   float64
	// created is when the first probe was observed, in Unix nanoseconds: the histogram's created
	// timestamp, as client_golang's histograms report it.
	created int64
	// buckets counts the observations of each bucket alone; the exposition's are cumulative.
	buckets [len(probeBuckets)]uint64
}

type conditionSeries struct {
	conditionType string
	status        metav1.ConditionStatus
}

type scheduleSeries struct {
	schedule string
	// has is a bit for each of values that has a series.
	has    uint16
	values [scheduleGauges]float64
}

func (s *scheduleSeries) set(gauge int, v float64) {
	s.has |= 1 << gauge
	s.values[gauge] = v
}

// New creates the collector and registers it with reg (controller-runtime's metrics.Registry in
// the manager, a fresh registry in tests).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{tenants: map[string]*tenantSeries{}, interned: map[string]string{}}
	reg.MustRegister((*collector)(m))
	return m
}

// intern returns the shared copy of s. The caller holds m.mu.
func (m *Metrics) intern(s string) string {
	if v, ok := m.interned[s]; ok {
		return v
	}
	if len(m.interned) >= maxInterned {
		return s
	}
	s = strings.Clone(s)
	m.interned[s] = s
	return s
}

// tenant returns the tenant's series, created if missing. The caller holds m.mu.
func (m *Metrics) tenant(name string) *tenantSeries {
	t := m.tenants[name]
	if t == nil {
		t = &tenantSeries{}
		m.tenants[name] = t
	}
	return t
}

// prune forgets a tenant that has no series left, so that a deleted tenant costs nothing. The
// caller holds m.mu.
func (m *Metrics) prune(name string, t *tenantSeries) {
	if t.has == 0 && t.probes[0].count == 0 && t.probes[1].count == 0 && len(t.moreProbes) == 0 &&
		len(t.conditions) == 0 && len(t.schedules) == 0 {
		delete(m.tenants, name)
	}
}

// ObserveProbe records one probe's duration.
func (m *Metrics) ObserveProbe(tenant, probe string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tenant(tenant)
	var h *probeHistogram
	// Slots fill in order and are emptied together, so a kind not in the slots before the first
	// unused one has no histogram yet.
	for i := range t.probes {
		if p := &t.probes[i]; p.count == 0 || p.kind == probe {
			h = p
			break
		}
	}
	if h == nil {
		for i := range t.moreProbes {
			if t.moreProbes[i].kind == probe {
				h = &t.moreProbes[i]
				break
			}
		}
	}
	if h == nil {
		t.moreProbes = append(t.moreProbes, probeHistogram{})
		h = &t.moreProbes[len(t.moreProbes)-1]
	}
	if h.count == 0 {
		h.kind = m.intern(probe)
		h.created = time.Now().UnixNano()
	}
	v := d.Seconds()
	// As client_golang's histograms: a bucket's bound is inclusive, and an observation above the
	// last bound is counted in +Inf alone.
	if i := sort.SearchFloat64s(probeBuckets[:], v); i < len(probeBuckets) {
		h.buckets[i]++
	}
	h.count++
	h.sum += v
}

// Counts are probes counted over a window.
type Counts interface{ Ratio() (float64, bool) }

// Ratios are what a tenant's uptime ratio series show.
type Ratios struct {
	Day, Week, Month Counts
	Objective        float64
	BudgetRemaining  float64
	// Probed is false while the objective's window holds no probe: then there is no budget.
	Probed bool
}

// SetUp sets whether the tenant answers: 0 once it failed enough probes in a row to be down,
// 1 once it answers again. A single failed probe between successes does not change it.
func (m *Metrics) SetUp(tenant string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tenant(tenant)
	t.has |= hasUp
	t.up = v
}

// SetRatios sets a tenant's uptime ratio series; a window without probes has no ratio series.
func (m *Metrics) SetRatios(tenant string, r Ratios) {
	// Ratio is the caller's code: called before taking the lock.
	var ratios [len(windows)]float64
	var has uint16
	for i, c := range [len(windows)]Counts{r.Day, r.Week, r.Month} {
		if v, ok := c.Ratio(); ok {
			ratios[i] = v
			has |= hasRatio << i
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tenant(tenant)
	for i := range windows {
		t.has &^= hasRatio << i
	}
	t.has |= has | hasObjective
	t.ratios = ratios
	t.objective = r.Objective
	// Without a probe in the objective's window there is no budget to show; an earlier window's
	// would read as this one's.
	t.has &^= hasBudget
	t.budget = 0
	if r.Probed {
		t.has |= hasBudget
		t.budget = r.BudgetRemaining
	}
}

// SetCertificateExpiry records when the certificate the tenant's URL served expires.
func (m *Metrics) SetCertificateExpiry(tenant string, notAfter time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tenant(tenant)
	t.has |= hasCertificateExpiry
	t.certificateExpiry = float64(notAfter.Unix())
}

// DeleteUptime removes a tenant's uptime and probe series: it is no longer probed.
func (m *Metrics) DeleteUptime(tenant string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tenants[tenant]
	if t == nil {
		return
	}
	t.has = 0
	t.up, t.objective, t.budget, t.certificateExpiry = 0, 0, 0, 0
	t.ratios = [len(windows)]float64{}
	t.probes = [2]probeHistogram{}
	t.moreProbes = nil
	m.prune(tenant, t)
}

// ScheduleBackups is what is known of one schedule's backups.
type ScheduleBackups struct {
	Schedule     string
	LastSuccess  time.Time
	AllowedAge   time.Duration
	LastVerified time.Time
	SizeBytes    int64
	// PointInTime is set for a physical schedule only.
	PointInTime *PointInTime
}

// PointInTime is what is known of a physical schedule's WAL archive.
type PointInTime struct {
	ReceiverReady            bool
	LastArchived             time.Time
	EarliestTime, LatestTime time.Time
}

// SetBackups replaces the backup series of a tenant with schedules: series of schedules no longer
// listed disappear, and a time never seen leaves its series out rather than reporting 1970.
func (m *Metrics) SetBackups(tenant string, schedules []ScheduleBackups) {
	var series []scheduleSeries
	for _, s := range schedules {
		// A schedule listed twice is one set of series, each from the last entry that has it.
		i := slices.IndexFunc(series, func(ss scheduleSeries) bool { return ss.schedule == s.Schedule })
		if i < 0 {
			series = append(series, scheduleSeries{schedule: s.Schedule})
			i = len(series) - 1
		}
		ss := &series[i]
		ss.set(backupInterval, s.AllowedAge.Seconds())
		if !s.LastSuccess.IsZero() {
			ss.set(backupLastSuccess, float64(s.LastSuccess.Unix()))
			ss.set(backupSize, float64(s.SizeBytes))
		}
		if !s.LastVerified.IsZero() {
			ss.set(backupLastVerified, float64(s.LastVerified.Unix()))
		}
		if p := s.PointInTime; p != nil {
			ready := 0.0
			if p.ReceiverReady {
				ready = 1
			}
			ss.set(walReceiverReady, ready)
			for _, g := range [...]struct {
				gauge int
				t     time.Time
			}{{walLastArchived, p.LastArchived}, {recoverableFrom, p.EarliestTime}, {recoverableTo, p.LatestTime}} {
				if !g.t.IsZero() {
					ss.set(g.gauge, float64(g.t.Unix()))
				}
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tenant(tenant)
	t.schedules = series
	m.prune(tenant, t)
}

// DeleteBackups removes every backup series of a tenant.
func (m *Metrics) DeleteBackups(tenant string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.tenants[tenant]; t != nil {
		t.schedules = nil
		m.prune(tenant, t)
	}
}

// SetConditions keeps one series per condition, labelled with its current status and valued 1,
// so alerts match `{type="Ready",status="False"} == 1` for as long as it holds. A status change
// replaces the series: at a thousand tenants, a series for each status that does not hold (as
// kube-state-metrics keeps) would triple the operator's largest use of memory, and Prometheus'.
func (m *Metrics) SetConditions(tenant string, conditions []metav1.Condition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var series []conditionSeries
	if len(conditions) > 0 {
		series = make([]conditionSeries, 0, len(conditions))
	}
	for _, c := range conditions {
		status := metav1.ConditionStatus(m.intern(string(c.Status)))
		// A type listed twice is one series, with the last entry's status.
		if i := slices.IndexFunc(series, func(s conditionSeries) bool { return s.conditionType == c.Type }); i >= 0 {
			series[i].status = status
			continue
		}
		series = append(series, conditionSeries{conditionType: m.intern(c.Type), status: status})
	}
	t := m.tenant(tenant)
	t.conditions = series
	m.prune(tenant, t)
}

// DeleteTenant removes every series of a deleted tenant.
func (m *Metrics) DeleteTenant(tenant string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tenants, tenant)
}

// collector is Metrics as a prometheus.Collector, so that Describe and Collect stay out of
// Metrics' API.
type collector Metrics

var descs = []*prometheus.Desc{
	backupLastSuccessDesc, backupIntervalDesc, backupLastVerifiedDesc, backupSizeDesc,
	walLastArchivedDesc, walReceiverReadyDesc, recoverableFromDesc, recoverableToDesc,
	tenantConditionDesc, tenantUpDesc, probeDurationDesc, uptimeRatioDesc, objectiveRatioDesc,
	budgetRemainingDesc, certificateExpiryDesc,
}

// Describe sends every metric's description, so that the registry checks each collected series
// against them and rejects a second registration of the same names.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

type tenantSnapshot struct {
	name string
	tenantSeries
}

// Collect copies every tenant's series under the read lock and builds and sends the metrics
// after releasing it. Sending under the lock would hold it for as long as the registry takes to
// consume the channel (most of a second at 10,000 tenants): setters from the reconcilers and the
// uptime monitor would wait that long on every scrape. The copy is about 400 bytes a tenant, made
// in a few milliseconds, and garbage once sent; building the metrics under the lock instead would
// hold it for the slow part.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	snapshot := make([]tenantSnapshot, 0, len(c.tenants))
	for name, t := range c.tenants {
		s := tenantSnapshot{name: name, tenantSeries: *t}
		s.moreProbes = slices.Clone(t.moreProbes)
		snapshot = append(snapshot, s)
	}
	c.mu.RUnlock()

	for i := range snapshot {
		collectTenant(ch, &snapshot[i])
	}
}

func collectTenant(ch chan<- prometheus.Metric, t *tenantSnapshot) {
	if t.has&hasUp != 0 {
		gauge(ch, tenantUpDesc, t.up, t.name)
	}
	if t.has&hasObjective != 0 {
		gauge(ch, objectiveRatioDesc, t.objective, t.name)
	}
	if t.has&hasBudget != 0 {
		gauge(ch, budgetRemainingDesc, t.budget, t.name)
	}
	if t.has&hasCertificateExpiry != 0 {
		gauge(ch, certificateExpiryDesc, t.certificateExpiry, t.name)
	}
	for i, window := range windows {
		if t.has&(hasRatio<<i) != 0 {
			gauge(ch, uptimeRatioDesc, t.ratios[i], t.name, window)
		}
	}
	for i := range t.probes {
		histogram(ch, &t.probes[i], t.name)
	}
	for i := range t.moreProbes {
		histogram(ch, &t.moreProbes[i], t.name)
	}
	for _, c := range t.conditions {
		gauge(ch, tenantConditionDesc, 1, t.name, c.conditionType, string(c.status))
	}
	for i := range t.schedules {
		s := &t.schedules[i]
		for g := range scheduleGauges {
			if s.has&(1<<g) != 0 {
				gauge(ch, scheduleDescs[g], s.values[g], t.name, s.schedule)
			}
		}
	}
}

// gauge sends one gauge. A label value that is not UTF-8 fails that series alone, in the scrape's
// error, rather than panicking the manager.
func gauge(ch chan<- prometheus.Metric, desc *prometheus.Desc, v float64, labelValues ...string) {
	m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, labelValues...)
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	ch <- m
}

func histogram(ch chan<- prometheus.Metric, h *probeHistogram, tenant string) {
	if h.count == 0 {
		return
	}
	buckets := make(map[float64]uint64, len(probeBuckets))
	var cumulative uint64
	for i, bound := range probeBuckets {
		cumulative += h.buckets[i]
		buckets[bound] = cumulative
	}
	m, err := prometheus.NewConstHistogramWithCreatedTimestamp(probeDurationDesc, h.count, h.sum, buckets,
		time.Unix(0, h.created), tenant, h.kind)
	if err != nil {
		m = prometheus.NewInvalidMetric(probeDurationDesc, err)
	}
	ch <- m
}
