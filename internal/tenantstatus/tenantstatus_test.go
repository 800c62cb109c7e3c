package tenantstatus

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// want is a condition as a setter must leave it.
type want struct {
	status          metav1.ConditionStatus
	reason, message string // message: a part of it
}

// setterCase is one row of a setter's table: what the step observed, and the condition.
type setterCase struct {
	name string
	set  func(*v1alpha1.Tenant)
	want want
}

// runSetterCases applies each row's setter to a tenant and checks conditionType. The tenant starts
// with the opposite condition from an earlier pass, which the setter must not carry over.
func runSetterCases(t *testing.T, conditionType string, cases []setterCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			tenant.Status.Conditions = []metav1.Condition{{Type: conditionType, Status: metav1.ConditionTrue, Reason: "FromAnEarlierPass", Message: "stale", ObservedGeneration: 2}}
			tc.set(tenant)
			c := meta.FindStatusCondition(tenant.Status.Conditions, conditionType)
			if c == nil {
				t.Fatalf("%s not set", conditionType)
			}
			if c.Status != tc.want.status || c.Reason != tc.want.reason || !strings.Contains(c.Message, tc.want.message) || c.ObservedGeneration != 3 {
				t.Errorf("%s = %s %s %q (generation %d), want %s %s containing %q (generation 3)",
					conditionType, c.Status, c.Reason, c.Message, c.ObservedGeneration, tc.want.status, tc.want.reason, tc.want.message)
			}
		})
	}
}

var errApply = errors.New("apply network policy default-deny: connection refused")

