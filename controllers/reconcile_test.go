package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/storage"
)

func TestCombine(t *testing.T) {
	terminal := reconcile.TerminalError(errors.New("no issuer configured"))
	transient := errors.New("connection refused")
	soon, later := ctrl.Result{RequeueAfter: time.Minute}, ctrl.Result{RequeueAfter: time.Hour}
	tests := []struct {
		name         string
		results      []ctrl.Result
		errs         []error
		want         ctrl.Result
		wantErr      bool
		wantTerminal bool
	}{
		{name: "all well: the soonest look again", results: []ctrl.Result{later, {}, soon}, errs: []error{nil, nil, nil}, want: soon},
		{name: "a transient error is retried, without the terminal beside it",
			results: []ctrl.Result{soon, {}}, errs: []error{terminal, transient}, wantErr: true},
		{name: "a terminal error does not cancel another step's look again",
			results: []ctrl.Result{{}, later}, errs: []error{terminal, nil}, want: later},
		{name: "a terminal error alone is terminal", results: []ctrl.Result{{}, {}}, errs: []error{terminal, nil}, wantErr: true, wantTerminal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := combine(tt.results, tt.errs)
			if got != tt.want || (err != nil) != tt.wantErr || errors.Is(err, reconcile.TerminalError(nil)) != tt.wantTerminal {
				t.Errorf("combine = %+v, %v; want %+v, error %v, terminal %v", got, err, tt.want, tt.wantErr, tt.wantTerminal)
			}
		})
	}
}

// The default install names no default issuer, so a tenant without spec.tls.issuerRef gets a
// terminal "no issuer" on every pass. That must not stop its backups from being looked at again and
// marked Stale on time, nor a failing storage from being reported: the terminal error used to make
// the whole pass terminal, and controller-runtime then never came back.
func TestATenantWithoutIssuerIsStillRecheckedAndGoesStale(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(now)
	root := t.TempDir()
	writeVolumeBackup(t, filepath.Join(root, "backups"), "acme", "hot", "b1", now.Add(-time.Hour))

	policy := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "standard", Generation: 1}, Spec: v1alpha1.BackupPolicySpec{
		Schedules: []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "0 */12 * * *",
			Storage: v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "backups"}}}},
		Encryption: v1alpha1.BackupEncryption{Recipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}}},
		Status: v1alpha1.BackupPolicyStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSucceeded}}}}
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", Generation: 1}, Spec: v1alpha1.TenantSpec{
		Hostnames: []string{"acme.example.com"}, BackupPolicyRef: &v1alpha1.LocalObjectReference{Name: "standard"},
		Database: v1alpha1.DatabaseSpec{Version: "17", Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}}}}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(policy, tenant).
		WithStatusSubresource(&v1alpha1.Tenant{}, &v1alpha1.BackupPolicy{}).WithInterceptorFuncs(applyAsUpsert()).Build()
	r, err := NewTenantReconciler(c, c, nil, Options{Options: builders.Options{OperatorNamespace: "tenant-operator-system"},
		Clock: clk, BackupVolumeRoot: root, BackupCheckInterval: 5 * time.Minute, DisableUptimeProbes: true, Metrics: metrics.New(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.backups.Start(ctx) }()

	// reconcileUntil reconciles as controller-runtime would (while the result asks to) until the
	// BackupsFresh condition has the wanted reason, and returns the last pass's outcome.
	reconcileUntil := func(reason string) ctrl.Result {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: "acme"}})
			if err != nil {
				t.Fatalf("Reconcile: %v (terminal: %v)", err, errors.Is(err, reconcile.TerminalError(nil)))
			}
			if res.RequeueAfter <= 0 {
				t.Fatalf("the pass asked for no look again: %+v; its backups would never be checked again", res)
			}
			got := &v1alpha1.Tenant{}
			if err := c.Get(ctx, client.ObjectKey{Name: "acme"}, got); err != nil {
				t.Fatal(err)
			}
			if cert := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionCertificateReady); cert == nil || cert.Reason != v1alpha1.ReasonIssuerNotFound {
				t.Fatalf("CertificateReady = %+v, want IssuerNotFound", cert)
			}
			fresh := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionBackupsFresh)
			if fresh != nil && fresh.Reason == reason {
				return res
			}
			if time.Now().After(deadline) {
				t.Fatalf("BackupsFresh = %+v, want reason %s", fresh, reason)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	res := reconcileUntil(v1alpha1.ReasonFresh)
	// The newest backup is an hour old and a 12-hour schedule allows 13h12m: stale 12h12m from now,
	// and storage is looked at again within the check interval, whichever is first.
	if res.RequeueAfter > 5*time.Minute {
		t.Errorf("RequeueAfter = %v, want at most the 5m check interval", res.RequeueAfter)
	}
	clk.Step(13 * time.Hour)
	reconcileUntil(v1alpha1.ReasonStale)

	// Storage that fails is reported, and still looked at again.
	if err := os.RemoveAll(filepath.Join(root, "backups")); err != nil {
		t.Fatal(err)
	}
	clk.Step(5 * time.Minute)
	reconcileUntil(v1alpha1.ReasonStorageUnreachable)
}

