package controllers_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestTenantExportHandsTheCustomerTheirData backs a tenant up to the local S3 from real PostgreSQL
// and asks for its export at contract end: the TenantExport creates the export Job in the
// operator's namespace; its agent, run here as its pod would run, writes the archive beside the
// backups, which only the customer's key opens and which holds the tenant's table; the Job's end
// makes the export Succeeded with where the archive is. A failed Job makes it Failed and Stalled;
// admission refuses a recipient that is not an age public key, and any change of the spec.
func TestTenantExportHandsTheCustomerTheirData(t *testing.T) {
	ctx := context.Background()
	s3 := stack.StartS3(t)
	src := stack.StartPostgres(t, "15")
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	customer, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, operatorNamespace, "leaving-s3", map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey})
	createSecret(t, operatorNamespace, "leaving-identity", map[string]string{"identity": identity.String()})
	policy := &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "leaving"},
		Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{{Name: "nightly", Schedule: "@daily", Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
				Endpoint: s3.Endpoint, Bucket: s3.Bucket, Region: s3.Region, Prefix: "leaving", Insecure: true,
				CredentialsSecretRef: v1alpha1.SecretReference{Name: "leaving-s3"}}}}},
			Encryption: v1alpha1.BackupEncryption{
				Recipients:        []string{identity.Recipient().String()},
				IdentitySecretRef: &v1alpha1.SecretKeyReference{Name: "leaving-identity", Key: "identity"},
			},
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	tenant := minimalTenant("leaving")
	tenant.Spec.Database.Version = "15"
	tenant.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy.Name}
	createTenant(t, tenant)
	src.CreateDatabase(t, "app")
	runBackupRoleScript(t, src, secretValue(t, builders.NamespaceName(tenant), builders.DatabaseBackupSecretName(tenant), builders.BackupSecretKeyPassword))
	src.Exec(t, "app", `CREATE TABLE invoices (id bigserial PRIMARY KEY, total numeric NOT NULL);
		INSERT INTO invoices (total) SELECT g * 1.5 FROM generate_series(1, 300) g;`)
	eventually(t, 20*time.Second, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.BackupCronJobName(tenant, "nightly")}, &batchv1.CronJob{})
	})
	runJobAsPod(t, builders.BackupCronJobName(tenant, "nightly"), src)

	// Admission.
	for _, bad := range []struct {
		spec v1alpha1.TenantExportSpec
		want string
	}{
		{v1alpha1.TenantExportSpec{Tenant: "leaving", Recipients: []string{"AGE-SECRET-KEY-1QQQ"}}, "spec.recipients[0]"},
		{v1alpha1.TenantExportSpec{Tenant: "leaving"}, "spec.recipients"},
		{v1alpha1.TenantExportSpec{Tenant: "leaving", Backup: "../x", Recipients: []string{customer.Recipient().String()}}, "spec.backup"},
	} {
		err := k8s.Create(ctx, &v1alpha1.TenantExport{ObjectMeta: metav1.ObjectMeta{Name: "refused"}, Spec: bad.spec})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			_ = k8s.Delete(ctx, &v1alpha1.TenantExport{ObjectMeta: metav1.ObjectMeta{Name: "refused"}})
			t.Errorf("create %+v: %v, want a refusal naming %q", bad.spec, err, bad.want)
		}
	}

	export := &v1alpha1.TenantExport{ObjectMeta: metav1.ObjectMeta{Name: "contract-end"},
		Spec: v1alpha1.TenantExportSpec{Tenant: "leaving", Recipients: []string{customer.Recipient().String()}}}
	if err := k8s.Create(ctx, export); err != nil {
		t.Fatal(err)
	}
	expectExport(t, export, v1alpha1.RestoreRunning, v1alpha1.ReasonExportRunning, "exports the latest backup of tenant leaving")
	changed := export.DeepCopy()
	changed.Spec.Backup = "latest"
	if err := k8s.Update(ctx, changed); err == nil || !strings.Contains(err.Error(), "spec is immutable") {
		t.Errorf("changing an export's spec: %v, want a refusal saying spec is immutable", err)
	}
	job := &batchv1.Job{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: export.Status.JobName}, job); err != nil {
		t.Fatal(err)
	}
	if len(job.OwnerReferences) != 1 || job.OwnerReferences[0].UID != export.UID {
		t.Errorf("export job owners %v, want the TenantExport", job.OwnerReferences)
	}
	var stdout, stderr bytes.Buffer
	if code := backup.RunCommand(ctx, podArgs(t, job.Spec.Template.Spec, src), &stdout, &stderr); code != 0 {
		t.Fatalf("export job's agent exited %d: %s", code, stderr.String())
	}
	finishJob(t, job, true)
	expectExport(t, export, v1alpha1.RestoreSucceeded, v1alpha1.ReasonSucceeded, "leaving/exports/contract-end.age")
	if export.Status.Archive != "leaving/exports/contract-end.age" || export.Status.CompletionTime == nil {
		t.Errorf("status %+v: want the archive's key and a completion time", export.Status)
	}
	expectEvent(t, export, corev1.EventTypeNormal, "ExportSucceeded", "leaving/exports/contract-end.age")

	// The archive beside the backups: only the customer's key opens it, and it holds the table.
	obj, err := s3.Client.GetObject(ctx, s3.Bucket, "leaving/"+export.Status.Archive, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read the archive: %v", err)
	}
	if _, err := age.Decrypt(bytes.NewReader(sealed), identity); err == nil {
		t.Fatal("the platform's identity opens the customer's archive")
	}
	plain, err := age.Decrypt(bytes.NewReader(sealed), customer)
	if err != nil {
		t.Fatalf("the customer's key does not open the archive: %v", err)
	}
	data, err := io.ReadAll(plain)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("the archive is not a zip: %v", err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if joined := strings.Join(names, " "); !strings.Contains(joined, "dump.sql") || !strings.Contains(joined, "public.invoices.csv") {
		t.Errorf("archive holds %v, want dump.sql and the invoices table's CSV", names)
	}

	// A failed Job: Failed and Stalled, saying where to look.
	failing := &v1alpha1.TenantExport{ObjectMeta: metav1.ObjectMeta{Name: "contract-end-2"},
		Spec: v1alpha1.TenantExportSpec{Tenant: "leaving", Backup: "20200101T000000Z-000000", Recipients: []string{customer.Recipient().String()}}}
	if err := k8s.Create(ctx, failing); err != nil {
		t.Fatal(err)
	}
	expectExport(t, failing, v1alpha1.RestoreRunning, v1alpha1.ReasonExportRunning, "backup 20200101T000000Z-000000")
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: failing.Status.JobName}, job); err != nil {
		t.Fatal(err)
	}
	finishJob(t, job, false)
	expectExport(t, failing, v1alpha1.RestoreFailed, v1alpha1.ReasonExportFailed, "no archive is visible")
	expectCondition(t, failing, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonExportFailed, "kubectl logs")
}

// expectExport waits for a TenantExport's phase and its Ready condition's reason and message.
func expectExport(t *testing.T, export *v1alpha1.TenantExport, phase v1alpha1.TenantRestorePhase, reason, messagePart string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(export), export); err != nil {
			return err
		}
		c, err := conditionOf(context.Background(), export, v1alpha1.ConditionReady)
		if err != nil {
			return err
		}
		if export.Status.Phase != phase || c.Reason != reason || !strings.Contains(c.Message, messagePart) || c.ObservedGeneration != export.Generation {
			return fmt.Errorf("export %s: phase %s, Ready %s/%s %q; want %s, %s containing %q", export.Name, export.Status.Phase, c.Status, c.Reason, c.Message, phase, reason, messagePart)
		}
		return nil
	})
}
