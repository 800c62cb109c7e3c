package chart

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// metrics are the metric names the operator exports, with their labels; the rules and the
// dashboard may use no other tenantops_ series.
var metrics = map[string][]string{
	"tenantops_tenant_up":                                   {"tenant"},
	"tenantops_probe_duration_seconds":                      {"tenant", "probe"}, // a histogram
	"tenantops_tenant_uptime_ratio":                         {"tenant", "window"},
	"tenantops_tenant_uptime_objective_ratio":               {"tenant"},
	"tenantops_tenant_error_budget_remaining_ratio":         {"tenant"},
	"tenantops_tenant_certificate_expiry_timestamp_seconds": {"tenant"},
	"tenantops_tenant_condition":                            {"tenant", "type", "status"},
	"tenantops_backup_last_success_timestamp_seconds":       {"tenant", "schedule"},
	"tenantops_backup_expected_interval_seconds":            {"tenant", "schedule"},
	"tenantops_backup_last_verified_timestamp_seconds":      {"tenant", "schedule"},
	"tenantops_backup_size_bytes":                           {"tenant", "schedule"},
	"tenantops_wal_last_archived_timestamp_seconds":         {"tenant", "schedule"},
	"tenantops_wal_receiver_ready":                          {"tenant", "schedule"},
	"tenantops_recoverable_earliest_timestamp_seconds":      {"tenant", "schedule"},
	"tenantops_recoverable_latest_timestamp_seconds":        {"tenant", "schedule"},
}

// histograms are the metrics exported as histograms, read through their series.
var histograms = []string{"tenantops_probe_duration_seconds"}

var metricName = regexp.MustCompile(`tenantops_[a-z0-9_]+`)

// checkMetricNames fails on a tenantops_ series in expr that the operator does not export.
func checkMetricNames(t *testing.T, where, expr string) {
	t.Helper()
	for _, name := range metricName.FindAllString(expr, -1) {
		if _, ok := metrics[name]; ok {
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if base != name && slices.Contains(histograms, base) {
			continue
		}
		t.Errorf("%s uses %s, which the operator does not export", where, name)
	}
}

// promRule is the part of a Prometheus rule file the tests read.
type promRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type ruleGroups struct {
	Groups []struct {
		Name  string     `json:"name"`
		Rules []promRule `json:"rules"`
	} `json:"groups"`
}

func readRules(t *testing.T) []promRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "prometheus", "prometheus-rule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              ruleGroups `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(data, &rule); err != nil {
		t.Fatalf("config/prometheus/prometheus-rule.yaml: %v", err)
	}
	var rules []promRule
	for _, g := range rule.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// TestAlerts checks the alert rules: exactly the alerts the runbooks describe, each with a
// severity, a summary, a description and a runbook_url whose page exists in docs/runbooks, and
// expressions that read only metrics the operator exports.
func TestAlerts(t *testing.T) {
	want := []string{"TenantBackupStale", "TenantBackupVerificationFailed", "TenantCertificateExpiringSoon",
		"TenantDown", "TenantNotReady", "TenantUptimeObjectiveAtRisk", "TenantWALArchivingFailing"}
	rules := readRules(t)
	var got []string
	for _, r := range rules {
		got = append(got, r.Alert)
		where := "alert " + r.Alert
		if r.Alert == "" || r.Expr == "" || r.For == "" {
			t.Errorf("rule %+v needs alert, expr and for", r)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q", where, s)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", where, a)
			}
		}
		wantURL := "https://github.com/tenantops/tenant-operator/blob/main/docs/runbooks/" + r.Alert + ".md"
		if r.Annotations["runbook_url"] != wantURL {
			t.Errorf("%s: runbook_url %q, want %q", where, r.Annotations["runbook_url"], wantURL)
		}
		page, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "runbooks", r.Alert+".md"))
		if err != nil {
			t.Errorf("%s: %v", where, err)
		} else if !strings.HasPrefix(string(page), "# "+r.Alert+"\n") {
			t.Errorf("%s: docs/runbooks/%s.md does not start with its title", where, r.Alert)
		}
		checkMetricNames(t, where, r.Expr)
		if !strings.Contains(r.Annotations["summary"]+r.Annotations["description"], "$labels.tenant") {
			t.Errorf("%s: the summary or description should name the tenant", where)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("alerts = %v, want %v", got, want)
	}
}

