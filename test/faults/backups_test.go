package faults

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/retention"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/localstack"
	"github.com/tenantops/tenant-operator/test/stack"
)

// The backup storage of the cases with backups: one schedule, under one prefix of a local S3.
const (
	backupPrefix   = "faults"
	backupSchedule = "hot"
	// demoRecipient is the age recipient of config/samples (its identity is in the demo's
	// prerequisites): the policies need one; nothing is encrypted to it here.
	demoRecipient = "age1qmplsxqs2smjrp0kagrvhmyzwtk0ry2v2el6zpnefqampxq6gqnqkv08lz"
)

// The kwok Stage of hack/dev-cluster.sh that fails pods: the label turns it on, the annotations
// say how the container ended.
const (
	failLabel          = "faults.tenantops.io/fail"
	failExitCode       = "faults.tenantops.io/exit-code"
	failReason         = "faults.tenantops.io/reason"
	failMessage        = "faults.tenantops.io/message"
	manualAnnotation   = "cronjob.kubernetes.io/instantiate"
	backupSecretPrefix = "faults-backup-storage-"
)

// backupStorage is a local S3 (versitygw) for one case, the Secret in the operator's namespace
// that gives the operator and the backup Jobs its credentials, and a direct handle on what it
// stores.
type backupStorage struct {
	s3     *stack.S3
	store  storage.Store
	secret string
}

func startBackupStorage(ctx context.Context, t *testing.T, name string) *backupStorage {
	t.Helper()
	s3 := stack.StartS3(t)
	loc, err := storage.ParseLocation(s3.Location(backupPrefix))
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenS3(ctx, loc, storage.Credentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatalf("open the local S3: %v", err)
	}
	b := &backupStorage{s3: s3, store: store, secret: backupSecretPrefix + name}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: b.secret, Namespace: localstack.OperatorNamespace},
		StringData: map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey}}
	if err := retrying(ctx, "create Secret "+b.secret, func() error { return cluster.Client.Create(ctx, secret.DeepCopy(), fieldOwner) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Client.Delete(context.Background(), secret) })
	return b
}

