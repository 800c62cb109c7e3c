package controllers

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/probes"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// historySaveInterval is how often a tenant's uptime history is saved, so that a manager restart
// loses at most this much of it (a gap, which counts neither up nor down).
const historySaveInterval = 10 * time.Minute

// uptimeMonitor probes every tenant's URL and database on its interval and keeps its uptime
// history. It runs on the leader (the probe scheduler is a Runnable); when a tenant's status is
// due a write it wakes the Tenant reconciler, which sets the conditions and status.uptime in its
// monitoring step, so status is still written in one place, at most once a minute per tenant.
type uptimeMonitor struct {
	scheduler *probes.Scheduler
	http      *probes.HTTPProber
	database  *probes.PostgresProber
	clock     clock.WithTicker
	metrics   *metrics.Metrics
	wake      chan event.GenericEvent

	mu      sync.Mutex
	tenants map[string]*tenantUptime
}

// tenantUptime is what the monitor knows of one tenant.
type tenantUptime struct {
	history  uptime.History
	loaded   bool
	gate     uptime.WriteGate
	savedAt  time.Time
	http     *probes.Result
	database *probes.Result
	// target and databaseTarget are what is being probed, to tell when they change.
	target, databaseTarget string
}

func newUptimeMonitor(opts Options, m *metrics.Metrics) *uptimeMonitor {
	c := opts.Clock
	if c == nil {
		c = clock.RealClock{}
	}
	u := &uptimeMonitor{
		http:     probes.NewHTTPProber(probes.HTTPOptions{RootCAs: opts.ProbeRootCAs, Clock: c}),
		database: probes.NewPostgresProber(probes.PostgresOptions{Clock: c}),
		clock:    c,
		metrics:  m,
		wake:     make(chan event.GenericEvent, 1024),
		tenants:  map[string]*tenantUptime{},
	}
	u.scheduler = probes.NewScheduler(probes.SchedulerOptions{Clock: c}, u.deliver)
	return u
}

func (u *uptimeMonitor) tenant(name string) *tenantUptime {
	tu := u.tenants[name]
	if tu == nil {
		tu = &tenantUptime{}
		u.tenants[name] = tu
	}
	return tu
}

// deliver records a probe's result; keys are "http/<tenant>" and "database/<tenant>".
func (u *uptimeMonitor) deliver(key string, r probes.Result) {
	kind, name, _ := strings.Cut(key, "/")
	u.metrics.ObserveProbe(name, kind, r.Latency)
	u.mu.Lock()
	tu := u.tenant(name)
	if kind == "http" {
		tu.http = &r
		tu.history.Record(r.Time, r.Success)
	} else {
		tu.database = &r
	}
	due := tu.gate.Due(u.clock.Now(), tu.up())
	u.mu.Unlock()
	if due {
		tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
		select {
		case u.wake <- event.GenericEvent{Object: tenant}:
		default: // the reconciler is behind; the next result wakes it again
		}
	}
}

// up is whether the tenant answered its last probes: the URL, and the database once it is probed.
func (tu *tenantUptime) up() bool {
	return tu.http != nil && tu.http.Success && (tu.database == nil || tu.database.Success)
}

// forget stops probing a deleted tenant.
func (u *uptimeMonitor) forget(name string) {
	u.scheduler.Remove("http/" + name)
	u.scheduler.Remove("database/" + name)
	u.mu.Lock()
	delete(u.tenants, name)
	u.mu.Unlock()
}

// monitoringURL is the URL probed for a tenant: spec.monitoring.url, else its first hostname that
// is not a wildcard.
func monitoringURL(t *v1alpha1.Tenant) string {
	if m := t.Spec.Monitoring; m != nil && m.URL != "" {
		return m.URL
	}
	for _, h := range t.Spec.Hostnames {
		if !strings.HasPrefix(h, "*.") {
			return "https://" + h + "/"
		}
	}
	return ""
}

func monitoringInterval(t *v1alpha1.Tenant) time.Duration {
	if m := t.Spec.Monitoring; m != nil && m.Interval != nil && m.Interval.Duration >= 5*time.Second {
		return m.Interval.Duration
	}
	return 30 * time.Second
}

