package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// TestUptimeIsProbedAndReported probes a real local HTTPS server as a tenant's URL, moving the
// injected clock through probe intervals: the tenant becomes Available with its uptime in status;
// when the server fails, two failed probes later Available turns False with reason Down and the
// time it went down, and a Warning event says so; the figures follow at the tenant's next
// ten-minute refresh; when it answers again, an event says how long it was down. The history is
// saved in the operator's namespace. Available is about the tenant's service and does not make the
// environment's Ready False.
func TestUptimeIsProbedAndReported(t *testing.T) {
	ctx := context.Background()
	probeTargetDown.Store(false)
	tenant := minimalTenant("monitored")
	tenant.Spec.Monitoring = &v1alpha1.MonitoringSpec{URL: probeTarget.URL + "/health", Interval: &metav1.Duration{Duration: 5 * time.Second}, Objective: "99.9"}
	createTenant(t, tenant)

	// The probe scheduler runs on the injected clock: each step is one probe turn.
	step := func() { testClock.SetTime(testClock.Now().Add(5 * time.Second)) }
	expectConditionWhile(t, tenant, step, v1alpha1.ConditionAvailable, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "answers")
	eventuallyWhile(t, step, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		// 2 probe intervals, the probe timeout and Prometheus' 60 s.
		if u := tenant.Status.Uptime; u == nil || u.Ratio24h != "100" || u.DownSince != nil || u.DetectionSeconds != 80 {
			return fmt.Errorf("status.uptime = %+v", u)
		}
		return nil
	})
	expectConditionWhile(t, tenant, step, v1alpha1.ConditionUptimeObjectiveMet, metav1.ConditionTrue, v1alpha1.ReasonObjectiveMet, "99.9")

	probeTargetDown.Store(true)
	wentDown := testClock.Now()
	expectConditionWhile(t, tenant, step, v1alpha1.ConditionAvailable, metav1.ConditionFalse, v1alpha1.ReasonDown, "503")
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
		t.Fatal(err)
	}
	if u := tenant.Status.Uptime; u == nil || u.DownSince == nil || u.DownSince.Time.Before(wentDown.Add(-time.Second)) {
		t.Errorf("status.uptime = %+v, want downSince at or after %v", u, wentDown)
	}
	expectEvent(t, tenant, corev1.EventTypeWarning, v1alpha1.ReasonDown, "has not answered since")
	if c, err := conditionOf(ctx, tenant, v1alpha1.ConditionReady); err != nil || strings.Contains(c.Message, "Available") {
		t.Errorf("Ready %+v (%v) must not summarize Available", c, err)
	}
	// The figures wait for the tenant's ten-minute refresh, then show the failures.
	testClock.SetTime(testClock.Now().Add(10 * time.Minute))
	eventuallyWhile(t, step, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if u := tenant.Status.Uptime; u == nil || u.Ratio24h == "100" {
			return fmt.Errorf("status.uptime = %+v after failures", u)
		}
		return nil
	})

	probeTargetDown.Store(false)
	expectConditionWhile(t, tenant, step, v1alpha1.ConditionAvailable, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "down")
	expectEvent(t, tenant, corev1.EventTypeNormal, v1alpha1.ReasonProbeSucceeded, "answers again since")

	// The histories are saved every ten minutes, in shared ConfigMaps of the operator's
	// namespace, so a restart keeps the windows.
	testClock.SetTime(testClock.Now().Add(11 * time.Minute))
	eventuallyWhile(t, step, func() error {
		list := &corev1.ConfigMapList{}
		if err := k8s.List(ctx, list, client.InNamespace(operatorNamespace), client.MatchingLabels{"app.kubernetes.io/component": "uptime-history"}); err != nil {
			return err
		}
		for _, cm := range list.Items {
			if len(cm.BinaryData["monitored"]) >= 4 {
				return nil
			}
		}
		return fmt.Errorf("no saved history of tenant monitored in %d shards", len(list.Items))
	})
}

// eventuallyWhile is eventually, calling step between attempts.
func eventuallyWhile(t *testing.T, step func(), check func() error) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		err := check()
		if err != nil {
			step()
			time.Sleep(200 * time.Millisecond)
		}
		return err
	})
}

func expectConditionWhile(t *testing.T, obj client.Object, step func(), conditionType string, status metav1.ConditionStatus, reason, messagePart string) {
	t.Helper()
	eventuallyWhile(t, step, func() error {
		c, err := conditionOf(context.Background(), obj, conditionType)
		if err != nil {
			return err
		}
		if c.Status != status || c.Reason != reason || !strings.Contains(c.Message, messagePart) {
			return fmt.Errorf("%s = %s/%s %q, want %s/%s containing %q", conditionType, c.Status, c.Reason, c.Message, status, reason, messagePart)
		}
		return nil
	})
}

// expectEvent waits for an event on obj of the type and reason whose note contains notePart.
func expectEvent(t *testing.T, obj client.Object, eventType, reason, notePart string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		list := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), list); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Name == obj.GetName() && e.Type == eventType && e.Reason == reason && strings.Contains(e.Note, notePart) {
				return nil
			}
		}
		return fmt.Errorf("no %s event %s containing %q on %s", eventType, reason, notePart, obj.GetName())
	})
}