// policies creates a BackupPolicy of one schedule on this storage and a RetentionPolicy, both
// named name, waits until the operator has made the policy's signing key, and returns it: the
// backups a case stores are signed with it, as the policy's backup Jobs sign theirs.
func (b *backupStorage) policies(ctx context.Context, t *testing.T, name, cron string, keep v1alpha1.RetentionPolicySpec) ed25519.PrivateKey {
	t.Helper()
	policy := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BackupPolicySpec{
		Schedules: []v1alpha1.BackupSchedule{{Name: backupSchedule, Schedule: cron, Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
			Endpoint: b.s3.Endpoint, Bucket: b.s3.Bucket, Region: b.s3.Region, Prefix: backupPrefix, Insecure: true,
			CredentialsSecretRef: v1alpha1.SecretReference{Name: b.secret}}}}},
		Encryption:     v1alpha1.BackupEncryption{Recipients: []string{demoRecipient}},
		AllowedRegions: []string{b.s3.Region},
	}}
	rp := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: keep}
	for _, o := range []client.Object{policy, rp} {
		if err := retrying(ctx, "create "+name, func() error { return cluster.Client.Create(ctx, o.DeepCopyObject().(client.Object), fieldOwner) }); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, o := range []client.Object{policy, rp} {
			_ = cluster.Client.Delete(context.Background(), o)
		}
	})
	secret := types.NamespacedName{Namespace: localstack.OperatorNamespace, Name: builders.BackupSigningSecretName(policy)}
	for {
		s := &corev1.Secret{}
		if err := cluster.Client.Get(ctx, secret, s); err == nil && len(s.Data[builders.BackupSigningSecretKey]) > 0 {
			key, err := catalog.ParseSigningKey(s.Data[builders.BackupSigningSecretKey])
			if err != nil {
				t.Fatalf("signing key of BackupPolicy %s: %v", name, err)
			}
			return key
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the operator made no signing key for BackupPolicy %s", name)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// backupTenant is a small tenant backed up by the policies named policy.
func backupTenant(name, policy string, deletion v1alpha1.DeletionPolicy) *v1alpha1.Tenant {
	t := newTenant(name, deletion)
	t.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy}
	t.Spec.RetentionPolicyRef = &v1alpha1.LocalObjectReference{Name: policy}
	return t
}

// tenantUID waits until the Tenant exists and returns its UID: its backups carry it.
func tenantUID(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	tenant := &v1alpha1.Tenant{}
	if err := retrying(ctx, "get Tenant "+name, func() error { return cluster.Client.Get(ctx, types.NamespacedName{Name: name}, tenant) }); err != nil {
		t.Fatal(err)
	}
	return string(tenant.UID)
}

// storeBackup stores a complete backup as the agent does (catalogtest's layout, signed): its data
// object, its signature, then its manifest, which makes it a backup. kwok runs no container, so
// the cases store what a backup Job's agent would have. It finished 30 seconds after it started,
// or now if that is sooner.
func (b *backupStorage) storeBackup(ctx context.Context, t *testing.T, key ed25519.PrivateKey, tenant, uid, id string, started time.Time) {
	t.Helper()
	data := []byte("encrypted dump of " + tenant + "/" + id)
	dir := catalog.Dir(tenant, backupSchedule, id)
	if _, err := b.store.Put(ctx, storage.Join(dir, catalog.DataObject), bytes.NewReader(data)); err != nil {
		t.Fatalf("store the data of %s: %v", dir, err)
	}
	sum := sha256.Sum256(data)
	finished := started.Add(30 * time.Second)
	if now := time.Now().UTC().Truncate(time.Second); now.Before(finished) {
		finished = now
	}
	m := catalog.Manifest{FormatVersion: catalog.FormatVersion, ID: id, Tenant: tenant, TenantUID: uid, Schedule: backupSchedule,
		StartedAt: started, FinishedAt: finished, Database: "app",
		Object: catalog.ObjectInfo{Name: catalog.DataObject, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
			Format: "pg_dump-custom", Compression: "zstd", Encryption: "age"}}
	if err := catalog.WriteSignedManifest(ctx, b.store, m, key); err != nil {
		t.Fatalf("store the manifest of %s: %v", dir, err)
	}
}

// abandonUpload leaves what an agent SIGKILLed mid-upload leaves (internal/backup's
// TestInterruptedBackupsAreNeverCounted shows it with the real agent): the first part of the
// data object's multipart upload, never completed, and nothing else.
func (b *backupStorage) abandonUpload(ctx context.Context, t *testing.T, tenant, id string) {
	t.Helper()
	core := minio.Core{Client: b.s3.Client}
	key := path.Join(backupPrefix, catalog.Dir(tenant, backupSchedule, id), catalog.DataObject)
	upload, err := core.NewMultipartUpload(ctx, b.s3.Bucket, key, minio.PutObjectOptions{})
	if err != nil {
		t.Fatalf("start the upload of %s: %v", key, err)
	}
	part := bytes.Repeat([]byte{0x5a}, 64<<10)
	if _, err := core.PutObjectPart(ctx, b.s3.Bucket, key, upload, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{}); err != nil {
		t.Fatalf("upload a part of %s: %v", key, err)
	}
}

// unfinishedUploads counts the multipart uploads under a tenant's backups.
func (b *backupStorage) unfinishedUploads(ctx context.Context, t *testing.T, tenant string) int {
	t.Helper()
	n := 0
	for u := range b.s3.Client.ListIncompleteUploads(ctx, b.s3.Bucket, path.Join(backupPrefix, tenant)+"/", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		n++
	}
	return n
}

// stored is what a tenant's schedule holds, by backup id: the names of each directory's objects.
func (b *backupStorage) stored(ctx context.Context, tenant string) (map[string][]string, error) {
	objs, err := b.store.List(ctx, catalog.Dir(tenant, backupSchedule, ""))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	prefix := catalog.Dir(tenant, backupSchedule, "")
	for _, o := range objs {
		rest := strings.TrimPrefix(strings.TrimPrefix(o.Key, prefix), "/")
		id, name, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		out[id] = append(out[id], name)
	}
	return out, nil
}

// backups are the ids of a tenant's complete backups (a manifest stored).
func (b *backupStorage) backups(ctx context.Context, tenant string) (map[string]bool, error) {
	dirs, err := b.stored(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for id, names := range dirs {
		if slices.Contains(names, catalog.ManifestObject) {
			out[id] = true
		}
	}
	return out, nil
}

// backupsSay is a readiness test: BackupsFresh has the reason given, Ready agrees (True when
// fresh, else False with the same reason, for the current generation), and status.backups
// counts count backups of the schedule with newest the newest.
func backupsSay(reason, newest string, count int) func(*v1alpha1.Tenant) (bool, string) {
	return func(t *v1alpha1.Tenant) (bool, string) {
		c := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionBackupsFresh)
		ready := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionReady)
		switch {
		case c == nil || ready == nil:
			return false, "no BackupsFresh or Ready yet"
		case c.Reason != reason:
			return false, fmt.Sprintf("BackupsFresh %s %s: %s, want %s", c.Status, c.Reason, c.Message, reason)
		case ready.ObservedGeneration != t.Generation:
			return false, fmt.Sprintf("Ready is of generation %d, the spec's is %d", ready.ObservedGeneration, t.Generation)
		case reason == v1alpha1.ReasonFresh && ready.Status != metav1.ConditionTrue:
			return false, fmt.Sprintf("Ready %s %s: %s", ready.Status, ready.Reason, ready.Message)
		case reason != v1alpha1.ReasonFresh && (ready.Status != metav1.ConditionFalse || ready.Reason != reason):
			return false, fmt.Sprintf("Ready %s %s: %s, want False %s", ready.Status, ready.Reason, ready.Message, reason)
		}
		var st *v1alpha1.ScheduleBackupStatus
		if t.Status.Backups != nil {
			for i := range t.Status.Backups.Schedules {
				if t.Status.Backups.Schedules[i].Name == backupSchedule {
					st = &t.Status.Backups.Schedules[i]
				}
			}
		}
		switch {
		case st == nil:
			return false, "no status.backups of schedule " + backupSchedule
		case st.LastBackupID != newest || int(st.Count) != count:
			return false, fmt.Sprintf("status.backups says %d backups, the newest %q; want %d, the newest %s", st.Count, st.LastBackupID, count, newest)
		}
		return true, ""
	}
}

