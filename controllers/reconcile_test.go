package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
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
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/datakey"
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
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "uid-1", Generation: 1}, Spec: v1alpha1.TenantSpec{
		Hostnames: []string{"acme.example.com"}, BackupPolicyRef: &v1alpha1.LocalObjectReference{Name: "standard"},
		Database: v1alpha1.DatabaseSpec{Version: "17", Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}}}}
	c := withTenantIndexes(fake.NewClientBuilder()).WithScheme(testScheme(t)).WithObjects(policy, tenant).
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

// withTenantIndexes registers the manager's index of owned objects by tenant (setupIndexes), which
// the reconciler's lists of cluster roles, deployments and cron jobs use.
func withTenantIndexes(b *fake.ClientBuilder) *fake.ClientBuilder {
	for _, obj := range tenantIndexed() {
		b = b.WithIndex(obj, indexTenantLabel, tenantLabelOf)
	}
	return b
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

// eraseTenant stops the tenant's backup Jobs first, erases its data keys and backups from
// storage off the pass, records the erasure, and only then deletes the data key Secret; a
// predecessor's backups under the same name stay.
func TestEraseTenant(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := t.TempDir()
	claim := filepath.Join(root, "b")
	if err := os.MkdirAll(claim, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenVolume(claim)
	if err != nil {
		t.Fatal(err)
	}
	policy := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "standard"}, Spec: v1alpha1.BackupPolicySpec{
		Schedules:  []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "@daily", Storage: v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "b"}}}},
		Encryption: v1alpha1.BackupEncryption{Recipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}}}}
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "uid-1", Finalizers: []string{v1alpha1.TenantFinalizer},
		Annotations: map[string]string{v1alpha1.AnnotationAllowDelete: "true"}},
		Spec: v1alpha1.TenantSpec{BackupPolicyRef: &v1alpha1.LocalObjectReference{Name: "standard"}, DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	key, err := datakey.Generate(policy.Spec.Encryption.Recipients)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.WriteDataKey(ctx, store, "acme", "uid-1", key); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-1", Schedule: "hot", ID: "mine", StartedAt: now.Add(-time.Hour), DataKeyID: key.ID})
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-0", Schedule: "hot", ID: "predecessors", StartedAt: now.Add(-48 * time.Hour)})
	secret := &corev1.Secret{}
	secretAC := builders.DataKeySecret(tenant, policy, key, nil, now, builders.Options{OperatorNamespace: "ops"})
	secret.Name, secret.Namespace, secret.Labels, secret.Annotations = *secretAC.Name, *secretAC.Namespace, secretAC.Labels, secretAC.Annotations
	secret.Data = secretAC.Data
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "acme-hot-backup-1", Labels: builders.TenantLabels(tenant)}}
	cronJob := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: builders.BackupCronJobName(tenant, "hot"), Labels: builders.TenantLabels(tenant)}}

	// How each object was deleted: the CronJob orphaning its Jobs (the garbage collector would
	// remove a Job before its pod), the Job in the foreground (it stays until its pod is gone).
	var mu sync.Mutex
	propagation := map[string]metav1.DeletionPropagation{}
	funcs := applyAsUpsert()
	funcs.Delete = func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
		do := &client.DeleteOptions{}
		do.ApplyOptions(opts)
		if do.PropagationPolicy != nil {
			mu.Lock()
			propagation[obj.GetName()] = *do.PropagationPolicy
			mu.Unlock()
		}
		return cl.Delete(ctx, obj, opts...)
	}
	c := withTenantIndexes(fake.NewClientBuilder()).WithScheme(testScheme(t)).WithObjects(policy, secret, job, cronJob).WithInterceptorFuncs(funcs).Build()
	r, err := NewTenantReconciler(c, c, nil, Options{Options: builders.Options{OperatorNamespace: "ops"}, Clock: clocktesting.NewFakeClock(now),
		BackupVolumeRoot: root, DisableUptimeProbes: true, Metrics: metrics.New(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.backups.Start(ctx) }()

	waiting, _, err := r.eraseTenant(ctx, tenant)
	if err != nil || !strings.Contains(waiting, "acme-hot-backup-1") {
		t.Fatalf("first pass: %q, %v; want to wait for the running backup Job", waiting, err)
	}
	if left, _ := catalog.ListDataKeys(ctx, store, "acme", "uid-1"); len(left) != 1 {
		t.Fatal("the key was erased while a backup Job still ran")
	}
	mu.Lock()
	if p := propagation[cronJob.Name]; p != metav1.DeletePropagationOrphan {
		t.Errorf("CronJob deleted with propagation %q, want Orphan", p)
	}
	if p := propagation[job.Name]; p != metav1.DeletePropagationForeground {
		t.Errorf("Job deleted with propagation %q, want Foreground", p)
	}
	mu.Unlock()
	var record corev1.ConfigMap
	deadline := time.Now().Add(20 * time.Second)
	for {
		waiting, _, err = r.eraseTenant(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if waiting == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still waiting: %s", waiting)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "ops", Name: builders.ErasureRecordName("acme", "uid-1")}, &record); err != nil {
		t.Fatalf("no erasure record: %v", err)
	}
	var got builders.ErasureRecord
	if err := json.Unmarshal([]byte(record.Data[builders.ErasureRecordKey]), &got); err != nil {
		t.Fatal(err)
	}
	if got.Reason != builders.ErasureTenantDeleted || !got.ErasedAt.Equal(now) || len(got.DataKeys) != 1 || got.DataKeys[0] != key.ID ||
		len(got.Secrets) != 1 || len(got.Locations) != 1 || got.Locations[0].BackupsUnreadableCount != 1 || got.Locations[0].BackupsUnreadable[0].ID != "mine" {
		t.Errorf("record = %+v", got)
	}
	if strings.Contains(record.Data[builders.ErasureRecordKey], "AGE-") {
		t.Error("the record holds key material")
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("data key Secret after erasure: %v", err)
	}
	left, err := catalog.List(ctx, store, "acme", "")
	if err != nil || len(left) != 1 || left[0].ID != "predecessors" {
		t.Errorf("backups left: %v, %v; want only the predecessor's", left, err)
	}
}

// Delete needs allow-delete; once the operator has started erasing, the erasure is finished even
// if someone removes allow-delete or the policy meanwhile (half an erasure keeps no record).
func TestEffectiveDeletionPolicy(t *testing.T) {
	now := metav1.Now()
	cases := []struct {
		name        string
		policy      v1alpha1.DeletionPolicy
		annotations map[string]string
		deleting    bool
		want        v1alpha1.DeletionPolicy
	}{
		{"Retain", v1alpha1.DeletionPolicyRetain, nil, false, v1alpha1.DeletionPolicyRetain},
		{"Delete confirmed", v1alpha1.DeletionPolicyDelete, map[string]string{v1alpha1.AnnotationAllowDelete: "true"}, false, v1alpha1.DeletionPolicyDelete},
		{"Delete unconfirmed keeps the data", v1alpha1.DeletionPolicyDelete, nil, true, v1alpha1.DeletionPolicyRetain},
		{"an erasure under way goes on without allow-delete", v1alpha1.DeletionPolicyDelete,
			map[string]string{v1alpha1.AnnotationErasureStarted: "2026-12-02T12:00:00Z"}, true, v1alpha1.DeletionPolicyDelete},
		{"an erasure under way goes on after a switch to Retain", v1alpha1.DeletionPolicyRetain,
			map[string]string{v1alpha1.AnnotationErasureStarted: "2026-12-02T12:00:00Z"}, true, v1alpha1.DeletionPolicyDelete},
		{"the mark on a live Tenant means nothing", v1alpha1.DeletionPolicyRetain,
			map[string]string{v1alpha1.AnnotationErasureStarted: "2026-12-02T12:00:00Z"}, false, v1alpha1.DeletionPolicyRetain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", Annotations: tc.annotations},
				Spec: v1alpha1.TenantSpec{DeletionPolicy: tc.policy}}
			if tc.deleting {
				tenant.DeletionTimestamp = &now
			}
			if got := effectiveDeletionPolicy(tenant); got != tc.want {
				t.Errorf("effectiveDeletionPolicy = %s, want %s", got, tc.want)
			}
		})
	}
}

