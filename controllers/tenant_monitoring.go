package controllers

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/probes"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// reconcileMonitoring keeps the tenant's probes as its spec says and shows what the Monitor reports.
// It sets Available, UptimeObjectiveMet and status.uptime. The Monitor wakes the tenant when its
// report changes, so a pass between changes writes nothing.
func (r *TenantReconciler) reconcileMonitoring(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	var o tenantstatus.MonitoringObservation
	defer func() {
		tenantstatus.SetAvailable(t, o)
		tenantstatus.SetUptimeObjectiveMet(t, o)
	}()
	objective, err := uptime.ObjectiveFor(t.Spec.Monitoring)
	o.URL = monitoringURL(t)
	switch {
	case r.monitor == nil:
		o.NotMonitored = "Uptime probes are turned off in the operator"
		t.Status.Uptime = nil
		return ctrl.Result{}, nil
	case err != nil:
		o.InvalidObjective = err
		return ctrl.Result{}, nil
	case o.URL == "":
		r.monitor.Forget(t.Name)
		o.NotMonitored = "Every hostname is a wildcard; set spec.monitoring.url to say what to probe"
		t.Status.Uptime = nil
		return ctrl.Result{}, nil
	}
	targets := uptime.Targets{URL: o.URL, Interval: monitoringInterval(t), Objective: objective}
	if s.databaseReady && !r.Options.DisableDatabaseProbes {
		if targets.Database, targets.DatabaseKey, err = r.databaseProbeTarget(ctx, t); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.monitor.Track(t.Name, targets); err != nil {
		return ctrl.Result{}, err
	}
	o.Report = r.monitor.Report(t.Name)
	previous := t.Status.Uptime
	st := &v1alpha1.UptimeStatus{DetectionSeconds: int32(uptime.DetectionTime(targets.Interval).Seconds())}
	switch {
	case previous != nil && tenantstatus.KeepsAvailable(t, o):
		// What an earlier process saw stands (see KeepsAvailable), and with it since when.
		st.DownSince = previous.DownSince
	case o.Report.State == uptime.Down:
		// At the second, as the API server stores it: a finer time would differ from the stored
		// one on every pass and be written again.
		st.DownSince = &metav1.Time{Time: o.Report.Since.Truncate(time.Second)}
	}
	switch f := o.Report.Figures; {
	case f != nil:
		f.ApplyTo(st)
	case tenantstatus.KeepsUptimeFigures(t, o):
		st.Ratio24h, st.Ratio7d, st.Ratio30d, st.ErrorBudgetRemaining = previous.Ratio24h, previous.Ratio7d, previous.Ratio30d, previous.ErrorBudgetRemaining
	}
	t.Status.Uptime = st
	return ctrl.Result{}, nil
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

// monitoringInterval is spec.monitoring.interval, or the Monitor's default.
func monitoringInterval(t *v1alpha1.Tenant) time.Duration {
	if m := t.Spec.Monitoring; m != nil && m.Interval != nil && m.Interval.Duration >= 5*time.Second {
		return m.Interval.Duration
	}
	return uptime.DefaultInterval
}

// databaseProbeTarget is the tenant's database as its own clients reach it, logged in as the
// login-only probe role, with the database's CA; nil until both Secrets exist. Its key changes with
// the Secrets' versions, so a rotated CA is used.
func (r *TenantReconciler) databaseProbeTarget(ctx context.Context, t *v1alpha1.Tenant) (*probes.DatabaseTarget, string, error) {
	creds, tlsSecret := &corev1.Secret{}, &corev1.Secret{}
	for key, into := range map[types.NamespacedName]*corev1.Secret{
		{Namespace: r.Options.OperatorNamespace, Name: builders.ProbeSecretName(t)}:     creds,
		{Namespace: builders.NamespaceName(t), Name: builders.DatabaseTLSSecretName(t)}: tlsSecret,
	} {
		if err := r.Get(ctx, key, into); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, "", nil
			}
			return nil, "", fmt.Errorf("get secret %s: %w", key.Name, err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(tlsSecret.Data[builders.DatabaseCAKey]) {
		return nil, "", nil
	}
	return &probes.DatabaseTarget{
		Host:     builders.DatabaseHost(t),
		Port:     builders.DatabasePort,
		Database: builders.ProbeDatabase,
		User:     builders.ProbeRoleName,
		Password: string(creds.Data[builders.ProbeSecretKeyPassword]),
		RootCAs:  pool,
	}, creds.ResourceVersion + "/" + tlsSecret.ResourceVersion, nil
}