// jobFault is how the kwok Stage ends a pod's container.
type jobFault struct{ exitCode, reason, message string }

func (f jobFault) annotations() map[string]string {
	return map[string]string{failExitCode: f.exitCode, failReason: f.reason, failMessage: f.message}
}

// setJobFault puts the fault on a CronJob's pod template (its Jobs' pods fail), or takes it
// off (nil), with a merge patch of the suite's own: the operator applies its CronJobs with
// server-side apply and leaves fields another writer set alone. Jobs created before keep the
// template they were created with.
func setJobFault(ctx context.Context, name string, f *jobFault) error {
	labels := map[string]any{failLabel: nil}
	annotations := map[string]any{failExitCode: nil, failReason: nil, failMessage: nil}
	if f != nil {
		labels[failLabel] = "true"
		for k, v := range f.annotations() {
			annotations[k] = v
		}
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"jobTemplate": map[string]any{"spec": map[string]any{
		"template": map[string]any{"metadata": map[string]any{"labels": labels, "annotations": annotations}}}}}})
	if err != nil {
		return err
	}
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: localstack.OperatorNamespace, Name: name}}
	return retrying(ctx, "patch CronJob "+name, func() error {
		return cluster.Client.Patch(ctx, cj, client.RawPatch(types.MergePatchType, patch), fieldOwner)
	})
}

// runByHand creates a Job from a CronJob's template, as `kubectl create job --from=cronjob/NAME`
// does (an SRE retrying a failed backup), with the fault f on its pods.
func runByHand(ctx context.Context, cronJob *batchv1.CronJob, name string, f jobFault) error {
	spec := cronJob.Spec.JobTemplate.Spec.DeepCopy()
	if spec.Template.Labels == nil {
		spec.Template.Labels = map[string]string{}
	}
	if spec.Template.Annotations == nil {
		spec.Template.Annotations = map[string]string{}
	}
	spec.Template.Labels[failLabel] = "true"
	for k, v := range f.annotations() {
		spec.Template.Annotations[k] = v
	}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cronJob.Namespace, Labels: cronJob.Spec.JobTemplate.Labels,
		Annotations: map[string]string{manualAnnotation: "manual"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cronJob.Name, UID: cronJob.UID,
			Controller: new(true), BlockOwnerDeletion: new(true)}}},
		Spec: *spec}
	return retrying(ctx, "create Job "+name, func() error { return cluster.Client.Create(ctx, job, fieldOwner) })
}

// jobsOf lists a CronJob's Jobs (those it controls, its own runs and the ones made by hand).
func jobsOf(ctx context.Context, cronJob string) ([]batchv1.Job, error) {
	list := &batchv1.JobList{}
	if err := cluster.Client.List(ctx, list, client.InNamespace(localstack.OperatorNamespace)); err != nil {
		return nil, err
	}
	var out []batchv1.Job
	for _, j := range list.Items {
		if c := metav1.GetControllerOf(&j); c != nil && c.Kind == "CronJob" && c.Name == cronJob {
			out = append(out, j)
		}
	}
	return out, nil
}