// A kept tenant's data is erased when its record asks, or once the retention's longest period
// has passed since the deletion; a policy with no period keeps it until asked.
func TestKeptVerdict(t *testing.T) {
	deleted := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	kept := builders.KeptTenant{Tenant: "acme", TenantUIDs: []string{"uid-1"}, BackupPolicy: "standard", DeletedAt: deleted}
	days, last := int32(5), int32(3)
	daily := &v1alpha1.RetentionPolicy{Spec: v1alpha1.RetentionPolicySpec{KeepDaily: &days}}
	lastOnly := &v1alpha1.RetentionPolicy{Spec: v1alpha1.RetentionPolicySpec{KeepLast: &last}}
	asked := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{v1alpha1.AnnotationErase: "true"}}}
	plain := &corev1.ConfigMap{}
	cases := []struct {
		name       string
		record     *corev1.ConfigMap
		policy     *v1alpha1.RetentionPolicy
		now        time.Time
		wantReason string
		wantUntil  time.Time
		bounded    bool
	}{
		{"within the retention", plain, daily, deleted.AddDate(0, 0, 4), "", deleted.AddDate(0, 0, 5), true},
		{"the retention ended", plain, daily, deleted.AddDate(0, 0, 5), builders.ErasureRetentionEnded, deleted.AddDate(0, 0, 5), true},
		{"asked for", asked, daily, deleted.Add(time.Hour), builders.ErasureRequested, deleted.Add(time.Hour), true},
		{"asked for without a retention policy", asked, nil, deleted, builders.ErasureRequested, deleted, true},
		{"keepLast alone: kept until asked", plain, lastOnly, deleted.AddDate(5, 0, 0), "", time.Time{}, false},
		{"no retention policy: kept until asked", plain, nil, deleted.AddDate(5, 0, 0), "", time.Time{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reason, until, bounded := keptVerdict(tc.record, kept, tc.policy, tc.now)
			if reason != tc.wantReason || !until.Equal(tc.wantUntil) || bounded != tc.bounded {
				t.Errorf("keptVerdict = %q, %s, %v; want %q, %s, %v", reason, until, bounded, tc.wantReason, tc.wantUntil, tc.bounded)
			}
		})
	}
}

