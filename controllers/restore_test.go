package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestTenantRestoreRestoresIntoANewTenant backs a tenant up to the local S3 from real PostgreSQL,
// then asks for its restore into a second tenant: the TenantRestore waits while the target's
// database is not ready, then creates its Job in the operator's namespace with the target's
// credentials beside it; the Job's agent, run here as its pod would run, restores into the target's
// (real) database, the rows equal; the Job's end makes the restore Succeeded and removes the
// credentials. A second restore into the now full target fails in the agent, and the restore says
// Failed and Stalled. Admission refuses the malformed ones by field.
func TestTenantRestoreRestoresIntoANewTenant(t *testing.T) {
	ctx := context.Background()
	s3 := stack.StartS3(t)
	src, dst := stack.StartPostgres(t, "15"), stack.StartPostgres(t, "15")

	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, operatorNamespace, "relic-s3", map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey})
	createSecret(t, operatorNamespace, "relic-identity", map[string]string{"identity": identity.String()})
	policy := &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "relic"},
		Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{{Name: "nightly", Schedule: "@daily", Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
				Endpoint: s3.Endpoint, Bucket: s3.Bucket, Region: s3.Region, Prefix: "relic", Insecure: true,
				CredentialsSecretRef: v1alpha1.SecretReference{Name: "relic-s3"}}}}},
			Encryption: v1alpha1.BackupEncryption{
				Recipients:        []string{identity.Recipient().String()},
				IdentitySecretRef: &v1alpha1.SecretKeyReference{Name: "relic-identity", Key: "identity"},
			},
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	source := minimalTenant("relic")
	source.Spec.Database.Version = "15"
	source.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy.Name}
	createTenant(t, source)
	target := minimalTenant("relic-copy")
	target.Spec.Database.Version = "15"
	createTenant(t, target)

	// The source's data, backed up as its CronJob's pod would.
	src.CreateDatabase(t, "app")
	runBackupRoleScript(t, src, secretValue(t, builders.NamespaceName(source), builders.DatabaseBackupSecretName(source), builders.BackupSecretKeyPassword))
	src.Exec(t, "app", `CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL);
		INSERT INTO orders (customer) SELECT 'customer ' || g FROM generate_series(1, 700) g;`)
	eventually(t, 20*time.Second, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.BackupCronJobName(source, "nightly")}, &batchv1.CronJob{})
	})
	backupID := runJobAsPod(t, builders.BackupCronJobName(source, "nightly"), src)

	// Admission: each malformed request is refused, naming the field.
	for _, bad := range []struct {
		spec v1alpha1.TenantRestoreSpec
		want string
	}{
		{v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic-copy"}, "set exactly one of spec.backup"},
		{v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic-copy", Backup: "latest", PointInTime: &v1alpha1.PointInTimeTarget{Latest: true}}, "set exactly one of spec.backup"},
		{v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic", Backup: "latest"}, "spec.confirmInPlace must repeat spec.tenant"},
		{v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic", Backup: "latest", ConfirmInPlace: "other"}, "spec.confirmInPlace must repeat spec.tenant"},
		{v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic-copy", PointInTime: &v1alpha1.PointInTimeTarget{LSN: "0/1", Latest: true}}, "set exactly one of time, lsn and latest"},
		{v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic-copy", PointInTime: &v1alpha1.PointInTimeTarget{LSN: "x; DROP"}}, "spec.pointInTime.lsn"},
		{v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic-copy", Backup: "../other"}, "spec.backup"},
	} {
		err := k8s.Create(ctx, &v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "refused"}, Spec: bad.spec})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			_ = k8s.Delete(ctx, &v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "refused"}})
			t.Errorf("create %+v: %v, want a refusal containing %q", bad.spec, err, bad.want)
		}
	}

	restore := &v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "relic-into-copy"},
		Spec: v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic-copy", Backup: backupID}}
	if err := k8s.Create(ctx, restore); err != nil {
		t.Fatal(err)
	}
	expectRestore(t, restore, v1alpha1.RestorePending, v1alpha1.ReasonTargetNotReady, "the database of Tenant relic-copy is not ready yet")
	changed := restore.DeepCopy()
	changed.Spec.Backup = "latest"
	if err := k8s.Update(ctx, changed); err == nil || !strings.Contains(err.Error(), "spec is immutable") {
		t.Errorf("changing a restore's spec: %v, want a refusal saying spec is immutable", err)
	}

	// The target's database becomes ready, as its pod would say through the kubelet, with its
	// certificate issued (the Secret as cert-manager writes it), whose CA the restore verifies with.
	markDatabasePodReady(t, target)
	expectRestore(t, restore, v1alpha1.RestorePending, v1alpha1.ReasonTargetNotReady, "the database CA of Tenant relic-copy")
	tls := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: builders.NamespaceName(target), Name: builders.DatabaseTLSSecretName(target), Labels: builders.TenantLabels(target)},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("server"), "tls.key": []byte("server key"), "ca.crt": []byte("the CA of relic-copy")}}
	if err := k8s.Create(ctx, tls); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, target, v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	expectRestore(t, restore, v1alpha1.RestoreRunning, v1alpha1.ReasonRestoreRunning, "restores backup "+backupID+" of tenant relic into tenant relic-copy")

	job := &batchv1.Job{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.RestoreJobName(restore)}, job); err != nil {
		t.Fatal(err)
	}
	pod := job.Spec.Template.Spec
	args := pod.Containers[0].Args
	for _, want := range []string{"restore", "--tenant relic", "--schedule nightly", "--backup " + backupID, "--no-owner", "--tenant-uid " + string(source.UID)} {
		if !strings.Contains(" "+strings.Join(args, " ")+" ", " "+want+" ") {
			t.Errorf("restore job args %q lack %q", args, want)
		}
	}
	if slices.Contains(args, "--force") {
		t.Errorf("a restore into another tenant must not replace objects: args %q", args)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken || job.Spec.Template.Labels[builders.LabelDatabaseClient] != "true" {
		t.Errorf("restore pod: token %v, labels %v; want no token and the database-client label", pod.AutomountServiceAccountToken, job.Spec.Template.Labels)
	}
	if len(job.OwnerReferences) != 1 || job.OwnerReferences[0].UID != restore.UID {
		t.Errorf("restore job owners %v, want the TenantRestore", job.OwnerReferences)
	}
	appPassword := secretValue(t, builders.NamespaceName(target), builders.DatabaseSecretName(target), builders.SecretKeyPassword)
	if got := secretValue(t, operatorNamespace, builders.RestoreJobName(restore), builders.BackupSecretKeyPassword); got != appPassword {
		t.Fatal("the restore's Secret does not carry the target's application password")
	}
	if got := secretValue(t, operatorNamespace, builders.RestoreJobName(restore), builders.BackupSecretKeyCA); got != "the CA of relic-copy" {
		t.Fatalf("the restore's Secret carries CA %q, want the target database's", got)
	}

	// The target's database as its pod has it: the application role owning an empty database.
	dst.Exec(t, "postgres", fmt.Sprintf(`CREATE ROLE app LOGIN PASSWORD '%s'`, appPassword))
	dst.Exec(t, "postgres", `CREATE DATABASE app OWNER app`)
	var stdout, stderr bytes.Buffer
	if code := backup.RunCommand(ctx, podArgs(t, pod, dst), &stdout, &stderr); code != 0 {
		t.Fatalf("restore job's agent exited %d: %s", code, stderr.String())
	}
	if got, want := contentOf(t, dst.DSNFor("app"), "orders"), contentOf(t, src.DSNFor("app"), "orders"); got != want {
		t.Fatalf("target's orders %s, want the source's %s", got, want)
	}
	var owner string
	query(t, dst.DSNFor("app"), `SELECT tableowner FROM pg_tables WHERE tablename = 'orders'`, &owner)
	if owner != "app" {
		t.Errorf("restored table belongs to %q, want the target's application role", owner)
	}
	finishJob(t, job, true)
	expectRestore(t, restore, v1alpha1.RestoreSucceeded, v1alpha1.ReasonSucceeded, "Restored backup "+backupID+" of tenant relic into tenant relic-copy")
	expectCondition(t, restore, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "rows checked")
	eventually(t, 10*time.Second, func() error {
		err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.RestoreJobName(restore)}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the restore's credentials are still in the operator's namespace (%v)", err)
		}
		return nil
	})
	expectEvent(t, restore, corev1.EventTypeNormal, "RestoreSucceeded", "relic-copy")
	if restore.Status.StartTime == nil || restore.Status.CompletionTime == nil || restore.Status.Schedule != "nightly" {
		t.Errorf("status %+v: want start and completion times and the schedule", restore.Status)
	}

	// Again into the same, now full, target: the agent refuses, the Job fails, the restore says so.
	again := &v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "relic-into-copy-again"},
		Spec: v1alpha1.TenantRestoreSpec{Tenant: "relic", TargetTenant: "relic-copy", Backup: "latest"}}
	if err := k8s.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	expectRestore(t, again, v1alpha1.RestoreRunning, v1alpha1.ReasonRestoreRunning, "the latest backup")
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.RestoreJobName(again)}, job); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := backup.RunCommand(ctx, podArgs(t, job.Spec.Template.Spec, dst), &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "is not empty") {
		t.Fatalf("restore into a full target: exit %d, %s; want a refusal", code, stderr.String())
	}
	finishJob(t, job, false)
	expectRestore(t, again, v1alpha1.RestoreFailed, v1alpha1.ReasonRestoreFailed, "the target is as it was")
	expectCondition(t, again, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonRestoreFailed, "kubectl logs -n "+operatorNamespace)
	expectEvent(t, again, corev1.EventTypeWarning, "RestoreFailed", "failed")
}

