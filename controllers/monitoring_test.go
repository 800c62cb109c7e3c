package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// TestUptimeIsProbedAndReported probes a real local HTTPS server as a tenant's URL, moving the
// injected clock through probe intervals: the tenant becomes Available with its uptime in status;
// when the server fails, Available turns False at once with the reason, and the uptime ratio
// falls; after ten minutes of probes the history is saved in the operator's namespace. Available
// is about the tenant's service and does not make the environment's Ready False.
func TestUptimeIsProbedAndReported(t *testing.T) {
	ctx := context.Background()
	probeTargetDown.Store(false)
	tenant := minimalTenant("monitored")
	tenant.Spec.Monitoring = &v1alpha1.MonitoringSpec{URL: probeTarget.URL + "/health", Interval: &metav1.Duration{Duration: 5 * time.Second}, Objective: "99.9"}
	createTenant(t, tenant)

	// The probe scheduler runs on the injected clock: each step is one probe turn.
	step := func() { testClock.SetTime(testClock.Now().Add(5 * time.Second)) }
	expectConditionWhile(t, tenant, step, v1alpha1.ConditionAvailable, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "succeeded")
	eventuallyWhile(t, step, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		u := tenant.Status.Uptime
		if u == nil || u.Ratio24h != "100" || !u.LastProbeSucceeded || u.LastProbeTime == nil {
			return fmt.Errorf("status.uptime = %+v", u)
		}
		return nil
	})
	expectConditionWhile(t, tenant, step, v1alpha1.ConditionUptimeObjectiveMet, metav1.ConditionTrue, v1alpha1.ReasonObjectiveMet, "99.9")

	probeTargetDown.Store(true)
	expectConditionWhile(t, tenant, step, v1alpha1.ConditionAvailable, metav1.ConditionFalse, v1alpha1.ReasonProbeFailed, "503")
	eventuallyWhile(t, step, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if u := tenant.Status.Uptime; u == nil || u.Ratio24h == "100" || u.LastProbeSucceeded {
			return fmt.Errorf("status.uptime = %+v after failures", u)
		}
		return nil
	})
	if c, err := conditionOf(ctx, tenant, v1alpha1.ConditionReady); err != nil || strings.Contains(c.Message, "Available") {
		t.Errorf("Ready %+v (%v) must not summarize Available", c, err)
	}

	// Ten minutes of probes later the history is saved, so a restart keeps the windows.
	probeTargetDown.Store(false)
	testClock.SetTime(testClock.Now().Add(11 * time.Minute))
	eventuallyWhile(t, step, func() error {
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "tenant-monitored-uptime"}, cm); err != nil {
			return err
		}
		if len(cm.BinaryData["history"]) < 4 {
			return fmt.Errorf("history %d bytes", len(cm.BinaryData["history"]))
		}
		return nil
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
