package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// The tests in this file prove that what our status setters write is what kstatus (and so Flux's
// health checks, kubectl wait --for and cli-utils' appliers) needs: InProgress while the operator
// works, Failed when a person must act, Current when the object is as its spec says. The inputs
// are part conditions only; Reconciling and Stalled come from the real summarizers.

// condition is a part condition as a step function would set it.
func condition(conditionType string, s metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: conditionType, Status: s, Reason: reason, Message: message}
}

// partsReady is a pass in which every part reconciled successfully, with overrides replacing
// the parts of the same type.
func partsReady(overrides ...metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, conditionType := range tenantstatus.PartConditions {
		c := condition(conditionType, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "As the spec says")
		for _, o := range overrides {
			if o.Type == conditionType {
				c = o
			}
		}
		out = append(out, c)
	}
	for _, o := range overrides {
		if !slices.Contains(tenantstatus.PartConditions, o.Type) {
			out = append(out, o)
		}
	}
	return out
}

// tenantPass is one reconcile pass as Reconcile ends it: the steps set their conditions, then the
// deferred summary runs (or invalidSpec did instead), and observedGeneration follows.
type tenantPass struct {
	parts []metav1.Condition
	// invalidSpec: validation failed, so no step ran and the pass ended in invalidSpec.
	invalidSpec string
	// retrying: a step returned a transient error, so observedGeneration stays where it was.
	retrying bool
}

func (p tenantPass) apply(t *v1alpha1.Tenant) {
	if p.invalidSpec != "" {
		tenantstatus.SetInvalidSpec(t, p.invalidSpec)
		t.Status.ObservedGeneration = t.Generation
		return
	}
	for _, c := range p.parts {
		tenantstatus.Set(t, c)
	}
	tenantstatus.Summarize(t)
	if !p.retrying {
		t.Status.ObservedGeneration = t.Generation
	}
}

// kstatusOf converts obj as the API server would serve it and lets kstatus judge it.
//
// kstatus falls back to Ready when it finds neither Reconciling nor Stalled, reading Ready=False
// as InProgress, never as Failed; older kstatus versions and other readers of the convention
// have no such fallback. So kstatusOf also judges the object without its Ready condition and
// fails the test unless the verdict is the same: InProgress and Failed must come from
// Reconciling, Stalled or observedGeneration, which is what the summarizers are for.
func kstatusOf(t *testing.T, obj runtime.Object, kind string) *status.Result {
	t.Helper()
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: content}
	u.SetAPIVersion(v1alpha1.GroupVersion.String())
	u.SetKind(kind)
	res, err := status.Compute(u)
	if err != nil {
		t.Fatalf("kstatus: %v", err)
	}

	withoutReady := u.DeepCopy()
	conditions, _, _ := unstructured.NestedSlice(withoutReady.Object, "status", "conditions")
	conditions = slices.DeleteFunc(conditions, func(c any) bool {
		return c.(map[string]any)["type"] == v1alpha1.ConditionReady
	})
	if err := unstructured.SetNestedSlice(withoutReady.Object, conditions, "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	alone, err := status.Compute(withoutReady)
	if err != nil {
		t.Fatalf("kstatus without Ready: %v", err)
	}
	if alone.Status != res.Status {
		t.Errorf("kstatus says %s only thanks to its Ready fallback; without Ready it says %s %q", res.Status, alone.Status, alone.Message)
	}
	return res
}

