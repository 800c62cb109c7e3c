package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// webhookConfiguration is the name hack/dev-cluster gives our webhook configuration.
const webhookConfiguration = "tenant-operator-local"

// The webhook down (the operator runs without serving it): creates are refused by the webhook's
// failure policy with a message that says so, while deletion of tenants completes. With the
// webhook's configuration removed (an administrator taking a broken webhook out), what admission
// would have refused gets in, and the status says InvalidSpec and names the field.
func TestWebhookDown(t *testing.T) {
	requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	with := startOperator(t, "operator-webhook")
	ref := referenceShape(ctx, t, "wh-ref")
	victim := newTenant("wh-victim", v1alpha1.DeletionPolicyDelete)
	withEditor(victim)
	if err := create(ctx, victim); err != nil {
		t.Fatal(err)
	}
	converge(ctx, t, expectation{live: []string{"wh-ref", "wh-victim"}, shape: ref}, 3*time.Minute)
	if err := with.Stop(); err != nil {
		t.Fatal(err)
	}
	startOperator(t, "operator-no-webhook", "--enable-webhooks=false")

	// Creates are refused while nobody serves the webhook, and the user is told why.
	err := cluster.Client.Create(ctx, newTenant("wh-refused", v1alpha1.DeletionPolicyRetain), fieldOwner)
	if err == nil || !strings.Contains(err.Error(), `failed calling webhook "vtenant.tenancy.tenantops.io"`) {
		t.Fatalf("a create with the webhook down: %v, want a refusal naming the webhook", err)
	}
	// Deletion does not need the webhook: the finalizer's removal is let through.
	started := time.Now()
	if err := remove(ctx, "wh-victim"); err != nil {
		t.Fatal(err)
	}
	converge(ctx, t, expectation{live: []string{"wh-ref"}, shape: ref, erased: []string{"wh-victim"}}, 3*time.Minute)
	record("webhook down: a create refused naming the webhook; a Delete tenant erased in %s without it", time.Since(started).Round(100*time.Millisecond))

	// The configuration removed: what the webhook refuses reaches the operator, which says so.
	saved := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := cluster.Client.Get(ctx, types.NamespacedName{Name: webhookConfiguration}, saved); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Delete(ctx, saved); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		saved.ResourceVersion, saved.UID, saved.CreationTimestamp, saved.ManagedFields = "", "", metav1.Time{}, nil
		if err := retrying(ctx, "restore the webhook configuration", func() error { return cluster.Client.Create(ctx, saved.DeepCopy()) }); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(restore)
	bad := newTenant("wh-bad-zone", v1alpha1.DeletionPolicyRetain)
	bad.Spec.Monitoring = &v1alpha1.MonitoringSpec{BusinessHours: &v1alpha1.BusinessHours{TimeZone: "Mars/Olympus", Start: "09:00", End: "17:00"}}
	if err := retrying(ctx, "create a tenant the webhook would refuse", func() error { return cluster.Client.Create(ctx, bad.DeepCopy(), fieldOwner) }); err != nil {
		t.Fatal(err)
	}
	badPolicy := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "wh-bad-policy"},
		Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](3), MaxAge: "a fortnight"}}
	if err := retrying(ctx, "create a policy the webhook would refuse", func() error { return cluster.Client.Create(ctx, badPolicy.DeepCopy(), fieldOwner) }); err != nil {
		t.Fatal(err)
	}
	started = time.Now()
	converge(ctx, t, expectation{live: []string{"wh-bad-zone"}, ready: func(t *v1alpha1.Tenant) (bool, string) {
		ready := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Reason != v1alpha1.ReasonInvalidSpec || !strings.Contains(ready.Message, "spec.monitoring.businessHours.timeZone") {
			return false, "Ready is not False InvalidSpec naming spec.monitoring.businessHours.timeZone"
		}
		return true, ""
	}}, 2*time.Minute)
	for {
		p := &v1alpha1.RetentionPolicy{}
		if err := cluster.Client.Get(ctx, types.NamespacedName{Name: badPolicy.Name}, p); err != nil {
			t.Fatal(err)
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Reason == v1alpha1.ReasonInvalidSpec && strings.Contains(c.Message, "spec.maxAge") {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("RetentionPolicy %s: no InvalidSpec naming spec.maxAge: %+v", badPolicy.Name, p.Status.Conditions)
		case <-time.After(500 * time.Millisecond):
		}
	}
	record("webhook configuration removed: a Tenant and a RetentionPolicy it would refuse got in and were reported InvalidSpec, naming the field, within %s",
		time.Since(started).Round(100*time.Millisecond))
	for _, name := range []string{"wh-bad-zone", "wh-ref"} {
		if err := remove(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := cluster.Client.Delete(ctx, badPolicy); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	restore()
	converge(ctx, t, expectation{gone: []string{"wh-bad-zone", "wh-ref"}}, 3*time.Minute)
}