// applyAsUpsert makes the fake client take a server-side apply as a create or a whole replacement:
// its own apply support does not merge every kind, and what these tests judge is the outcome of the
// steps, not the merge.
func applyAsUpsert() interceptor.Funcs {
	upsert := func(ctx context.Context, c client.WithWatch, gvk schema.GroupVersionKind, data []byte) error {
		obj, err := c.Scheme().New(gvk)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(data, obj); err != nil {
			return err
		}
		o := obj.(client.Object)
		existing := o.DeepCopyObject().(client.Object)
		switch err := c.Get(ctx, client.ObjectKeyFromObject(o), existing); {
		case apierrors.IsNotFound(err):
			return c.Create(ctx, o)
		case err != nil:
			return err
		}
		o.SetResourceVersion(existing.GetResourceVersion())
		return c.Update(ctx, o)
	}
	return interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
			data, err := json.Marshal(obj)
			if err != nil {
				return err
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(data, &tm); err != nil {
				return err
			}
			return upsert(ctx, c, tm.GroupVersionKind(), data)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if patch.Type() != types.ApplyPatchType {
				return c.Patch(ctx, obj, patch, opts...)
			}
			data, err := patch.Data(obj)
			if err != nil {
				return err
			}
			return upsert(ctx, c, obj.GetObjectKind().GroupVersionKind(), data)
		},
	}
}

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	utilruntime.Must(AddToScheme(s))
	return s
}

// writeVolumeBackup lays out a complete backup in a volume directory, finished at finished.
func writeVolumeBackup(t *testing.T, dir, tenant, schedule, id string, finished time.Time) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenVolume(dir)
	if err != nil {
		t.Fatal(err)
	}
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: tenant, Schedule: schedule, ID: id, StartedAt: finished.Add(-time.Minute)})
}

// finalBackups waits for a running final backup, goes on once it completed, and refuses to go on
// after one failed, saying how to proceed.
func TestFinalBackups(t *testing.T) {
	ctx := context.Background()
	policy := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "standard"}, Spec: v1alpha1.BackupPolicySpec{
		Schedules:  []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "@daily", Storage: v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "b"}}}},
		Encryption: v1alpha1.BackupEncryption{Recipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}}}}
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.TenantSpec{BackupPolicyRef: &v1alpha1.LocalObjectReference{Name: "standard"}}}
	name := builders.FinalBackupJobName(tenant, "hot")
	for _, tt := range []struct {
		name        string
		conditions  []batchv1.JobCondition
		wantRunning bool
		wantErr     string
	}{
		{name: "not started: started now", wantRunning: true},
		{name: "running", conditions: []batchv1.JobCondition{}, wantRunning: true},
		{name: "complete", conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}},
		{name: "failed", conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}},
			wantErr: "BackoffLimitExceeded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := []client.Object{policy.DeepCopy()}
			if tt.conditions != nil {
				objs = append(objs, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: name}, Status: batchv1.JobStatus{Conditions: tt.conditions}})
			}
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).WithInterceptorFuncs(applyAsUpsert()).Build()
			r, err := NewTenantReconciler(c, c, nil, Options{Options: builders.Options{OperatorNamespace: "ops"}, DisableUptimeProbes: true, Metrics: metrics.New(prometheus.NewRegistry())})
			if err != nil {
				t.Fatal(err)
			}
			running, err := r.finalBackups(ctx, tenant.DeepCopy())
			if (len(running) > 0) != tt.wantRunning {
				t.Errorf("running = %v, want running %v", running, tt.wantRunning)
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !errors.Is(err, errFinalBackup) ||
				!strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), v1alpha1.AnnotationSkipFinalBackup)) {
				t.Errorf("error = %v, want one containing %q and naming the skip annotation", err, tt.wantErr)
			}
			if tt.conditions == nil {
				if err := c.Get(ctx, client.ObjectKey{Namespace: "ops", Name: name}, &batchv1.Job{}); err != nil {
					t.Errorf("no final backup Job made: %v", err)
				}
			}
		})
	}
}