// The lists that gather every tenant's objects in one place (cluster-scoped, or in the operator's
// namespace) go through the tenant index; lists within a tenant's namespace need not.
func TestListsByTenantAreTheIndexedKinds(t *testing.T) {
	c := withTenantIndexes(fake.NewClientBuilder()).WithScheme(testScheme(t)).Build()
	r := &TenantReconciler{Client: c}
	for _, tc := range []struct {
		list client.ObjectList
		want bool
	}{
		{&rbacv1.ClusterRoleList{}, true}, {&rbacv1.ClusterRoleBindingList{}, true},
		{&appsv1.DeploymentList{}, true}, {&batchv1.CronJobList{}, true},
		{&rbacv1.RoleBindingList{}, false}, {&networkingv1.NetworkPolicyList{}, false},
	} {
		if got := r.listsByTenant(tc.list); got != tc.want {
			t.Errorf("listsByTenant(%T) = %v, want %v", tc.list, got, tc.want)
		}
	}
	// Through the index, a tenant's list holds its own objects only.
	for _, name := range []string{"acme", "globex"} {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "tenant-" + name + "-reader",
			Labels: map[string]string{builders.LabelManagedBy: builders.ManagedByValue, builders.LabelTenant: name}}}
		if err := c.Create(context.Background(), role); err != nil {
			t.Fatal(err)
		}
	}
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme"}}
	deleted, err := r.deleteUnwanted(context.Background(), tenant, "cluster role", &rbacv1.ClusterRoleList{}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deleted, []string{"tenant-acme-reader"}) {
		t.Errorf("deleted %v, want acme's cluster role only", deleted)
	}
}