// reconcileMonitoring keeps the tenant's probes as its spec says and, when a write is due, sets
// Available, UptimeObjectiveMet and status.uptime. They describe the tenant's own service, so they
// do not make the environment's Ready False: a tenant that has not deployed its application yet
// is not a broken environment. Alerts watch them instead.
func (r *TenantReconciler) reconcileMonitoring(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	u := r.uptime
	if u == nil {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionAvailable, metav1.ConditionUnknown, v1alpha1.ReasonNotMonitored, "Uptime probes are turned off in the operator")
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionUptimeObjectiveMet)
		return ctrl.Result{}, nil
	}
	objective, err := uptime.ObjectiveFor(t.Spec.Monitoring)
	if err != nil {
		// Admission refuses this; a spec that slipped by is the owner's to fix.
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionUptimeObjectiveMet, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, nil
	}
	target := monitoringURL(t)
	if target == "" {
		u.forget(t.Name)
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionAvailable, metav1.ConditionUnknown, v1alpha1.ReasonNotMonitored,
			"Every hostname is a wildcard; set spec.monitoring.url to say what to probe")
		return ctrl.Result{}, nil
	}
	interval := monitoringInterval(t)
	if err := r.loadHistory(ctx, t); err != nil {
		return ctrl.Result{}, err
	}
	dbTarget, dbKey, err := r.databaseProbeTarget(ctx, t, s)
	if err != nil {
		return ctrl.Result{}, err
	}

	u.mu.Lock()
	tu := u.tenant(t.Name)
	httpKey := fmt.Sprintf("%s@%s", target, interval)
	setHTTP := tu.target != httpKey
	tu.target = httpKey
	setDB := tu.databaseTarget != dbKey
	tu.databaseTarget = dbKey
	if setDB && dbKey == "" {
		tu.database = nil
	}
	u.mu.Unlock()
	if setHTTP {
		if err := u.scheduler.Set(probes.Target{Key: "http/" + t.Name, Interval: interval,
			Probe: func(ctx context.Context) probes.Result { return u.http.Probe(ctx, target) }}); err != nil {
			return ctrl.Result{}, fmt.Errorf("schedule probes of %s: %w", target, err)
		}
	}
	if setDB {
		if dbKey == "" {
			u.scheduler.Remove("database/" + t.Name)
		} else if err := u.scheduler.Set(probes.Target{Key: "database/" + t.Name, Interval: interval,
			Probe: func(ctx context.Context) probes.Result { return u.database.Probe(ctx, dbTarget) }}); err != nil {
			return ctrl.Result{}, fmt.Errorf("schedule database probes: %w", err)
		}
	}

	now := r.clock().Now()
	u.mu.Lock()
	up := tu.up()
	generationChanged := conditionGenerationStale(t, v1alpha1.ConditionAvailable)
	due := tu.http != nil && (tu.gate.Due(now, up) || generationChanged)
	var summary uptime.Summary
	var httpResult, dbResult probes.Result
	if due {
		summary = uptime.Summarize(&tu.history, objective, now)
		httpResult = *tu.http
		if tu.database != nil {
			dbResult = *tu.database
		}
	}
	saveHistory := due && now.Sub(tu.savedAt) >= historySaveInterval
	var history []byte
	if saveHistory {
		history, err = tu.history.MarshalBinary()
	}
	u.mu.Unlock()
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("encode uptime history: %w", err)
	}

	if !due {
		if meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionAvailable) == nil {
			setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionAvailable, metav1.ConditionUnknown, v1alpha1.ReasonProgressing,
				fmt.Sprintf("Waiting for the first probe of %s", target))
		}
		return ctrl.Result{}, nil
	}
	reason, message := httpResult.Reason, fmt.Sprintf("%s answered HTTP %d in %s", target, httpResult.StatusCode, httpResult.Latency.Round(time.Millisecond))
	if !httpResult.Success {
		message = fmt.Sprintf("%s: %s", target, httpResult.Message)
	} else if dbResult.Reason != "" && !dbResult.Success {
		reason, message = dbResult.Reason, "database: "+dbResult.Message
	}
	available := uptime.AvailableCondition(up, reason, message)
	// The latency changes every probe; the condition's message is written only with a change of
	// state, so that a steady tenant's status stays the same.
	if old := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionAvailable); old != nil && old.Status == available.Status && old.Reason == available.Reason && up {
		available.Message = old.Message
	}
	setCondition(&t.Status.Conditions, t.Generation, available.Type, available.Status, available.Reason, available.Message)
	oc := summary.ObjectiveCondition()
	setCondition(&t.Status.Conditions, t.Generation, oc.Type, oc.Status, oc.Reason, oc.Message)
	if t.Status.Uptime == nil {
		t.Status.Uptime = &v1alpha1.UptimeStatus{}
	}
	summary.Apply(t.Status.Uptime)
	t.Status.Uptime.LastProbeTime = &metav1.Time{Time: httpResult.Time}
	t.Status.Uptime.LastProbeSucceeded = up
	r.metrics().SetUptime(t.Name, metrics.TenantUptime{
		Up: up, Day: summary.Day, Week: summary.Week, Month: summary.Month,
		Objective: summary.Objective.Ratio(), BudgetRemaining: summary.Evaluation.BudgetRemaining, Probed: summary.Evaluation.Total > 0,
		CertificateNotAfter: httpResult.CertificateNotAfter,
	})
	u.mu.Lock()
	tu.gate.Wrote(now, up)
	u.mu.Unlock()
	if saveHistory {
		if err := r.apply(ctx, "config map", builders.UptimeHistoryName(t), builders.UptimeHistory(t, r.builderOptions(), history)); err != nil {
			return ctrl.Result{}, err
		}
		u.mu.Lock()
		tu.savedAt = now
		u.mu.Unlock()
	}
	return ctrl.Result{}, nil
}

