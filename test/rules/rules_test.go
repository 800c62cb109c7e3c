package rules

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v2"
)

// testFile is alerts_test.yaml, in the format of promtool's rule unit tests.
type testFile struct {
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
	Tests              []testGroup    `yaml:"tests"`
}

type testGroup struct {
	Name        string         `yaml:"name"`
	Interval    model.Duration `yaml:"interval"`
	InputSeries []struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	} `yaml:"input_series"`
	AlertRuleTests []alertTest `yaml:"alert_rule_test"`
}

type alertTest struct {
	EvalTime  model.Duration `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	} `yaml:"exp_alerts"`
}

// TestAlerts runs every test group of alerts_test.yaml and then checks that each alert of the
// rule file has a case where it fires and one where it must not.
func TestAlerts(t *testing.T) {
	rulePath, alertNames := extractRules(t)
	var tests testFile
	data, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &tests); err != nil {
		t.Fatalf("alerts_test.yaml: %v", err)
	}
	evalInterval := time.Duration(tests.EvaluationInterval)
	if evalInterval == 0 {
		evalInterval = time.Minute
	}

	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tg := range tests.Tests {
		for _, at := range tg.AlertRuleTests {
			if !slices.Contains(alertNames, at.Alertname) {
				t.Errorf("test %q: the rule file has no alert %q", tg.Name, at.Alertname)
			}
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				quiet[at.Alertname] = true
			}
		}
		t.Run(tg.Name, func(t *testing.T) { runGroup(t, tg, rulePath, evalInterval) })
	}
	for _, name := range alertNames {
		if !fires[name] {
			t.Errorf("alert %s has no test in which it fires", name)
		}
		if !quiet[name] {
			t.Errorf("alert %s has no test in which it must stay quiet", name)
		}
	}
}

// extractRules writes the PrometheusRule's spec as a plain rule file and lists its alerts.
func extractRules(t *testing.T) (string, []string) {
	t.Helper()
	spec, err := RuleFileSpec()
	if err != nil {
		t.Fatal(err)
	}
	var groups struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(spec, &groups); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "prometheus-rule.rules.yaml")
	if err := os.WriteFile(path, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, names
}

// runGroup loads the group's series and evaluates every rule group of the file at each step from
// time 0 to the last eval_time, comparing the firing alerts at each eval_time, as promtool does:
// labels exactly, annotations exactly where the test lists them.
func runGroup(t *testing.T, tg testGroup, rulePath string, evalInterval time.Duration) {
	interval := tg.Interval
	if interval == 0 {
		interval = model.Duration(evalInterval)
	}
	var load strings.Builder
	fmt.Fprintf(&load, "load %s\n", interval)
	for _, s := range tg.InputSeries {
		fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
	}
	suite, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{EnableAtModifier: true, EnableNegativeOffset: true})
	if err != nil {
		t.Fatalf("input_series: %v", err)
	}
	defer func() {
		if err := suite.Close(); err != nil {
			t.Error(err)
		}
	}()
	suite.SubqueryInterval = evalInterval

	manager := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		AppendableV2: suite.Storage(),
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Logger:       slog.New(slog.DiscardHandler),
	})
	groups, errs := manager.LoadGroups(evalInterval, labels.EmptyLabels(), "", nil, false, rulePath)
	if len(errs) > 0 {
		t.Fatalf("load %s: %v", RuleFile, errs)
	}
	var alerting []*rules.AlertingRule
	for _, g := range groups {
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok {
				ar.SetRestored(true) // as after a restart's restore, so alerts may fire
				alerting = append(alerting, ar)
			}
		}
	}

	byTime := map[time.Duration][]alertTest{}
	var last time.Duration
	for _, at := range tg.AlertRuleTests {
		byTime[time.Duration(at.EvalTime)] = append(byTime[time.Duration(at.EvalTime)], at)
		last = max(last, time.Duration(at.EvalTime))
	}
	start := time.Unix(0, 0).UTC()
	for offset := time.Duration(0); offset <= last; offset += evalInterval {
		ts := start.Add(offset)
		suite.WithSamplesTill(ts, func(err error) {
			if err != nil {
				t.Fatalf("load samples till %s: %v", offset, err)
			}
			for _, g := range groups {
				g.Eval(suite.Context(), ts)
				for _, r := range g.Rules() {
					if err := r.LastError(); err != nil {
						t.Fatalf("rule %s at %s: %v", r.Name(), offset, err)
					}
				}
			}
		})
		// An eval_time between two evaluations sees the earlier one, as in promtool.
		for at, cases := range byTime {
			if at < offset || at >= offset+evalInterval {
				continue
			}
			for _, c := range cases {
				checkAlerts(t, c, firing(alerting, c.Alertname))
			}
		}
	}
}

// alert is a firing alert as the tests describe it.
type alert struct {
	labels, annotations labels.Labels
}

func firing(alerting []*rules.AlertingRule, name string) []alert {
	var out []alert
	for _, ar := range alerting {
		if ar.Name() != name {
			continue
		}
		for _, a := range ar.ActiveAlerts() {
			if a.State == rules.StateFiring {
				out = append(out, alert{labels: a.Labels.Copy(), annotations: a.Annotations.Copy()})
			}
		}
	}
	return out
}

func checkAlerts(t *testing.T, c alertTest, got []alert) {
	t.Helper()
	var want []alert
	for _, e := range c.ExpAlerts {
		l := labels.NewBuilder(labels.FromMap(e.ExpLabels)).Set(labels.AlertName, c.Alertname).Labels()
		var annotations labels.Labels
		if e.ExpAnnotations != nil {
			annotations = labels.FromMap(e.ExpAnnotations)
		}
		want = append(want, alert{labels: l, annotations: annotations})
	}
	byLabels := func(a, b alert) int { return labels.Compare(a.labels, b.labels) }
	slices.SortFunc(got, byLabels)
	slices.SortFunc(want, byLabels)
	match := len(got) == len(want)
	for i := 0; match && i < len(want); i++ {
		match = labels.Equal(got[i].labels, want[i].labels) &&
			(want[i].annotations.IsEmpty() || labels.Equal(got[i].annotations, want[i].annotations))
	}
	if !match {
		t.Errorf("%s at %s:\n  want %s\n  got  %s", c.Alertname, c.EvalTime, describe(want), describe(got))
	}
}

func describe(alerts []alert) string {
	if len(alerts) == 0 {
		return "no firing alert"
	}
	var parts []string
	for _, a := range alerts {
		s := a.labels.String()
		if !a.annotations.IsEmpty() {
			s += " " + a.annotations.String()
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n       ")
}