// jobState is a Job's Failed or Complete condition, "" while it runs.
func jobState(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobFailed || c.Type == batchv1.JobComplete) {
			return string(c.Type)
		}
	}
	return ""
}

// writesBy lists the writes user made that the API server accepted in [from, to), leases
// excepted, as "verb resource[/subresource] namespace/name".
func writesBy(t *testing.T, user string, from, to time.Time) []string {
	t.Helper()
	_, accepted := auditedWrites(t, user, from, to)
	writes := make([]string, 0, len(accepted))
	for _, e := range accepted {
		resource := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			resource += "/" + e.ObjectRef.Subresource
		}
		writes = append(writes, fmt.Sprintf("%s %s %s/%s", e.Verb, resource, e.ObjectRef.Namespace, e.ObjectRef.Name))
	}
	return writes
}

// reconciles reads the operator's count of Tenant reconciles, and of those that ended in an
// error, from its metrics.
func reconciles(t *testing.T, op *localstack.Operator) (total, failed float64) {
	t.Helper()
	resp, err := http.Get(op.Metrics)
	if err != nil {
		t.Fatalf("metrics of %s: %v", op.Name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "controller_runtime_reconcile_total{") || !strings.Contains(line, `controller="tenant"`) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metrics of %s: %q: %v", op.Name, line, err)
		}
		total += v
		if strings.Contains(line, `result="error"`) {
			failed += v
		}
	}
	return total, failed
}