func TestKstatusReadsTenantStatus(t *testing.T) {
	const (
		stale    = "Schedule hot: newest backup is 3d old, older than its maxAge 1d"
		podWait  = "Pod acme-db-0 is not ready yet"
		quotaMsg = "The namespace quota refuses the database pod: exceeded quota"
	)
	tests := []struct {
		name string
		// earlier passes, applied in order before the last one, at generation 1
		earlier []tenantPass
		// generation of the Tenant at the last pass; 1 when zero
		generation int64
		last       tenantPass
		deleting   bool
		want       status.Status
		// wantMessage is a part of kstatus' message
		wantMessage string
	}{
		{
			name:        "new tenant before any step set its condition",
			last:        tenantPass{},
			want:        status.InProgressStatus,
			wantMessage: "NamespaceReady: not reconciled yet",
		},
		{
			name: "database pod starting",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonPodNotReady, podWait))},
			want:        status.InProgressStatus,
			wantMessage: "DatabaseReady: " + podWait,
		},
		{
			name: "certificate being issued",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionCertificateReady, metav1.ConditionFalse, v1alpha1.ReasonCertificateNotIssued, "Waiting for cert-manager"))},
			want:        status.InProgressStatus,
			wantMessage: "CertificateReady: Waiting for cert-manager",
		},
		{
			name:        "every part ready, backups not judged yet",
			last:        tenantPass{parts: partsReady()},
			want:        status.CurrentStatus,
			wantMessage: "Resource is Ready",
		},
		{
			name: "every part ready, backups fresh and verified",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionTrue, v1alpha1.ReasonFresh, "Every schedule has a fresh backup"),
				condition(v1alpha1.ConditionBackupVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified, "The newest verification passed"))},
			want:        status.CurrentStatus,
			wantMessage: "Resource is Ready",
		},
		{
			name: "backups not verified yet (Unknown) do not hold the tenant back",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "First backup not due yet"),
				condition(v1alpha1.ConditionBackupVerified, metav1.ConditionUnknown, v1alpha1.ReasonNotVerified, "Not verified yet"))},
			want:        status.CurrentStatus,
			wantMessage: "Resource is Ready",
		},
		{
			name: "only problem: backups stale",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonStale, stale))},
			want:        status.FailedStatus,
			wantMessage: "BackupsFresh: " + stale,
		},
		{
			name: "only problem: no backup in storage",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonMissing, "Schedule hot has no backup"))},
			want:        status.FailedStatus,
			wantMessage: "BackupsFresh: Schedule hot has no backup",
		},
		{
			name: "only problem: backup storage unreachable",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonStorageUnreachable, "Bucket backups does not answer"))},
			want:        status.FailedStatus,
			wantMessage: "BackupsFresh: Bucket backups does not answer",
		},
		{
			name: "only problem: backup job failing",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonJobFailing, "Job of schedule hot failed"))},
			want:        status.FailedStatus,
			wantMessage: "BackupsFresh: Job of schedule hot failed",
		},
		{
			name: "only problem: backups suspended",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonSuspended, "Backups are suspended by BackupPolicy nightly"))},
			want:        status.FailedStatus,
			wantMessage: "BackupsFresh: Backups are suspended",
		},
		{
			name: "only problem: verification failed",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionTrue, v1alpha1.ReasonFresh, "Every schedule has a fresh backup"),
				condition(v1alpha1.ConditionBackupVerified, metav1.ConditionFalse, v1alpha1.ReasonVerificationFailed, "Checksum mismatch"))},
			want:        status.FailedStatus,
			wantMessage: "BackupVerified: Checksum mismatch",
		},
		{
			name: "a part failing",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonQuotaExceeded, quotaMsg))},
			want:        status.FailedStatus,
			wantMessage: "DatabaseReady: " + quotaMsg,
		},
		{
			name: "a part failing while another is still on its way",
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonPodNotReady, podWait),
				condition(v1alpha1.ConditionCertificateReady, metav1.ConditionFalse, v1alpha1.ReasonIssuerNotFound, "ClusterIssuer letsencrypt not found"))},
			want:        status.FailedStatus,
			wantMessage: "CertificateReady: ClusterIssuer letsencrypt not found",
		},
		{
			name:        "invalid spec that slipped past admission",
			last:        tenantPass{invalidSpec: "spec.hostnames[0]: Invalid value: \"-x\": not a DNS name"},
			want:        status.FailedStatus,
			wantMessage: "spec.hostnames[0]",
		},
		{
			name:        "spec changed and the pass is retrying: observedGeneration lags",
			earlier:     []tenantPass{{parts: partsReady()}},
			generation:  2,
			last:        tenantPass{parts: partsReady(), retrying: true},
			want:        status.InProgressStatus,
			wantMessage: "Tenant generation is 2, but latest observed generation is 1",
		},
		{
			name:       "stalled, then the spec changed and the pass is retrying: the lag wins",
			earlier:    []tenantPass{{parts: partsReady(condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonStale, stale))}},
			generation: 2,
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonStale, stale)), retrying: true},
			want:        status.InProgressStatus,
			wantMessage: "latest observed generation is 1",
		},
		{
			name:        "provisioning, then ready: Reconciling is gone",
			earlier:     []tenantPass{{}, {parts: partsReady(condition(v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonPodNotReady, podWait))}},
			last:        tenantPass{parts: partsReady()},
			want:        status.CurrentStatus,
			wantMessage: "Resource is Ready",
		},
		{
			name: "stale backups, then a fresh one: Stalled is gone",
			earlier: []tenantPass{{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonStale, stale))}},
			last: tenantPass{parts: partsReady(
				condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionTrue, v1alpha1.ReasonFresh, "Every schedule has a fresh backup"))},
			want:        status.CurrentStatus,
			wantMessage: "Resource is Ready",
		},
		{
			name:        "invalid spec, then fixed and provisioning: Stalled is gone",
			earlier:     []tenantPass{{invalidSpec: "spec.hostnames: Required value"}},
			generation:  2,
			last:        tenantPass{parts: partsReady(condition(v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonPVCPending, "Claim data-acme-db-0 is pending"))},
			want:        status.InProgressStatus,
			wantMessage: "DatabaseReady: Claim data-acme-db-0 is pending",
		},
		{
			name:        "ready, then a part fails: Failed",
			earlier:     []tenantPass{{parts: partsReady()}},
			last:        tenantPass{parts: partsReady(condition(v1alpha1.ConditionNamespaceReady, metav1.ConditionFalse, v1alpha1.ReasonNamespaceConflict, "Namespace acme belongs to something else"))},
			want:        status.FailedStatus,
			wantMessage: "NamespaceReady: Namespace acme belongs to something else",
		},
		{
			name:        "being deleted",
			earlier:     []tenantPass{{parts: partsReady()}},
			last:        tenantPass{parts: partsReady()},
			deleting:    true,
			want:        status.TerminatingStatus,
			wantMessage: "Resource scheduled for deletion",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", Generation: 1}}
			for _, pass := range tt.earlier {
				pass.apply(tenant)
			}
			if tt.generation != 0 {
				tenant.Generation = tt.generation
			}
			if tt.deleting {
				now := metav1.Now()
				tenant.DeletionTimestamp = &now
				tenant.Finalizers = []string{v1alpha1.TenantFinalizer}
			}
			tt.last.apply(tenant)

			res := kstatusOf(t, tenant, "Tenant")
			if res.Status != tt.want || !strings.Contains(res.Message, tt.wantMessage) {
				t.Errorf("kstatus = %s %q, want %s containing %q\nconditions: %+v", res.Status, res.Message, tt.want, tt.wantMessage, tenant.Status.Conditions)
			}
		})
	}
}