// TestChartPrometheusRule checks that the chart's PrometheusRule is the rule file of
// config/prometheus, with runbook_url moved to prometheusRule.runbookBaseURL.
func TestChartPrometheusRule(t *testing.T) {
	objs := render(t, valueSets[1])
	rendered, err := json.Marshal(one(t, objs, "PrometheusRule").Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	var groups ruleGroups
	if err := json.Unmarshal(rendered, &groups); err != nil {
		t.Fatal(err)
	}
	source := readRules(t)
	var got []promRule
	for _, g := range groups.Groups {
		got = append(got, g.Rules...)
	}
	if len(got) != len(source) {
		t.Fatalf("the chart has %d rules, config/prometheus %d", len(got), len(source))
	}
	for i := range source {
		want := source[i]
		want.Annotations = map[string]string{}
		for k, v := range source[i].Annotations {
			want.Annotations[k] = v
		}
		want.Annotations["runbook_url"] = "https://runbooks.example.com/tenant-operator/" + want.Alert + ".md"
		if !equalJSON(t, got[i], want) {
			t.Errorf("rule %s:\n chart  %+v\n source %+v", want.Alert, got[i], want)
		}
	}
}

// TestDashboard checks the Grafana dashboard: valid JSON with a uid, every panel's queries read
// only metrics the operator exports, and the chart's ConfigMap carries the same JSON.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "prometheus", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dashboard); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if dashboard.UID == "" || dashboard.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range dashboard.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, target := range p.Targets {
			checkMetricNames(t, fmt.Sprintf("panel %q", p.Title), target.Expr)
			for _, m := range metricName.FindAllString(target.Expr, -1) {
				used[strings.TrimSuffix(m, "_bucket")] = true
			}
		}
	}
	for _, v := range dashboard.Templating.List {
		checkMetricNames(t, "variable "+v.Name, v.Definition)
	}
	for name := range metrics {
		if !used[name] {
			t.Errorf("the dashboard shows nothing of %s", name)
		}
	}

	objs := render(t, valueSets[1])
	var cm struct {
		Data map[string]string `json:"data"`
	}
	raw, _ := one(t, objs, "ConfigMap").MarshalJSON()
	if err := json.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(cm.Data["tenant-operator.json"]) != strings.TrimSpace(string(data)) {
		t.Error("the chart's dashboard ConfigMap differs from config/prometheus/dashboard.json")
	}
}

// monitoringObjects are the keys of the monitoring objects among objs: the PrometheusRule, the
// ServiceMonitor and the dashboard's ConfigMap.
func monitoringObjects(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, obj := range objs {
		if obj.GetKind() == "PrometheusRule" || obj.GetKind() == "ServiceMonitor" ||
			obj.GetKind() == "ConfigMap" && strings.HasSuffix(obj.GetName(), "-dashboard") {
			out = append(out, key(obj))
		}
	}
	sort.Strings(out)
	return out
}

// TestMonitoringWhereTheClusterServesIt checks when the chart installs its monitoring objects:
// by default (auto) the ServiceMonitor where the cluster serves the ServiceMonitor kind, the
// PrometheusRule and the dashboard where it serves PrometheusRule; true always, false never.
func TestMonitoringWhereTheClusterServesIt(t *testing.T) {
	const (
		dashboard = "ConfigMap " + releaseNamespace + "/tenant-operator-dashboard"
		rule      = "PrometheusRule " + releaseNamespace + "/tenant-operator"
		monitor   = "ServiceMonitor " + releaseNamespace + "/tenant-operator"
	)
	for _, c := range []struct {
		name        string
		apiVersions []string
		set         []string
		want        []string
	}{
		{name: "without the Prometheus Operator"},
		{name: "with the Prometheus Operator", apiVersions: prometheusOperatorAPI, want: []string{dashboard, rule, monitor}},
		// The group version does not say which kinds are served: a cluster may serve
		// ServiceMonitor alone (the OpenTelemetry Operator's target allocator needs no more),
		// and a kind it does not serve would fail the whole release.
		{name: "with the group version only", apiVersions: []string{"monitoring.coreos.com/v1"}},
		{name: "with ServiceMonitor only", apiVersions: []string{"monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"}, want: []string{monitor}},
		{name: "turned off", apiVersions: prometheusOperatorAPI,
			set: []string{"serviceMonitor.enabled=false", "prometheusRule.enabled=false", "grafanaDashboard.enabled=false"}},
		{name: "turned on without the Prometheus Operator",
			set:  []string{"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true"},
			want: []string{dashboard, rule, monitor}},
		{name: "without metrics", apiVersions: prometheusOperatorAPI, set: []string{"metrics.enabled=false"}, want: []string{dashboard, rule}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := apiVersionArgs(c.apiVersions)
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			got := monitoringObjects(helmTemplate(t, nil, args...))
			if !slices.Equal(got, c.want) {
				t.Errorf("monitoring objects %v, want %v", got, c.want)
			}
		})
	}

	out := helmTemplateErr(t, "--set", "prometheusRule.enabled=yes")
	if !strings.Contains(out, "prometheusRule") || !strings.Contains(out, "enabled") {
		t.Errorf("helm accepted prometheusRule.enabled=yes, or its error does not name the value:\n%s", out)
	}
}
