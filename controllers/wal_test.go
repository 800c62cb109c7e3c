package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	appsv1 "k8s.io/api/apps/v1"
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

// TestPhysicalScheduleStreamsWAL follows a tenant whose policy has a physical schedule: the
// database is built to archive (settings, a slot per physical schedule), a WAL receiver runs in the
// operator's namespace, the backup job takes incremental base backups with the manifest key, and
// WALArchiving tells the receiver's state. Turning the schedule logical removes the receiver and
// the slot.
func TestPhysicalScheduleStreamsWAL(t *testing.T) {
	ctx := context.Background()
	s3 := stack.StartS3(t)
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, operatorNamespace, "pitr-s3", map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey})
	createSecret(t, operatorNamespace, "pitr-identity", map[string]string{"identity": identity.String()})
	storageAt := func(prefix string) v1alpha1.BackupStorage {
		return v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: s3.Endpoint, Bucket: s3.Bucket, Region: s3.Region, Prefix: prefix, Insecure: true,
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "pitr-s3"}}}
	}
	policy := &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "pitr"},
		Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{
				{Name: "base", Schedule: "@daily", Method: v1alpha1.BackupMethodPhysical, FullEvery: "30d", Storage: storageAt("base")},
				{Name: "dump", Schedule: "@daily", Storage: storageAt("dump")},
			},
			Encryption: v1alpha1.BackupEncryption{
				Recipients:        []string{identity.Recipient().String()},
				IdentitySecretRef: &v1alpha1.SecretKeyReference{Name: "pitr-identity", Key: "identity"},
			},
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	tenant := minimalTenant("timely")
	tenant.Spec.Database.Version = "18"
	tenant.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy.Name}
	createTenant(t, tenant)

	// The database: archive settings, WAL summaries for incremental backups, the receiver's slot.
	sts := &appsv1.StatefulSet{}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: builders.NamespaceName(tenant), Name: builders.DatabaseName(tenant)}, sts); err != nil {
			return err
		}
		if got := builders.WALArchiveInUse(sts); !slices.Equal(got.Slots, []string{"tenantops_wal_base"}) || !got.Summarize {
			return fmt.Errorf("database archives %+v, want the slot of schedule base and WAL summaries", got)
		}
		return nil
	})
	args := strings.Join(sts.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"archive_mode=on", "summarize_wal=on", "archive_timeout=55s"} {
		if !strings.Contains(args, want) {
			t.Errorf("the server's arguments lack %s: %s", want, args)
		}
	}

	// The receiver of schedule base (none for the logical dump), and the backup job of base.
	receiverName := builders.WALReceiverName(tenant, "base")
	receiver := &appsv1.Deployment{}
	eventually(t, 20*time.Second, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: receiverName}, receiver)
	})
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.WALReceiverName(tenant, "dump")}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("a logical schedule has a WAL receiver: %v", err)
	}
	cj := &batchv1.CronJob{}
	eventually(t, 10*time.Second, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.BackupCronJobName(tenant, "base")}, cj)
	})
	if a := strings.Join(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(a, "--method physical") || !strings.Contains(a, "--manifest-key") {
		t.Errorf("the base schedule's job is not an incremental physical backup: %s", a)
	}
	secretValue(t, operatorNamespace, builders.ManifestKeySecretName(tenant), builders.ManifestKeySecretKey)

	// Not ready yet: Unknown; unready past the grace: Failing, naming the receiver; ready: Healthy.
	// (Unready since now on the suite's clock, which other tests move ahead of the Deployment's
	// creation.)
	setReceiverAvailable(t, receiver, corev1.ConditionFalse, testClock.Now())
	expectCondition(t, tenant, v1alpha1.ConditionWALArchiving, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "not ready yet")
	setReceiverAvailable(t, receiver, corev1.ConditionFalse, testClock.Now().Add(-10*time.Minute))
	expectCondition(t, tenant, v1alpha1.ConditionWALArchiving, metav1.ConditionFalse, v1alpha1.ReasonFailing, receiverName+" has not been ready for")
	expectCondition(t, tenant, v1alpha1.ConditionReady, metav1.ConditionFalse, anyReason, "WALArchiving")
	setReceiverAvailable(t, receiver, corev1.ConditionTrue, testClock.Now())
	nextCheck()
	expectCondition(t, tenant, v1alpha1.ConditionWALArchiving, metav1.ConditionTrue, v1alpha1.ReasonHealthy, "no base backup can be restored with it yet")

	// The database as its pod runs it: the StatefulSet's archive settings, the backup role (with
	// REPLICATION) and the receiver's slot made by the maintenance sidecar's scripts.
	pg := stack.StartPostgresWith(t, "18", stack.PostgresOptions{Config: serverConfig(sts), Programs: []string{"pg_basebackup"}})
	pg.CreateDatabase(t, "app")
	runBackupRoleScript(t, pg, secretValue(t, builders.NamespaceName(tenant), builders.DatabaseBackupSecretName(tenant), builders.BackupSecretKeyPassword))
	runWALSlotsScript(t, pg, "tenantops_wal_base")
	if got := slotNames(t, pg); !slices.Equal(got, []string{"tenantops_wal_base"}) {
		t.Errorf("slots after setup %v, want tenantops_wal_base", got)
	}
	pg.Exec(t, "app", `CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
		INSERT INTO events SELECT FROM generate_series(1, 1000);`)

	// The receiver runs as its Deployment's pod would; a base backup runs as the CronJob's pod
	// would; more writes, and segments switch as archive_timeout would switch them.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(receiver), receiver); err != nil {
		t.Fatal(err)
	}
	receiverArgs := podArgs(t, receiver.Spec.Template.Spec, pg)
	receiveCtx, stopReceiver := context.WithCancel(ctx)
	received := make(chan string, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		code := backup.RunCommand(receiveCtx, receiverArgs, &stdout, &stderr)
		received <- fmt.Sprintf("exit %d: %s", code, stderr.String())
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stopReceiver()
			t.Logf("receiver: %s", <-received)
		})
	}
	t.Cleanup(stop)
	baseID := runJobAsPod(t, builders.BackupCronJobName(tenant, "base"), pg)
	pg.Exec(t, "app", `INSERT INTO events SELECT FROM generate_series(1, 1000); SELECT pg_switch_wal();`)
	pg.Exec(t, "app", `INSERT INTO events SELECT FROM generate_series(1, 10); SELECT pg_switch_wal();`)

	// The operator's look finds the window: from the base backup to the archived WAL after it.
	eventually(t, 60*time.Second, func() error {
		nextCheck()
		current := &v1alpha1.Tenant{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), current); err != nil {
			return err
		}
		for _, st := range current.Status.Backups.Schedules {
			if st.Name != "base" {
				continue
			}
			p := st.PointInTime
			if p == nil || p.BaseBackups != 1 || p.EarliestTime == nil || p.LatestTime == nil || p.LastArchivedSegment == "" || st.LastBackupID == "" {
				return fmt.Errorf("schedule base: backup %q, point in time %+v", st.LastBackupID, p)
			}
			// Status times are whole seconds: a fast run writes and archives within one.
			if p.LatestTime.Before(p.EarliestTime) {
				return fmt.Errorf("window %s .. %s is empty", p.EarliestTime, p.LatestTime)
			}
			return nil
		}
		return fmt.Errorf("no status for schedule base")
	})
	expectCondition(t, tenant, v1alpha1.ConditionWALArchiving, metav1.ConditionTrue, v1alpha1.ReasonHealthy, "1 base backups can be restored")
	t.Logf("base backup %s restorable with the streamed WAL", baseID)
	// Its pod stops when its Deployment goes, before the database drops the slot.
	stop()

	// The schedule turns logical: the receiver goes, the database stops archiving, the
	// condition goes; the sidecar's next run drops the slot.
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Name: policy.Name}, policy); err != nil {
			return err
		}
		policy.Spec.Schedules[0].Method, policy.Spec.Schedules[0].FullEvery = v1alpha1.BackupMethodLogical, ""
		return k8s.Update(ctx, policy)
	})
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: receiverName}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("receiver still there: %v", err)
		}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: builders.NamespaceName(tenant), Name: builders.DatabaseName(tenant)}, sts); err != nil {
			return err
		}
		if got := builders.WALArchiveInUse(sts); len(got.Slots) > 0 {
			return fmt.Errorf("database still archives: %+v", got)
		}
		return nil
	})
	eventually(t, 20*time.Second, func() error {
		c, err := conditionOf(ctx, tenant, v1alpha1.ConditionWALArchiving)
		if err == nil {
			return fmt.Errorf("WALArchiving still there: %s %s", c.Status, c.Reason)
		}
		return nil
	})
	runWALSlotsScript(t, pg, "")
	if got := slotNames(t, pg); len(got) != 0 {
		t.Errorf("slots after the receiver went %v, want none", got)
	}
}

