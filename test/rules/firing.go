package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/teststorage"
	"go.yaml.in/yaml/v2"
)

// RuleFile is the PrometheusRule the operator ships, relative to the repository's root; its spec
// is a Prometheus rule file.
const RuleFile = "config/prometheus/prometheus-rule.yaml"

// Point is a value the tenantops_tenant_up gauge of one tenant takes at At and keeps until the
// next Point. At is measured from an origin the caller chooses: the moment the tenant's URL or
// database stopped answering for an end-to-end measurement, or the gauge's drop to 0.
type Point struct {
	At time.Duration `json:"at"`
	Up bool          `json:"up"`
}

// Gauge is one tenant's tenantops_tenant_up over time, its Points in increasing order of At.
// Before the first Point the series does not exist.
type Gauge []Point

// Schedule is when Prometheus scrapes the operator and evaluates the rules, relative to the
// gauge's origin. Prometheus scrapes a target and evaluates a rule group at a fixed phase of
// their intervals, derived from a hash of the target and the group: ScrapeOffset and EvalOffset
// are these phases.
type Schedule struct {
	// ScrapeInterval is 30 s when zero; scrapes start at ScrapeOffset + k × ScrapeInterval.
	ScrapeInterval, ScrapeOffset time.Duration
	// EvalInterval is 30 s when zero; evaluations run at EvalOffset + k × EvalInterval.
	EvalInterval, EvalOffset time.Duration
	// ScrapeDuration is the time from a scrape's start, which is its samples' timestamp, until
	// its samples are committed to storage. An evaluation that starts before the commit does not
	// see them, though their timestamp is older than the evaluation's.
	ScrapeDuration time.Duration
	// QueryOffset is Prometheus' rule_query_offset: evaluations query this long before their
	// own time. Zero by default.
	QueryOffset time.Duration
}

// Defaults fills in the 30 s intervals of a zero Schedule.
func (s Schedule) Defaults() Schedule {
	if s.ScrapeInterval == 0 {
		s.ScrapeInterval = 30 * time.Second
	}
	if s.EvalInterval == 0 {
		s.EvalInterval = 30 * time.Second
	}
	return s
}

func (s Schedule) String() string {
	return fmt.Sprintf("scrape every %s at +%s (%s until committed), evaluate every %s at +%s, query offset %s",
		s.ScrapeInterval, s.ScrapeOffset, s.ScrapeDuration, s.EvalInterval, s.EvalOffset, s.QueryOffset)
}

// FiringTime evaluates the TenantDown rule of RuleFile with Prometheus' own rule engine over the
// samples that Prometheus would scrape from gauge on schedule s, and returns the time of the
// first evaluation at which the alert fires, measured from the gauge's origin. fired is false
// when the alert does not fire while the gauge's values are scraped and evaluated, up to two
// scrape and evaluation intervals (and the rule's for) after its last Point.
//
// Each scrape reads the value the gauge had just before the scrape started, so a change at the
// very moment of a scrape is seen by the next one; each evaluation sees the samples committed
// strictly before it. These are the pessimistic readings of a tie.
func FiringTime(gauge Gauge, s Schedule) (at time.Duration, fired bool, err error) {
	def, err := tenantDown()
	if err != nil {
		return 0, false, err
	}
	return firingTime(def, gauge, s)
}