// policyClient is a fake API server holding objs, with the field indexes the policy reconcilers
// list by.
func policyClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	byRef := func(ref func(*v1alpha1.Tenant) *v1alpha1.LocalObjectReference) client.IndexerFunc {
		return func(o client.Object) []string {
			if r := ref(o.(*v1alpha1.Tenant)); r != nil {
				return []string{r.Name}
			}
			return nil
		}
	}
	return fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(objs...).
		WithStatusSubresource(&v1alpha1.BackupPolicy{}, &v1alpha1.RetentionPolicy{}).
		WithIndex(&v1alpha1.Tenant{}, indexTenantBackupPolicy, byRef(func(t *v1alpha1.Tenant) *v1alpha1.LocalObjectReference { return t.Spec.BackupPolicyRef })).
		WithIndex(&v1alpha1.Tenant{}, indexTenantRetentionPolicy, byRef(func(t *v1alpha1.Tenant) *v1alpha1.LocalObjectReference { return t.Spec.RetentionPolicyRef })).
		WithIndex(&v1alpha1.BackupPolicy{}, indexBackupPolicySecrets, func(o client.Object) []string {
			return backupPolicySecretNames(o.(*v1alpha1.BackupPolicy))
		}).
		Build()
}

func TestKstatusReadsPolicyStatus(t *testing.T) {
	const operatorNamespace = "tenant-operator-system"
	ctx := ctrl.LoggerInto(context.Background(), ctrl.Log)
	backupPolicy := func(secret string) *v1alpha1.BackupPolicy {
		return &v1alpha1.BackupPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "nightly", Generation: 1},
			Spec: v1alpha1.BackupPolicySpec{
				Schedules: []v1alpha1.BackupSchedule{{
					Name: "hot", Schedule: "0 */12 * * *",
					Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
						Endpoint: "s3.example.com", Bucket: "backups", Region: "eu-west-1",
						CredentialsSecretRef: v1alpha1.SecretReference{Name: secret},
					}},
				}},
				Encryption: v1alpha1.BackupEncryption{Recipients: []string{"age1qmplsxqs2smjrp0kagrvhmyzwtk0ry2v2el6zpnefqampxq6gqnqkv08lz"}},
			},
		}
	}
	credentials := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "s3-credentials"},
		Data:       map[string][]byte{"AWS_ACCESS_KEY_ID": []byte("id"), "AWS_SECRET_ACCESS_KEY": []byte("secret")},
	}
	reconcileBackupPolicy := func(t *testing.T, c client.Client) *v1alpha1.BackupPolicy {
		t.Helper()
		r := &BackupPolicyReconciler{Client: c, Options: Options{Options: builders.Options{OperatorNamespace: operatorNamespace}}}
		_, _ = r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "nightly"}}) // errors show in the status
		policy := &v1alpha1.BackupPolicy{}
		if err := c.Get(ctx, client.ObjectKey{Name: "nightly"}, policy); err != nil {
			t.Fatal(err)
		}
		return policy
	}
	expect := func(t *testing.T, obj runtime.Object, kind string, want status.Status, wantMessage string) {
		t.Helper()
		res := kstatusOf(t, obj, kind)
		if res.Status != want || !strings.Contains(res.Message, wantMessage) {
			t.Errorf("kstatus = %s %q, want %s containing %q", res.Status, res.Message, want, wantMessage)
		}
	}

	t.Run("BackupPolicy whose Secret is missing", func(t *testing.T) {
		c := policyClient(t, backupPolicy("s3-credentials"))
		expect(t, reconcileBackupPolicy(t, c), "BackupPolicy", status.FailedStatus, "s3-credentials not found")
	})
	t.Run("BackupPolicy whose Secret lacks a key", func(t *testing.T) {
		partial := credentials.DeepCopy()
		delete(partial.Data, "AWS_SECRET_ACCESS_KEY")
		c := policyClient(t, backupPolicy("s3-credentials"), partial)
		expect(t, reconcileBackupPolicy(t, c), "BackupPolicy", status.FailedStatus, "s3-credentials has no key AWS_SECRET_ACCESS_KEY")
	})
	t.Run("BackupPolicy with its Secret", func(t *testing.T) {
		c := policyClient(t, backupPolicy("s3-credentials"), credentials.DeepCopy())
		expect(t, reconcileBackupPolicy(t, c), "BackupPolicy", status.CurrentStatus, "Resource is Ready")
	})
	t.Run("BackupPolicy whose Secret appears later", func(t *testing.T) {
		c := policyClient(t, backupPolicy("s3-credentials"))
		expect(t, reconcileBackupPolicy(t, c), "BackupPolicy", status.FailedStatus, "s3-credentials not found")
		if err := c.Create(ctx, credentials.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		expect(t, reconcileBackupPolicy(t, c), "BackupPolicy", status.CurrentStatus, "Resource is Ready")
	})
	t.Run("BackupPolicy invalid", func(t *testing.T) {
		invalid := backupPolicy("s3-credentials")
		invalid.Spec.Schedules[0].Schedule = "every full moon"
		c := policyClient(t, invalid, credentials.DeepCopy())
		expect(t, reconcileBackupPolicy(t, c), "BackupPolicy", status.FailedStatus, "schedule")
	})
	t.Run("BackupPolicy changed but not reconciled yet", func(t *testing.T) {
		c := policyClient(t, backupPolicy("s3-credentials"), credentials.DeepCopy())
		policy := reconcileBackupPolicy(t, c)
		policy.Generation = 2 // as the API server does on a spec change
		expect(t, policy, "BackupPolicy", status.InProgressStatus, "BackupPolicy generation is 2, but latest observed generation is 1")
	})

	reconcileRetentionPolicy := func(t *testing.T, policy *v1alpha1.RetentionPolicy) *v1alpha1.RetentionPolicy {
		t.Helper()
		c := policyClient(t, policy)
		r := &RetentionPolicyReconciler{Client: c}
		_, _ = r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(policy)})
		got := &v1alpha1.RetentionPolicy{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(policy), got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	seven := int32(7)
	t.Run("RetentionPolicy valid", func(t *testing.T) {
		policy := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "week", Generation: 1},
			Spec: v1alpha1.RetentionPolicySpec{KeepDaily: &seven}}
		expect(t, reconcileRetentionPolicy(t, policy), "RetentionPolicy", status.CurrentStatus, "Resource is Ready")
	})
	t.Run("RetentionPolicy invalid", func(t *testing.T) {
		policy := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "forever", Generation: 1},
			Spec: v1alpha1.RetentionPolicySpec{KeepDaily: &seven, MaxAge: "a while"}}
		expect(t, reconcileRetentionPolicy(t, policy), "RetentionPolicy", status.FailedStatus, "maxAge")
	})
}