// expectRestore waits for a TenantRestore's phase and its Ready condition's reason and message.
func expectRestore(t *testing.T, restore *v1alpha1.TenantRestore, phase v1alpha1.TenantRestorePhase, reason, messagePart string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(restore), restore); err != nil {
			return err
		}
		var ready metav1.Condition
		for _, c := range restore.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady {
				ready = c
			}
		}
		if restore.Status.Phase != phase || ready.Reason != reason || !strings.Contains(ready.Message, messagePart) || ready.ObservedGeneration != restore.Generation {
			return fmt.Errorf("restore %s: phase %s, Ready %s/%s %q; want %s, %s containing %q", restore.Name, restore.Status.Phase, ready.Status, ready.Reason, ready.Message, phase, reason, messagePart)
		}
		return nil
	})
}

// markDatabasePodReady marks the tenant's database pod running and ready, as the kubelet would;
// the statefulset controller then counts it.
func markDatabasePodReady(t *testing.T, tenant *v1alpha1.Tenant) {
	t.Helper()
	pod := &corev1.Pod{}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: builders.NamespaceName(tenant), Name: builders.DatabaseName(tenant) + "-0"}, pod); err != nil {
			return err
		}
		now := metav1.Now()
		pod.Status.Phase = corev1.PodRunning
		pod.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		return k8s.Status().Update(context.Background(), pod)
	})
}

// finishJob ends a Job as the job controller would, Complete or Failed (envtest runs no job
// controller).
func finishJob(t *testing.T, job *batchv1.Job, succeeded bool) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(job), job); err != nil {
			return err
		}
		now := metav1.Now()
		start := metav1.NewTime(now.Add(-time.Minute))
		job.Status.StartTime = &start
		if succeeded {
			job.Status.Succeeded = 1
			job.Status.CompletionTime = &now
			job.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
			}
		} else {
			job.Status.Failed = 2
			job.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, LastTransitionTime: now, LastProbeTime: now},
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, LastTransitionTime: now, LastProbeTime: now},
			}
		}
		return k8s.Status().Update(context.Background(), job)
	})
}

// contentOf is a table's row count and a digest of its rows in key order.
func contentOf(t *testing.T, dsn, table string) string {
	t.Helper()
	var content string
	query(t, dsn, fmt.Sprintf(`SELECT count(*) || ' rows, md5 ' || coalesce(md5(string_agg(r::text, ',' ORDER BY r::text)), '-') FROM %s r`, table), &content)
	return content
}

// query runs one query that returns one row.
func query(t *testing.T, dsn, sql string, dest ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