// A tenant's backup CronJob whose Jobs fail again and again: the scheduled runs fail (exit 1, as
// a pg_dump that cannot connect), and three runs retried by hand are each killed mid-upload
// (exit 137) and leave the unfinished upload a SIGKILLed agent leaves. The tenant says JobFailing
// and names the Job; the operator is idle while nothing changes (no writes, no reconcile but its
// looks); the CronJob's history keeps 3 failed Jobs however many fail; nothing is pruned and no
// unfinished upload is counted. Once pods succeed again, the next scheduled run's backup counts.
func TestBackupJobsFailing(t *testing.T) {
	requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const (
		name     = "jobs-fail"
		lookedAt = 10 * time.Second
	)
	b := startBackupStorage(ctx, t, name)
	user := "operator-backup-jobs"
	kubeconfig, err := cluster.KubeconfigAs(user)
	if err != nil {
		t.Fatal(err)
	}
	op := startOperator(t, user, "--kubeconfig", kubeconfig, "--backup-check-interval", lookedAt.String())
	key := b.policies(ctx, t, name, "* * * * *", v1alpha1.RetentionPolicySpec{KeepLast: new(int32(4))})
	tenant := backupTenant(name, name, v1alpha1.DeletionPolicyDelete)
	if err := create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	uid := tenantUID(ctx, t, name)
	// Three backups ten minutes apart, the newest a minute old: fresh (every minute allows 31 min),
	// and all kept by keepLast 4.
	now := time.Now().UTC().Truncate(time.Second)
	var seeded []string
	for i := range 3 {
		started := now.Add(-time.Duration(21-10*i) * time.Minute)
		id := catalog.NewID(started)
		b.storeBackup(ctx, t, key, name, uid, id, started)
		seeded = append(seeded, id)
	}
	newest := seeded[2]
	converge(ctx, t, expectation{live: []string{name}, ready: backupsSay(v1alpha1.ReasonFresh, newest, 3)}, 3*time.Minute)

	cronJobName := builders.BackupCronJobName(tenant, backupSchedule)
	cronJob := &batchv1.CronJob{}
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: localstack.OperatorNamespace, Name: cronJobName}, cronJob); err != nil {
		t.Fatal(err)
	}
	failing := jobFault{exitCode: "1", reason: "Error", message: "pg_dump: error: connection to server failed (injected)"}
	killed := jobFault{exitCode: "137", reason: "Error", message: "killed (SIGKILL) mid-upload (injected)"}
	injected := time.Now()
	if err := setJobFault(ctx, cronJobName, &failing); err != nil {
		t.Fatal(err)
	}
	byHand := map[string]bool{}
	for i := range 3 {
		job := fmt.Sprintf("%s-retry-%d", name, i)
		if err := runByHand(ctx, cronJob, job, killed); err != nil {
			t.Fatal(err)
		}
		byHand[job] = true
	}
	// Each pod killed mid-upload leaves an unfinished upload of a backup of its own.
	leftovers := map[string]bool{}
	failedJobs := map[string]bool{}
	var scheduledFailed string
	var lastFailure time.Time
	for deadline := time.Now().Add(3 * time.Minute); scheduledFailed == "" || len(failedJobs) < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("within 3 minutes %d Jobs failed (%v), the scheduled one %q", len(failedJobs), failedJobs, scheduledFailed)
		}
		pods := &corev1.PodList{}
		if err := cluster.Client.List(ctx, pods, client.InNamespace(localstack.OperatorNamespace), client.HasLabels{failLabel}); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if byHand[p.Labels["job-name"]] && p.Status.Phase == corev1.PodFailed && !leftovers[p.Name] {
				if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Terminated == nil ||
					p.Status.ContainerStatuses[0].State.Terminated.ExitCode != 137 {
					t.Errorf("pod %s failed, but not as the fault says (exit 137): %+v", p.Name, p.Status.ContainerStatuses)
				}
				started := p.CreationTimestamp.Time
				b.abandonUpload(ctx, t, name, catalog.NewID(started))
				leftovers[p.Name] = true
			}
		}
		jobs, err := jobsOf(ctx, cronJobName)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if jobState(&j) != string(batchv1.JobFailed) || failedJobs[j.Name] {
				continue
			}
			failedJobs[j.Name] = true
			lastFailure = time.Now()
			if !byHand[j.Name] {
				scheduledFailed = j.Name
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("failed: %v; %d pods killed mid-upload", slices.Sorted(maps.Keys(failedJobs)), len(leftovers))
	// The tenant says so, naming the newest Job and still the newest backup.
	converge(ctx, t, expectation{live: []string{name}, ready: backupsSay(v1alpha1.ReasonJobFailing, newest, 3)}, 2*time.Minute)
	said := time.Since(lastFailure)
	fresh := &v1alpha1.Tenant{}
	if err := cluster.Client.Get(ctx, types.NamespacedName{Name: name}, fresh); err != nil {
		t.Fatal(err)
	}
	condition := meta.FindStatusCondition(fresh.Status.Conditions, v1alpha1.ConditionBackupsFresh)
	t.Logf("BackupsFresh %s %s: %s", condition.Status, condition.Reason, condition.Message)
	if !strings.Contains(condition.Message, "BackoffLimitExceeded") {
		t.Errorf("BackupsFresh does not say why the Job failed: %s", condition.Message)
	}

	// The history keeps 3 failed Jobs, however many failed.
	var kept []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		jobs, err := jobsOf(ctx, cronJobName)
		if err != nil {
			t.Fatal(err)
		}
		kept = kept[:0]
		for _, j := range jobs {
			if jobState(&j) == string(batchv1.JobFailed) {
				kept = append(kept, j.Name)
			}
		}
		if len(kept) <= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d failed Jobs of CronJob %s kept 30s after the last failed: %v (failedJobsHistoryLimit is 3)", len(kept), cronJobName, kept)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Idle while nothing changes: no write, no failed reconcile, a reconcile per look at most.
	// The window ends before the next scheduled run (a run starting and failing changes the
	// condition: writes that are due); when too little is left, after that run failed too.
	const quiet = 12 * time.Second
	for time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)) < quiet+2*time.Second {
		next := time.Now().Truncate(time.Minute).Add(time.Minute)
		t.Logf("the next run starts at %s, before a quiet window could end: waiting until it failed", next.Format(time.TimeOnly))
		for deadline := next.Add(2 * time.Minute); ; {
			if time.Now().After(deadline) {
				t.Fatalf("the run of %s did not fail within 2 minutes", next.Format(time.TimeOnly))
			}
			done := false
			jobs, err := jobsOf(ctx, cronJobName)
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				if !j.CreationTimestamp.Before(&metav1.Time{Time: next.Add(-time.Second)}) && jobState(&j) == string(batchv1.JobFailed) {
					failedJobs[j.Name] = true
					done = true
				}
			}
			if done {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		converge(ctx, t, expectation{live: []string{name}, ready: backupsSay(v1alpha1.ReasonJobFailing, newest, 3)}, 2*time.Minute)
	}
	quietFrom := time.Now()
	before, beforeFailed := reconciles(t, op)
	time.Sleep(quiet)
	after, afterFailed := reconciles(t, op)
	quietTo := time.Now()
	if jobs, err := jobsOf(ctx, cronJobName); err == nil {
		for _, j := range jobs {
			if j.CreationTimestamp.After(quietFrom) {
				t.Logf("Job %s started during the quiet window", j.Name)
			}
		}
	}
	quietWrites := writesBy(t, user, quietFrom, quietTo)
	if len(quietWrites) > 0 {
		t.Errorf("with the Jobs failing and nothing new, the operator wrote %d times in %s:\n%s", len(quietWrites), quiet, strings.Join(quietWrites, "\n"))
	}
	maxReconciles := 2 * (int(quiet/lookedAt) + 1)
	if n := int(after - before); n > maxReconciles || afterFailed > beforeFailed {
		t.Errorf("with the Jobs failing and nothing new, %d reconciles (%d failed) in %s; at most %d expected (looks every %s)",
			n, int(afterFailed-beforeFailed), quiet, maxReconciles, lookedAt)
	}
	// Nothing pruned, nothing unfinished counted.
	stored, err := b.backups(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range seeded {
		if !stored[id] {
			t.Errorf("backup %s was pruned while the Jobs failed", id)
		}
	}
	if n := b.unfinishedUploads(ctx, t, name); n != len(leftovers) {
		t.Errorf("%d unfinished uploads, want the %d the killed pods left (younger than a day, they stay)", n, len(leftovers))
	}
	failingWrites := writesBy(t, user, injected, quietTo)

	// Pods succeed again: the next scheduled run stores a backup, which counts.
	if err := setJobFault(ctx, cronJobName, nil); err != nil {
		t.Fatal(err)
	}
	cleared := time.Now()
	var recovered, runID string
	var ran time.Time
	for deadline := time.Now().Add(2 * time.Minute); runID == ""; {
		if time.Now().After(deadline) {
			t.Fatal("no scheduled Job completed within 2 minutes of the fault's end")
		}
		jobs, err := jobsOf(ctx, cronJobName)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.Annotations[manualAnnotation] == "" && j.CreationTimestamp.After(cleared) && j.Status.StartTime != nil {
				// What its agent would store, stored as it runs: kwok runs no container.
				ran = j.Status.StartTime.Time
				runID = catalog.NewID(ran)
				recovered = j.Name
				b.storeBackup(ctx, t, key, name, uid, runID, ran.UTC())
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		job := &batchv1.Job{}
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: localstack.OperatorNamespace, Name: recovered}, job); err != nil {
			t.Fatal(err)
		}
		if state := jobState(job); state == string(batchv1.JobComplete) {
			break
		} else if state != "" || time.Now().After(deadline) {
			t.Fatalf("Job %s, run after the fault was taken off: %q, want Complete", recovered, state)
		}
		time.Sleep(300 * time.Millisecond)
	}
	converge(ctx, t, expectation{live: []string{name}, ready: backupsSay(v1alpha1.ReasonFresh, runID, 4)}, 2*time.Minute)
	recovery := time.Since(ran)
	if n := b.unfinishedUploads(ctx, t, name); n != len(leftovers) {
		t.Errorf("after recovery: %d unfinished uploads, want %d", n, len(leftovers))
	}
	record("backup Jobs failing: the scheduled run failed (exit 1) and 3 runs by hand were killed mid-upload (exit 137, %d unfinished uploads left): JobFailing %s after the last failure, %d writes in %s of failure, idle (0 writes, %d reconciles in %s), %d failed Jobs kept of %d; pods succeeding again, %s's backup counted %s after it started",
		len(leftovers), said.Round(100*time.Millisecond), len(failingWrites), quietTo.Sub(injected).Round(time.Second),
		int(after-before), quiet, len(kept), len(failedJobs), recovered, recovery.Round(100*time.Millisecond))
	cleanup(ctx, t, []string{name})
}

// retentionKeeps is what retention keeps and prunes of backups started at times (by id): the
// decision over every backup ever stored, which pruning must reach and never go past.
func retentionKeeps(policy v1alpha1.RetentionPolicySpec, times map[string]time.Time) (keep, prune map[string]bool, err error) {
	var candidates []retention.Candidate
	for id, at := range times {
		candidates = append(candidates, retention.Candidate{ID: id, Time: at})
	}
	d, err := retention.Decide(policy, candidates, time.Now(), time.UTC)
	if err != nil {
		return nil, nil, err
	}
	keep, prune = map[string]bool{}, map[string]bool{}
	for _, c := range d.Keep {
		keep[c.ID] = true
	}
	for _, c := range d.Prune {
		prune[c.ID] = true
	}
	return keep, prune, nil
}