// setReceiverAvailable sets a receiver Deployment's status as the deployment controller would
// (envtest runs none).
func setReceiverAvailable(t *testing.T, d *appsv1.Deployment, status corev1.ConditionStatus, since time.Time) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		d.Status.ObservedGeneration = d.Generation
		d.Status.Replicas = 1
		d.Status.AvailableReplicas, d.Status.ReadyReplicas = 0, 0
		if status == corev1.ConditionTrue {
			d.Status.AvailableReplicas, d.Status.ReadyReplicas = 1, 1
		}
		d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: status,
			LastTransitionTime: metav1.NewTime(since), LastUpdateTime: metav1.NewTime(since), Reason: "Test"}}
		return k8s.Status().Update(context.Background(), d)
	})
}

// runWALSlotsScript runs the database pod's slot script with psql, as its maintenance sidecar
// does, for the slots its environment names.
func runWALSlotsScript(t *testing.T, pg *stack.Postgres, slots string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(pg.BinDir, "psql"), "-qAtX", "-d", "postgres", "-v", "slots="+slots, "-f", "-")
	cmd.Stdin = strings.NewReader(builders.WALSlotsSQL())
	cmd.Env = append(os.Environ(), "PGHOST=127.0.0.1", fmt.Sprintf("PGPORT=%d", pg.Port), "PGUSER=postgres", "PGPASSWORD="+pg.Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("WAL slots script: %v\n%s", err, out)
	}
}

func slotNames(t *testing.T, pg *stack.Postgres) []string {
	t.Helper()
	out, err := exec.Command(filepath.Join(pg.BinDir, "psql"), pg.DSNFor("postgres"), "-qAtX", "-c",
		"SELECT slot_name FROM pg_replication_slots ORDER BY 1").CombinedOutput()
	if err != nil {
		t.Fatalf("list slots: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// serverConfig is the postgresql.conf of a database StatefulSet's "-c" settings that archiving
// adds (the rest, TLS and pg_hba, are the pod's own).
func serverConfig(sts *appsv1.StatefulSet) string {
	var conf []string
	args := sts.Spec.Template.Spec.Containers[0].Args
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "-c" {
			continue
		}
		k, v, _ := strings.Cut(args[i+1], "=")
		switch k {
		case "wal_level", "archive_mode", "archive_command", "archive_timeout", "summarize_wal":
			conf = append(conf, fmt.Sprintf("%s = '%s'", k, v))
		}
	}
	return strings.Join(conf, "\n") + "\n"
}