// conditionGenerationStale tells whether a condition was set for an older generation.
func conditionGenerationStale(t *v1alpha1.Tenant, conditionType string) bool {
	c := meta.FindStatusCondition(t.Status.Conditions, conditionType)
	return c != nil && c.ObservedGeneration != t.Generation
}

// databaseProbeTarget is the tenant's database as its own clients reach it, with its credentials
// and CA, once the database is ready; empty before.
func (r *TenantReconciler) databaseProbeTarget(ctx context.Context, t *v1alpha1.Tenant, s *tenantScope) (probes.DatabaseTarget, string, error) {
	if s.namespaceBlocked || !meta.IsStatusConditionTrue(t.Status.Conditions, v1alpha1.ConditionDatabaseReady) {
		return probes.DatabaseTarget{}, "", nil
	}
	ns := builders.NamespaceName(t)
	creds, tlsSecret := &corev1.Secret{}, &corev1.Secret{}
	for name, into := range map[string]*corev1.Secret{builders.DatabaseSecretName(t): creds, builders.DatabaseTLSSecretName(t): tlsSecret} {
		if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, into); err != nil {
			if apierrors.IsNotFound(err) {
				return probes.DatabaseTarget{}, "", nil
			}
			return probes.DatabaseTarget{}, "", fmt.Errorf("get secret %s: %w", name, err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(tlsSecret.Data[builders.DatabaseCAKey]) {
		return probes.DatabaseTarget{}, "", nil
	}
	target := probes.DatabaseTarget{
		Host:     builders.DatabaseHost(t),
		Port:     builders.DatabasePort,
		Database: string(creds.Data[builders.SecretKeyDatabase]),
		User:     string(creds.Data[builders.SecretKeyUsername]),
		Password: string(creds.Data[builders.SecretKeyPassword]),
		RootCAs:  pool,
	}
	// The key changes with the credentials' and certificate's versions, so a rotated CA is used.
	return target, creds.ResourceVersion + "/" + tlsSecret.ResourceVersion, nil
}

// loadHistory reads the tenant's saved uptime history once per manager run, so a restart keeps
// the windows (the time it was down is a gap).
func (r *TenantReconciler) loadHistory(ctx context.Context, t *v1alpha1.Tenant) error {
	u := r.uptime
	u.mu.Lock()
	loaded := u.tenant(t.Name).loaded
	u.mu.Unlock()
	if loaded {
		return nil
	}
	cm := &corev1.ConfigMap{}
	err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.UptimeHistoryName(t)}, cm)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get uptime history: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	tu := u.tenant(t.Name)
	if err == nil {
		var saved uptime.History
		if uerr := saved.UnmarshalBinary(cm.BinaryData[builders.UptimeHistoryKey]); uerr != nil {
			ctrl.LoggerFrom(ctx).Error(uerr, "Uptime history unreadable; starting a new one")
		} else {
			// No probe has been recorded yet: the tenant's probes are scheduled only after this.
			tu.history = saved
		}
	}
	tu.loaded = true
	return nil
}