func firingTime(def alertDefinition, gauge Gauge, s Schedule) (at time.Duration, fired bool, err error) {
	s = s.Defaults()
	if len(gauge) == 0 {
		return 0, false, errors.New("the gauge has no points")
	}
	for i := 1; i < len(gauge); i++ {
		if gauge[i].At < gauge[i-1].At {
			return 0, false, fmt.Errorf("the gauge's points are not in order: %s after %s", gauge[i].At, gauge[i-1].At)
		}
	}
	rule, err := def.newRule()
	if err != nil {
		return 0, false, err
	}
	// One series in memory: without a write-ahead log, exemplars and a map for millions of
	// series, the storage opens in a fraction of a millisecond.
	store, err := teststorage.NewWithError(func(o *tsdb.Options) {
		o.WALSegmentSize, o.StripeSize, o.EnableExemplarStorage, o.MaxExemplars = -1, 16, false, 0
	})
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = store.Close() }()
	query := rules.EngineQueryFunc(engine(), store)
	series := labels.FromStrings(labels.MetricName, "tenantops_tenant_up", "tenant", "acme")

	from := gauge[0].At
	until := gauge[len(gauge)-1].At + 2*(s.ScrapeInterval+s.EvalInterval) + s.ScrapeDuration + s.QueryOffset + def.hold
	// A scrape's value: the gauge's value just before the scrape started.
	valueAt := func(t time.Duration) (float64, bool) {
		v, ok := 0.0, false
		for _, p := range gauge {
			if p.At >= t {
				break
			}
			v, ok = 0, true
			if p.Up {
				v = 1
			}
		}
		return v, ok
	}
	nextScrape := firstAtOrAfter(from, s.ScrapeOffset, s.ScrapeInterval)
	ctx := context.Background()
	for eval := firstAtOrAfter(from, s.EvalOffset, s.EvalInterval); eval <= until; eval += s.EvalInterval {
		// Commit every scrape that finished before this evaluation starts.
		app := store.Appender(ctx)
		for ; nextScrape+s.ScrapeDuration < eval; nextScrape += s.ScrapeInterval {
			if v, ok := valueAt(nextScrape); ok {
				if _, err := app.Append(0, series, timestampMillis(nextScrape), v); err != nil {
					_ = app.Rollback()
					return 0, false, fmt.Errorf("append the sample scraped at %s: %w", nextScrape, err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			return 0, false, err
		}
		if _, err := rule.Eval(ctx, s.QueryOffset, origin.Add(eval), query, nil, 0); err != nil {
			return 0, false, fmt.Errorf("evaluate %s at %s: %w", def.name, eval, err)
		}
		for _, a := range rule.ActiveAlerts() {
			if a.State == rules.StateFiring {
				return eval, true, nil
			}
		}
	}
	return 0, false, nil
}

// SweepResult is what FiringTime found over every phase of scrapes and evaluations.
type SweepResult struct {
	// For is the rule's for.
	For time.Duration
	// Runs is how many phase combinations were evaluated, Fired in how many the alert fired.
	Runs, Fired int
	// Earliest and Latest are the first and last firing times over the runs that fired, with the
	// schedules that gave them.
	Earliest, Latest                 time.Duration
	EarliestSchedule, LatestSchedule Schedule
}

// Sweep runs FiringTime for every scrape phase and every evaluation phase from 0 up to their
// intervals in steps of step, on the intervals, scrape duration and query offset of base. Where
// the gauge's changes are not on the step's grid, Latest may fall short of the true worst case by
// about a step: take a step of a second or less.
func Sweep(gauge Gauge, base Schedule, step time.Duration) (SweepResult, error) {
	def, err := tenantDown()
	if err != nil {
		return SweepResult{}, err
	}
	return sweep(def, gauge, base, step)
}

func sweep(def alertDefinition, gauge Gauge, base Schedule, step time.Duration) (SweepResult, error) {
	base = base.Defaults()
	if step <= 0 {
		return SweepResult{}, errors.New("the step must be positive")
	}
	r := SweepResult{For: def.hold}
	for scrape := time.Duration(0); scrape < base.ScrapeInterval; scrape += step {
		for eval := time.Duration(0); eval < base.EvalInterval; eval += step {
			s := base
			s.ScrapeOffset, s.EvalOffset = scrape, eval
			at, fired, err := firingTime(def, gauge, s)
			if err != nil {
				return r, fmt.Errorf("%s: %w", s, err)
			}
			r.Runs++
			if !fired {
				continue
			}
			r.Fired++
			if r.Fired == 1 || at < r.Earliest {
				r.Earliest, r.EarliestSchedule = at, s
			}
			if r.Fired == 1 || at > r.Latest {
				r.Latest, r.LatestSchedule = at, s
			}
		}
	}
	return r, nil
}

// origin is the wall time of the gauge's origin: far enough from the epoch that points before it
// have positive timestamps.
var origin = time.Unix(1_000_000, 0).UTC()

func timestampMillis(d time.Duration) int64 { return origin.Add(d).UnixMilli() }

// firstAtOrAfter is the first time offset + k × interval, for any integer k, not before t.
func firstAtOrAfter(t, offset, interval time.Duration) time.Duration {
	k := (t - offset) / interval
	at := offset + k*interval
	for at < t {
		at += interval
	}
	for at-interval >= t {
		at -= interval
	}
	return at
}

// engine is one PromQL engine with Prometheus' defaults, shared by every evaluation.
var engine = sync.OnceValue(func() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:    50_000_000,
		Timeout:       time.Minute,
		LookbackDelta: 5 * time.Minute, // Prometheus' default
	})
})

// alertDefinition is an alert of the rule file as Prometheus parsed and validated it.
type alertDefinition struct {
	name              string
	expr              string
	hold, keepFiring  time.Duration
	labels, annotates labels.Labels
}

// newRule is a fresh rule, without state, built as Prometheus' rule manager builds it after a
// restore, so that it may fire.
func (d alertDefinition) newRule() (*rules.AlertingRule, error) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(d.expr)
	if err != nil {
		return nil, err
	}
	return rules.NewAlertingRule(d.name, expr, d.hold, d.keepFiring, d.labels, d.annotates,
		labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler)), nil
}

// tenantDown is the TenantDown alert of RuleFile, read once.
var tenantDown = sync.OnceValues(func() (alertDefinition, error) {
	spec, err := RuleFileSpec()
	if err != nil {
		return alertDefinition{}, err
	}
	groups, errs := rulefmt.Parse(spec, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return alertDefinition{}, fmt.Errorf("%s: %w", RuleFile, errors.Join(errs...))
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "TenantDown" {
				return alertDefinition{
					name: r.Alert, expr: r.Expr,
					hold: time.Duration(r.For), keepFiring: time.Duration(r.KeepFiringFor),
					labels: rules.FromMaps(g.Labels, r.Labels), annotates: labels.FromMap(r.Annotations),
				}, nil
			}
		}
	}
	return alertDefinition{}, fmt.Errorf("%s has no TenantDown alert", RuleFile)
})

// RuleFileSpec reads RuleFile and returns its spec: a plain Prometheus rule file.
func RuleFileSpec() ([]byte, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(root, RuleFile))
	if err != nil {
		return nil, err
	}
	var prometheusRule struct {
		Kind string        `yaml:"kind"`
		Spec yaml.MapSlice `yaml:"spec"`
	}
	if err := yaml.Unmarshal(data, &prometheusRule); err != nil {
		return nil, fmt.Errorf("%s: %w", RuleFile, err)
	}
	if prometheusRule.Kind != "PrometheusRule" {
		return nil, fmt.Errorf("%s is a %q, want a PrometheusRule", RuleFile, prometheusRule.Kind)
	}
	return yaml.Marshal(prometheusRule.Spec)
}

// repoRoot is the nearest directory above the working directory with the repository's PROJECT
// file, so that any package of this module finds the rule file.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "PROJECT")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no PROJECT file above the working directory: run from inside the repository")
		}
		dir = parent
	}
}
