package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

const demoRecipient = "age1qmplsxqs2smjrp0kagrvhmyzwtk0ry2v2el6zpnefqampxq6gqnqkv08lz"

func s3BackupPolicy(name, secret string) *v1alpha1.BackupPolicy {
	return &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{{
				Name: "hot", Schedule: "0 */12 * * *",
				Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
					Endpoint: "127.0.0.1:9000", Bucket: "backups", Region: "eu-west-1",
					CredentialsSecretRef: v1alpha1.SecretReference{Name: secret},
				}},
			}},
			Encryption: v1alpha1.BackupEncryption{Recipients: []string{demoRecipient}},
		},
	}
}

func minimalTenant(name string) *v1alpha1.Tenant {
	return &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.TenantSpec{
			Hostnames: []string{name + ".app.example.com"},
			Database:  v1alpha1.DatabaseSpec{Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}},
		},
	}
}

// conditionOf fetches obj and returns its condition of the given type.
func conditionOf(ctx context.Context, obj client.Object, conditionType string) (*metav1.Condition, error) {
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return nil, err
	}
	var conditions []metav1.Condition
	switch o := obj.(type) {
	case *v1alpha1.Tenant:
		conditions = o.Status.Conditions
	case *v1alpha1.BackupPolicy:
		conditions = o.Status.Conditions
	case *v1alpha1.RetentionPolicy:
		conditions = o.Status.Conditions
	case *v1alpha1.TenantRestore:
		conditions = o.Status.Conditions
	case *v1alpha1.TenantExport:
		conditions = o.Status.Conditions
	case *v1alpha1.ErasureRequest:
		conditions = o.Status.Conditions
	}
	c := meta.FindStatusCondition(conditions, conditionType)
	if c == nil {
		return nil, fmt.Errorf("%s has no %s condition yet", obj.GetName(), conditionType)
	}
	return c, nil
}

// anyReason makes expectCondition accept whatever reason the condition has.
const anyReason = "*"

func expectCondition(t *testing.T, obj client.Object, conditionType string, status metav1.ConditionStatus, reason, messagePart string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		c, err := conditionOf(context.Background(), obj, conditionType)
		if err != nil {
			return err
		}
		if c.Status != status || (reason != anyReason && c.Reason != reason) || !strings.Contains(c.Message, messagePart) {
			return fmt.Errorf("%s = %s/%s %q, want %s/%s containing %q", conditionType, c.Status, c.Reason, c.Message, status, reason, messagePart)
		}
		if c.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("%s observedGeneration %d, generation %d", conditionType, c.ObservedGeneration, obj.GetGeneration())
		}
		return nil
	})
}

func TestBackupPolicyReadyOnceItsSecretExists(t *testing.T) {
	ctx := context.Background()
	policy := s3BackupPolicy("needs-secret", "storage-needs-secret")
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, policy, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound, "storage-needs-secret not found")

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "storage-needs-secret", Namespace: operatorNamespace},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": "id"},
	}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, policy, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound, "storage-needs-secret has no key AWS_SECRET_ACCESS_KEY")

	secret.StringData = map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, policy, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "1 schedules valid")
}

// TestInvalidPolicyThatSlippedPastAdmissionIsACondition creates, without the webhook, a policy
// with a bad cron schedule: the controller reports it and does not retry in a loop.
func TestInvalidPolicyThatSlippedPastAdmissionIsACondition(t *testing.T) {
	ctx := context.Background()
	policy := s3BackupPolicy("bad-cron", "whatever")
	policy.Spec.Schedules[0].Schedule = "every night"
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, policy, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, `spec.schedules[0].schedule: Invalid value: "every night"`)
	assertQuiet(t, policy, 3*time.Second)
}

// assertQuiet fails when the object's resourceVersion changes during d: a controller that keeps
// writing an unchanged object is in a hot loop.
func assertQuiet(t *testing.T, obj client.Object, d time.Duration) {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	rv := obj.GetResourceVersion()
	time.Sleep(d)
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	if obj.GetResourceVersion() != rv {
		t.Fatalf("%s was written while nothing changed (resourceVersion %s -> %s)", obj.GetName(), rv, obj.GetResourceVersion())
	}
}

func TestRetentionPolicySummaryAndTenantCount(t *testing.T) {
	ctx := context.Background()
	policy := &v1alpha1.RetentionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "counted"},
		Spec:       v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](5), KeepMonthly: ptr.To[int32](2), KeepYearly: ptr.To[int32](1), MaxAge: "5d"},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, policy, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "daily=5 monthly=2 yearly=1 maxAge=5d minKeep=1")

	for _, name := range []string{"counted-a", "counted-b"} {
		tenant := minimalTenant(name)
		tenant.Spec.RetentionPolicyRef = &v1alpha1.LocalObjectReference{Name: "counted"}
		if err := k8s.Create(ctx, tenant); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			return err
		}
		if policy.Status.Tenants != 2 || policy.Status.Rules != "daily=5 monthly=2 yearly=1 maxAge=5d minKeep=1" {
			return fmt.Errorf("status = %+v, want 2 tenants and the rules summary", policy.Status)
		}
		return nil
	})

	// A tenant moving to another policy is counted there and no longer here.
	moved := &v1alpha1.Tenant{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "counted-b"}, moved); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(moved.DeepCopy())
	moved.Spec.RetentionPolicyRef = &v1alpha1.LocalObjectReference{Name: "elsewhere"}
	if err := k8s.Patch(ctx, moved, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			return err
		}
		if policy.Status.Tenants != 1 {
			return fmt.Errorf("tenants = %d, want 1", policy.Status.Tenants)
		}
		return nil
	})
}

// TestMissingPolicyIsAConditionUntilItAppears: a Tenant referencing a BackupPolicy that does not
// exist yet (GitOps applies in any order) says so, and resolves when the policy is created.
func TestMissingPolicyIsAConditionUntilItAppears(t *testing.T) {
	ctx := context.Background()
	tenant := minimalTenant("early-bird")
	tenant.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: "late-policy"}
	if err := k8s.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, tenant, v1alpha1.ConditionPoliciesResolved, metav1.ConditionFalse, v1alpha1.ReasonPolicyNotFound, `BackupPolicy "late-policy" not found`)

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "storage-late", Namespace: operatorNamespace},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"},
	}
	if err := k8s.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, s3BackupPolicy("late-policy", "storage-late")); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, tenant, v1alpha1.ConditionPoliciesResolved, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Referenced policies exist and are ready")
}
