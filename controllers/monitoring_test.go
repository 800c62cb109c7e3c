package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// TestConvergedTenantsSendNothing: a converged tenant whose observed state does not change costs
// no request at all over several probe intervals, while its probes keep running, nor when
// something makes a pass over it: no apply, no status patch, no delete (a tenant with no users
// once cost two DeleteAllOf a pass). Counted at the operator's own client.
func TestConvergedTenantsSendNothing(t *testing.T) {
	ctx := context.Background()
	probeTargetDown.Store(false)
	step := func() { testClock.SetTime(testClock.Now().Add(5 * time.Second)) }
	var tenants []*v1alpha1.Tenant
	for _, name := range []string{"envtest-idle-nobody", "envtest-idle-users"} {
		tenant := minimalTenant(name)
		tenant.Spec.Monitoring = &v1alpha1.MonitoringSpec{URL: probeTarget.URL + "/" + name, Interval: &metav1.Duration{Duration: 5 * time.Second}}
		if name == "envtest-idle-users" {
			tenant.Spec.Access.Admins = []rbacv1.Subject{user("User", "idle-admin")}
		}
		createTenant(t, tenant)
		tenants = append(tenants, tenant)
	}
	// Converged: answering, with its first figures, and nothing left to write.
	for _, tenant := range tenants {
		expectConditionWhile(t, tenant, step, v1alpha1.ConditionAvailable, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "answers")
		expectConditionWhile(t, tenant, step, v1alpha1.ConditionUptimeObjectiveMet, metav1.ConditionTrue, v1alpha1.ReasonObjectiveMet, "")
	}
	parts := func(tenant *v1alpha1.Tenant) []string {
		return []string{"/tenants/" + tenant.Name, "/namespaces/tenant-" + tenant.Name + "/", "tenant-" + tenant.Name + "-", "tenant=" + tenant.Name}
	}
	eventually(t, 30*time.Second, func() error {
		mark := operatorRequests.mark()
		time.Sleep(2 * time.Second)
		for _, tenant := range tenants {
			if sent := operatorRequests.since(mark, parts(tenant)...); len(sent) > 0 {
				return fmt.Errorf("%s still converging: %v", tenant.Name, sent)
			}
		}
		return nil
	})

	mark := operatorRequests.mark()
	// Six probe intervals pass, every probe answered.
	for range 6 {
		step()
		time.Sleep(300 * time.Millisecond)
	}
	// And a pass over each, as a label change (or a resync) makes one.
	for _, tenant := range tenants {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"touched":"yes"}}}`))
		if err := k8s.Patch(ctx, tenant, patch); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	for _, tenant := range tenants {
		if sent := operatorRequests.since(mark, parts(tenant)...); len(sent) > 0 {
			t.Errorf("%s is converged, yet the operator sent %d requests: %v", tenant.Name, len(sent), sent)
		}
	}
}