func TestSetNamespaceReady(t *testing.T) {
	runSetterCases(t, v1alpha1.ConditionNamespaceReady, []setterCase{
		{"ready", func(tn *v1alpha1.Tenant) { SetNamespaceReady(tn, NamespaceObservation{Name: "tenant-acme"}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "tenant-acme with Pod Security restricted"}},
		{"someone else's", func(tn *v1alpha1.Tenant) {
			SetNamespaceReady(tn, NamespaceObservation{Name: "tenant-acme", Conflict: true})
		},
			want{metav1.ConditionFalse, v1alpha1.ReasonNamespaceConflict, "does not belong to this tenant"}},
		{"still terminating", func(tn *v1alpha1.Tenant) {
			SetNamespaceReady(tn, NamespaceObservation{Name: "tenant-acme", Terminating: true})
		},
			want{metav1.ConditionFalse, v1alpha1.ReasonNamespaceTerminating, "still being deleted"}},
		{"apply failed", func(tn *v1alpha1.Tenant) {
			SetNamespaceReady(tn, NamespaceObservation{Name: "tenant-acme", Err: errApply})
		},
			want{metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "connection refused"}},
	})
}

func TestSetAccessReady(t *testing.T) {
	runSetterCases(t, v1alpha1.ConditionAccessReady, []setterCase{
		{"bound", func(tn *v1alpha1.Tenant) { SetAccessReady(tn, AccessObservation{Admins: 1, Viewers: 2}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "1 admins, 0 editors, 2 viewers bound"}},
		{"nobody", func(tn *v1alpha1.Tenant) { SetAccessReady(tn, AccessObservation{}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonNoSubjects, "nobody has access"}},
		{"waiting for the namespace", func(tn *v1alpha1.Tenant) { SetAccessReady(tn, AccessObservation{Blocked: true, Admins: 1}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, waitingForNamespace}},
		{"apply failed", func(tn *v1alpha1.Tenant) { SetAccessReady(tn, AccessObservation{Err: errApply, Admins: 1}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "connection refused"}},
	})
}

func TestSetDatabaseReady(t *testing.T) {
	runSetterCases(t, v1alpha1.ConditionDatabaseReady, []setterCase{
		{"ready", func(tn *v1alpha1.Tenant) {
			SetDatabaseReady(tn, DatabaseObservation{Ready: true, Version: "17", Host: "postgres.tenant-acme.svc"})
		}, want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "PostgreSQL 17 ready at postgres.tenant-acme.svc"}},
		{"no cert-manager", func(tn *v1alpha1.Tenant) { SetDatabaseReady(tn, DatabaseObservation{CertManagerMissing: true}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonCertManagerMissing, "cannot be issued"}},
		{"ready even without cert-manager's CRDs now", func(tn *v1alpha1.Tenant) {
			SetDatabaseReady(tn, DatabaseObservation{Ready: true, CertManagerMissing: true, Version: "17"})
		}, want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "PostgreSQL 17"}},
		{"claim pending", func(tn *v1alpha1.Tenant) {
			SetDatabaseReady(tn, DatabaseObservation{WaitReason: v1alpha1.ReasonPVCPending, WaitMessage: "Volume claim data-postgres-0 is pending"})
		}, want{metav1.ConditionFalse, v1alpha1.ReasonPVCPending, "pending"}},
		{"waiting for the namespace", func(tn *v1alpha1.Tenant) { SetDatabaseReady(tn, DatabaseObservation{Blocked: true}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, waitingForNamespace}},
		{"apply failed", func(tn *v1alpha1.Tenant) { SetDatabaseReady(tn, DatabaseObservation{Err: errApply}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "connection refused"}},
	})
}

func TestSetFirewallReady(t *testing.T) {
	runSetterCases(t, v1alpha1.ConditionFirewallReady, []setterCase{
		{"applied", func(tn *v1alpha1.Tenant) { SetFirewallReady(tn, FirewallObservation{Policies: 5}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "5 network policies"}},
		{"waiting", func(tn *v1alpha1.Tenant) { SetFirewallReady(tn, FirewallObservation{Blocked: true}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, waitingForNamespace}},
		{"failed", func(tn *v1alpha1.Tenant) { SetFirewallReady(tn, FirewallObservation{Err: errApply}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "default-deny"}},
	})
}

func TestSetCertificateReady(t *testing.T) {
	issuer := v1alpha1.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer"}
	runSetterCases(t, v1alpha1.ConditionCertificateReady, []setterCase{
		{"issued", func(tn *v1alpha1.Tenant) {
			SetCertificateReady(tn, CertificateObservation{Issuer: issuer, IssuerReady: true, Issued: true, Hostnames: []string{"acme.example.com"}})
		}, want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "acme.example.com issued by ClusterIssuer letsencrypt"}},
		{"no issuer configured", func(tn *v1alpha1.Tenant) { SetCertificateReady(tn, CertificateObservation{}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonIssuerNotFound, "--default-issuer-name"}},
		{"no cert-manager", func(tn *v1alpha1.Tenant) {
			SetCertificateReady(tn, CertificateObservation{Issuer: issuer, CertManagerMissing: true})
		},
			want{metav1.ConditionFalse, v1alpha1.ReasonCertManagerMissing, "CRDs are missing"}},
		{"issuer missing", func(tn *v1alpha1.Tenant) {
			SetCertificateReady(tn, CertificateObservation{Issuer: issuer, IssuerMissing: true})
		},
			want{metav1.ConditionFalse, v1alpha1.ReasonIssuerNotFound, `ClusterIssuer "letsencrypt" not found`}},
		{"issuer not ready", func(tn *v1alpha1.Tenant) { SetCertificateReady(tn, CertificateObservation{Issuer: issuer}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonIssuerNotReady, "is not ready"}},
		{"waiting for cert-manager", func(tn *v1alpha1.Tenant) {
			SetCertificateReady(tn, CertificateObservation{Issuer: issuer, IssuerReady: true, Pending: "Issuing certificate as Secret does not exist"})
		}, want{metav1.ConditionFalse, v1alpha1.ReasonCertificateNotIssued, "Issuing certificate"}},
		{"apply failed", func(tn *v1alpha1.Tenant) {
			SetCertificateReady(tn, CertificateObservation{Issuer: issuer, Err: errApply})
		},
			want{metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "connection refused"}},
		{"waiting for the namespace", func(tn *v1alpha1.Tenant) { SetCertificateReady(tn, CertificateObservation{Blocked: true}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, waitingForNamespace}},
	})
}

func TestSetRouteReady(t *testing.T) {
	ingress := v1alpha1.RouteSpec{Kind: v1alpha1.RouteKindIngress, ServiceName: "web", Port: 80}
	gateway := v1alpha1.RouteSpec{Kind: v1alpha1.RouteKindHTTPRoute, ServiceName: "web", Port: 80,
		GatewayRef: &v1alpha1.GatewayReference{Namespace: "gateways", Name: "public"}}
	hosts := []string{"acme.example.com"}
	runSetterCases(t, v1alpha1.ConditionRouteReady, []setterCase{
		{"ingress", func(tn *v1alpha1.Tenant) { SetRouteReady(tn, RouteObservation{Route: ingress, Hostnames: hosts}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Ingress for acme.example.com to Service web port 80"}},
		{"none", func(tn *v1alpha1.Tenant) {
			SetRouteReady(tn, RouteObservation{Route: v1alpha1.RouteSpec{Kind: v1alpha1.RouteKindNone}})
		},
			want{metav1.ConditionTrue, v1alpha1.ReasonNoRoute, "routes its hostnames itself"}},
		{"accepted", func(tn *v1alpha1.Tenant) {
			SetRouteReady(tn, RouteObservation{Route: gateway, Hostnames: hosts, Accepted: true})
		},
			want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "accepted by Gateway gateways/public"}},
		{"refused", func(tn *v1alpha1.Tenant) {
			SetRouteReady(tn, RouteObservation{Route: gateway, Hostnames: hosts, Refused: "Accepted NotAllowedByListeners: no listener"})
		}, want{metav1.ConditionFalse, v1alpha1.ReasonRouteNotAccepted, "NotAllowedByListeners"}},
		{"waiting for the gateway", func(tn *v1alpha1.Tenant) { SetRouteReady(tn, RouteObservation{Route: gateway, Hostnames: hosts}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonProgressing, "Waiting for Gateway gateways/public"}},
		{"no gateway API", func(tn *v1alpha1.Tenant) {
			SetRouteReady(tn, RouteObservation{Route: gateway, GatewayAPIMissing: true})
		},
			want{metav1.ConditionFalse, v1alpha1.ReasonGatewayAPIMissing, "not installed"}},
		{"apply failed", func(tn *v1alpha1.Tenant) { SetRouteReady(tn, RouteObservation{Route: ingress, Err: errApply}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "connection refused"}},
	})
}

func TestSetPoliciesResolved(t *testing.T) {
	runSetterCases(t, v1alpha1.ConditionPoliciesResolved, []setterCase{
		{"resolved", func(tn *v1alpha1.Tenant) { SetPoliciesResolved(tn, PoliciesObservation{}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "exist and are ready"}},
		{"no backup policy", func(tn *v1alpha1.Tenant) { SetPoliciesResolved(tn, PoliciesObservation{NoBackupPolicy: true}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonNoPolicy, "not backed up"}},
		{"missing", func(tn *v1alpha1.Tenant) {
			SetPoliciesResolved(tn, PoliciesObservation{Reason: v1alpha1.ReasonPolicyNotFound, Problems: []string{`BackupPolicy "x" not found`}})
		}, want{metav1.ConditionFalse, v1alpha1.ReasonPolicyNotFound, `"x" not found`}},
		{"unreadable", func(tn *v1alpha1.Tenant) { SetPoliciesResolved(tn, PoliciesObservation{Err: errApply}) },
			want{metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "Cannot read"}},
	})
}

func TestSetBackupConditions(t *testing.T) {
	verdict := &backupcheck.Verdict{
		Fresh:    metav1.Condition{Type: v1alpha1.ConditionBackupsFresh, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonStale, Message: "hot: newest backup b1 finished 2026-12-01T00:00:00Z"},
		Verified: metav1.Condition{Type: v1alpha1.ConditionBackupVerified, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonVerified, Message: "hot: backup b1 verified"},
	}
	runSetterCases(t, v1alpha1.ConditionBackupsFresh, []setterCase{
		{"judged", func(tn *v1alpha1.Tenant) { SetBackupsFresh(tn, BackupsObservation{Verdict: verdict}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonStale, "newest backup b1"}},
		{"no policy", func(tn *v1alpha1.Tenant) { SetBackupsFresh(tn, BackupsObservation{NoPolicy: true}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonNoPolicy, "not backed up"}},
		{"policy unavailable", func(tn *v1alpha1.Tenant) { SetBackupsFresh(tn, BackupsObservation{UnavailablePolicy: "standard"}) },
			want{metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady, `"standard" is not available`}},
		{"schedules failed to apply", func(tn *v1alpha1.Tenant) { SetBackupsFresh(tn, BackupsObservation{Err: errApply}) },
			want{metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, "connection refused"}},
	})
	runSetterCases(t, v1alpha1.ConditionBackupVerified, []setterCase{
		{"judged", func(tn *v1alpha1.Tenant) { SetBackupVerified(tn, BackupsObservation{Verdict: verdict}) },
			want{metav1.ConditionTrue, v1alpha1.ReasonVerified, "verified"}},
		{"no policy", func(tn *v1alpha1.Tenant) { SetBackupVerified(tn, BackupsObservation{NoPolicy: true}) },
			want{metav1.ConditionUnknown, v1alpha1.ReasonNoPolicy, "No BackupPolicy"}},
		{"schedules failed to apply", func(tn *v1alpha1.Tenant) { SetBackupVerified(tn, BackupsObservation{Err: errApply}) },
			want{metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady, "backup schedules"}},
	})
}

func TestSetMonitoringConditions(t *testing.T) {
	since := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	url := "https://acme.example.com/"
	figures := &uptime.Figures{Objective: metav1.Condition{Type: v1alpha1.ConditionUptimeObjectiveMet, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonObjectiveMet, Message: "Availability 100 %"}}
	runSetterCases(t, v1alpha1.ConditionAvailable, []setterCase{
		{"down", func(tn *v1alpha1.Tenant) {
			SetAvailable(tn, MonitoringObservation{URL: url, Report: uptime.Report{State: uptime.Down, Since: since, Reason: "HTTPStatus", Message: "503"}})
		}, want{metav1.ConditionFalse, v1alpha1.ReasonDown, "has not answered since 2026-12-02T10:00:00Z"}},
		{"up", func(tn *v1alpha1.Tenant) {
			SetAvailable(tn, MonitoringObservation{URL: url, Report: uptime.Report{State: uptime.Up}})
		},
			want{metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "answers"}},
		{"not probed yet", func(tn *v1alpha1.Tenant) { SetAvailable(tn, MonitoringObservation{URL: url}) },
			want{metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "Waiting for the first probes"}},
		{"probes off", func(tn *v1alpha1.Tenant) {
			SetAvailable(tn, MonitoringObservation{NotMonitored: "Uptime probes are turned off"})
		},
			want{metav1.ConditionUnknown, v1alpha1.ReasonNotMonitored, "turned off"}},
	})
	runSetterCases(t, v1alpha1.ConditionUptimeObjectiveMet, []setterCase{
		{"published", func(tn *v1alpha1.Tenant) {
			SetUptimeObjectiveMet(tn, MonitoringObservation{URL: url, Report: uptime.Report{Figures: figures}})
		},
			want{metav1.ConditionTrue, v1alpha1.ReasonObjectiveMet, "100 %"}},
		{"no figures yet", func(tn *v1alpha1.Tenant) { SetUptimeObjectiveMet(tn, MonitoringObservation{URL: url}) },
			want{metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "first probes"}},
		{"invalid objective", func(tn *v1alpha1.Tenant) {
			SetUptimeObjectiveMet(tn, MonitoringObservation{InvalidObjective: errors.New(`spec.monitoring.objective: "abc" is not a percentage`)})
		}, want{metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "spec.monitoring.objective"}},
	})
}

// A restarted manager's Monitor has no verdict of its own at first; what the previous process
// observed of the same generation stands until this one learns better, and nothing older or of
// another generation does.
func TestMonitoringObservationsOutliveARestart(t *testing.T) {
	url := "https://acme.example.com/"
	downSince := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	up := metav1.Condition{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonProbeSucceeded,
		Message: url + " answers again since 2026-12-02T10:05:00Z, after 5m0s down"}
	down := metav1.Condition{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonDown,
		Message: url + " has not answered since 2026-12-02T10:00:00Z"}
	waiting := metav1.Condition{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonProgressing,
		Message: "Waiting for the first probes of " + url}
	met := metav1.Condition{Type: v1alpha1.ConditionUptimeObjectiveMet, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonObjectiveMet, Message: "Availability 99.9 %"}
	figures := &uptime.Figures{Ratio24h: "100", Objective: metav1.Condition{Type: v1alpha1.ConditionUptimeObjectiveMet,
		Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonObjectiveMet, Message: "Availability 100 %"}}
	cases := []struct {
		name string
		// earlier is what the previous process left, at generation seenAt; the tenant is at 3.
		earlier     []metav1.Condition
		seenAt      int64
		o           MonitoringObservation
		available   want
		keptFigures bool
	}{
		{"no verdict yet, was up", []metav1.Condition{up, met}, 3, MonitoringObservation{URL: url},
			want{metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "after 5m0s down"}, true},
		{"no verdict yet, was down", []metav1.Condition{down, met}, 3, MonitoringObservation{URL: url},
			want{metav1.ConditionFalse, v1alpha1.ReasonDown, "since 2026-12-02T10:00:00Z"}, true},
		{"up without an outage seen, was up after one", []metav1.Condition{up, met}, 3,
			MonitoringObservation{URL: url, Report: uptime.Report{State: uptime.Up}},
			want{metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "after 5m0s down"}, true},
		{"down now, was down since earlier", []metav1.Condition{down, met}, 3,
			MonitoringObservation{URL: url, Report: uptime.Report{State: uptime.Down, Since: downSince.Add(time.Hour)}},
			want{metav1.ConditionFalse, v1alpha1.ReasonDown, "since 2026-12-02T10:00:00Z"}, true},
		{"down now, was up", []metav1.Condition{up, met}, 3,
			MonitoringObservation{URL: url, Report: uptime.Report{State: uptime.Down, Since: downSince.Add(time.Hour)}},
			want{metav1.ConditionFalse, v1alpha1.ReasonDown, "since 2026-12-02T11:00:00Z"}, true},
		{"up now, was down", []metav1.Condition{down, met}, 3,
			MonitoringObservation{URL: url, Report: uptime.Report{State: uptime.Up, Figures: figures}},
			want{metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "answers"}, false},
		{"another generation", []metav1.Condition{up, met}, 2, MonitoringObservation{URL: url},
			want{metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "Waiting for the first probes"}, false},
		{"never judged", []metav1.Condition{waiting}, 3, MonitoringObservation{URL: url},
			want{metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "Waiting for the first probes"}, false},
		{"probes turned off since", []metav1.Condition{up, met}, 3, MonitoringObservation{NotMonitored: "Uptime probes are turned off"},
			want{metav1.ConditionUnknown, v1alpha1.ReasonNotMonitored, "turned off"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
			tenant.Status.Uptime = &v1alpha1.UptimeStatus{Ratio24h: "99.9"}
			for _, c := range tc.earlier {
				c.ObservedGeneration = tc.seenAt
				tenant.Status.Conditions = append(tenant.Status.Conditions, c)
			}
			if got := KeepsUptimeFigures(tenant, tc.o); got != tc.keptFigures {
				t.Errorf("KeepsUptimeFigures = %v, want %v", got, tc.keptFigures)
			}
			SetAvailable(tenant, tc.o)
			SetUptimeObjectiveMet(tenant, tc.o)
			c := meta.FindStatusCondition(tenant.Status.Conditions, v1alpha1.ConditionAvailable)
			if c.Status != tc.available.status || c.Reason != tc.available.reason || !strings.Contains(c.Message, tc.available.message) || c.ObservedGeneration != 3 {
				t.Errorf("Available = %s/%s %q at generation %d, want %s/%s containing %q at 3",
					c.Status, c.Reason, c.Message, c.ObservedGeneration, tc.available.status, tc.available.reason, tc.available.message)
			}
			objective := meta.FindStatusCondition(tenant.Status.Conditions, v1alpha1.ConditionUptimeObjectiveMet)
			if kept := objective.Message == met.Message; kept != tc.keptFigures {
				t.Errorf("UptimeObjectiveMet %s %q: kept %v, want %v", objective.Reason, objective.Message, kept, tc.keptFigures)
			}
		})
	}
}

// A message longer than the API allows in a status would freeze the Tenant's status: every
// message is cut to a bound, at a character boundary.
func TestConditionMessagesAreBounded(t *testing.T) {
	long := strings.Repeat("storage unreachable: dial tcp 10.0.0.1:9000: i/o timeout; ", 200) + "€"
	tenant := &v1alpha1.Tenant{}
	SetFirewallReady(tenant, FirewallObservation{Err: errors.New(long)})
	c := meta.FindStatusCondition(tenant.Status.Conditions, v1alpha1.ConditionFirewallReady)
	if len(c.Message) > MaxMessage || !strings.HasSuffix(c.Message, "…") {
		t.Errorf("message of %d bytes, want at most %d ending in an ellipsis", len(c.Message), MaxMessage)
	}
	if got := Bound("a"+strings.Repeat("€", 1000), MaxMessage); !utf8.ValidString(got) || len(got) > MaxMessage {
		t.Errorf("bound cut inside a character, or too long: %d bytes", len(got))
	}
}

// A pass that reads a Tenant from a cache still missing the previous pass's status must compare
// against what was last reported, not against that stale copy, or it tells the same change twice.
func TestReportedRemembersWhatWasToldUntilDeletionIsDone(t *testing.T) {
	var reported Reported
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", Finalizers: []string{v1alpha1.TenantFinalizer}}}
	if got := reported.Swap(tenant); got != nil {
		t.Fatalf("first Swap = %v, want nil (nothing reported yet)", got)
	}
	tenant.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "DatabaseNotReady"}}
	if got := reported.Swap(tenant); len(got) != 0 {
		t.Fatalf("second Swap = %v, want the empty set reported first", got)
	}
	tenant.Status.Conditions[0] = metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready"}
	got := reported.Swap(tenant)
	if want := (State{metav1.ConditionFalse, "DatabaseNotReady"}); got[v1alpha1.ConditionReady] != want {
		t.Fatalf("third Swap = %v, want Ready %v", got, want)
	}
	now := metav1.Now()
	tenant.DeletionTimestamp, tenant.Finalizers = &now, nil
	if got := reported.Swap(tenant); got[v1alpha1.ConditionReady] != (State{metav1.ConditionTrue, "Ready"}) {
		t.Fatalf("Swap at deletion = %v, want the last report", got)
	}
	if got := reported.Swap(tenant); got != nil {
		t.Errorf("after deletion was done the tenant is still remembered: %v", got)
	}
}
