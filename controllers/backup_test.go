package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestBackupsAreScheduledCheckedAndPruned runs the backup orchestration against a real
// PostgreSQL 15 and a real S3-compatible server (versitygw), both on loopback: the CronJobs
// appear in the operator's namespace with the right pod specs; running the agent as their pods
// would (there is no kubelet here) makes BackupsFresh True; pruning keeps exactly what the
// RetentionPolicy says; deleting the backups in storage makes it Missing within one check; the
// injected clock makes it Stale; policy edits and suspend roll out; and a tenant admin can neither
// read the storage credentials nor touch the jobs.
func TestBackupsAreScheduledCheckedAndPruned(t *testing.T) {
	ctx := context.Background()
	s3 := stack.StartS3(t)
	pg := stack.StartPostgres(t, "15")

	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, operatorNamespace, "orchestration-s3", map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey})
	createSecret(t, operatorNamespace, "orchestration-identity", map[string]string{"identity": identity.String()})
	s3Storage := func(prefix string) v1alpha1.BackupStorage {
		return v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: s3.Endpoint, Bucket: s3.Bucket, Region: s3.Region, Prefix: prefix, Insecure: true,
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "orchestration-s3"}}}
	}
	policy := &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "orchestration"},
		Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{
				{Name: "hot", Schedule: "0 */12 * * *", Storage: s3Storage("hot")},
				{Name: "cold", Schedule: "@daily", Storage: s3Storage("cold")},
			},
			Encryption: v1alpha1.BackupEncryption{
				Recipients:        []string{identity.Recipient().String()},
				IdentitySecretRef: &v1alpha1.SecretKeyReference{Name: "orchestration-identity", Key: "identity"},
			},
			Verification: &v1alpha1.BackupVerification{Schedule: "0 4 * * 0"},
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	retention := &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "orchestration-keep-2"},
		Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2), MinKeep: ptr.To[int32](1)}}
	if err := k8s.Create(ctx, retention); err != nil {
		t.Fatal(err)
	}
	tenant := minimalTenant("orchestra")
	tenant.Spec.Database.Version = "15"
	tenant.Spec.Access.Admins = []rbacv1.Subject{user("User", "orchestra-admin")}
	tenant.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy.Name}
	tenant.Spec.RetentionPolicyRef = &v1alpha1.LocalObjectReference{Name: retention.Name}
	createTenant(t, tenant)

	// Nothing is due yet: a new tenant is not alarmed about backups it cannot have.
	expectCondition(t, tenant, v1alpha1.ConditionBackupsFresh, metav1.ConditionTrue, "FirstBackupPending", "hot: first backup due by")
	expectCondition(t, tenant, v1alpha1.ConditionBackupVerified, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "first verification due by")

	// The CronJobs: one backup and one verification per schedule, in the operator's namespace.
	hot := &batchv1.CronJob{}
	for _, name := range []string{cronJobBackup("hot"), cronJobBackup("cold"), cronJobVerify("hot"), cronJobVerify("cold")} {
		cj := &batchv1.CronJob{}
		eventually(t, 10*time.Second, func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: name}, cj) })
		if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds == nil {
			t.Errorf("%s: concurrency %s, deadline %v", name, cj.Spec.ConcurrencyPolicy, cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds)
		}
		if name == cronJobBackup("hot") {
			hot = cj
		}
	}
	if got := hot.Spec.Schedule; got != "0 */12 * * *" {
		t.Errorf("hot schedule %q", got)
	}

	// The database as the tenant's pod would have it: the maintenance sidecar's script creates the
	// backup role with the password the operator generated in the tenant namespace.
	ns := builders.NamespaceName(tenant)
	pg.CreateDatabase(t, "app")
	backupPassword := secretValue(t, ns, builders.DatabaseBackupSecretName(tenant), builders.BackupSecretKeyPassword)
	runBackupRoleScript(t, pg, backupPassword)
	pg.Exec(t, "app", `CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL);
		INSERT INTO orders (customer) SELECT 'customer ' || g FROM generate_series(1, 500) g;
		CREATE TABLE "ünïcode" (v text); INSERT INTO "ünïcode" VALUES ('zürich ✓');`)
	if got := secretValue(t, operatorNamespace, builders.BackupJobSecretName(tenant), builders.BackupSecretKeyPassword); got != backupPassword {
		t.Fatal("the backup job's Secret does not carry the backup role's password")
	}

	// Run the agent as each CronJob's pod would, twice for hot, then check.
	ids := map[string][]string{}
	for _, run := range []string{"hot", "cold", "hot", "hot"} {
		ids[run] = append(ids[run], runJobAsPod(t, cronJobBackup(run), pg))
		time.Sleep(1100 * time.Millisecond) // backup ids carry the start second
	}
	nextCheck()
	expectCondition(t, tenant, v1alpha1.ConditionBackupsFresh, metav1.ConditionTrue, v1alpha1.ReasonFresh, "hot: newest backup "+ids["hot"][2])

	// Retention keeps the last two of hot, oldest pruned, and nothing of cold.
	store := openStore(t, s3, "hot")
	remaining, err := catalog.List(ctx, store, tenant.Name, "hot")
	if err != nil {
		t.Fatal(err)
	}
	if got := backupIDs(remaining); strings.Join(got, ",") != ids["hot"][2]+","+ids["hot"][1] {
		t.Errorf("hot backups after pruning %v, want the newest two of %v", got, ids["hot"])
	}
	if cold, _ := catalog.List(ctx, openStore(t, s3, "cold"), tenant.Name, "cold"); len(cold) != 1 {
		t.Errorf("cold backups %d, want 1", len(cold))
	}
	// The pruning is recorded beside the backups, for the evidence a year later.
	if records, _, err := catalog.ReadPruneRecords(ctx, store, tenant.Name, string(tenant.UID), 0); err != nil || len(records) != 1 ||
		len(records[0].Pruned) != 1 || records[0].Pruned[0].ID != ids["hot"][0] || records[0].RetentionPolicy != retention.Name {
		t.Errorf("prune records = %+v, %v; want one of %s by %s", records, err, ids["hot"][0], retention.Name)
	}
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		b := tenant.Status.Backups
		if b == nil || len(b.Schedules) != 2 || b.Schedules[0].Name != "hot" || b.Schedules[0].Count != 2 ||
			b.Schedules[0].LastBackupID != ids["hot"][2] || b.Schedules[0].LastBackupSizeBytes == 0 || b.LastSuccessTime == nil {
			return fmt.Errorf("status.backups = %+v", b)
		}
		return nil
	})

	// A verification, as the verification CronJob runs it (a restore drill with the identity).
	runJobAsPod(t, cronJobVerify("hot"), pg)
	nextCheck()
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if tenant.Status.Backups.Schedules[0].LastVerificationTime == nil {
			return fmt.Errorf("no verification in status yet")
		}
		return nil
	})

	// Backups gone from storage: Missing within one check.
	for _, prefix := range []string{"hot", "cold"} {
		s := openStore(t, s3, prefix)
		objs, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if err := s.Delete(ctx, o.Key); err != nil {
				t.Fatal(err)
			}
		}
	}
	nextCheck()
	expectCondition(t, tenant, v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonMissing, "hot: no backup in storage")
	expectCondition(t, tenant, v1alpha1.ConditionReady, metav1.ConditionFalse, anyReason, "BackupsFresh: hot: no backup in storage")

	// A new backup, then time passes without one: Stale.
	runJobAsPod(t, cronJobBackup("hot"), pg)
	runJobAsPod(t, cronJobBackup("cold"), pg)
	nextCheck()
	expectCondition(t, tenant, v1alpha1.ConditionBackupsFresh, metav1.ConditionTrue, v1alpha1.ReasonFresh, "")
	testClock.SetTime(testClock.Now().Add(14 * time.Hour))
	expectCondition(t, tenant, v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonStale, "hot: newest backup")

	// Policy edits roll out to the tenant's CronJobs; suspend pauses them.
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			return err
		}
		policy.Spec.Schedules[0].Schedule = "30 */6 * * *"
		policy.Spec.Suspend = true
		return k8s.Update(ctx, policy)
	})
	eventually(t, 15*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(hot), hot); err != nil {
			return err
		}
		if hot.Spec.Schedule != "30 */6 * * *" || hot.Spec.Suspend == nil || !*hot.Spec.Suspend {
			return fmt.Errorf("hot CronJob schedule %q suspend %v", hot.Spec.Schedule, hot.Spec.Suspend)
		}
		return nil
	})
	expectCondition(t, tenant, v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonSuspended, "suspended by BackupPolicy orchestration")

	// A schedule removed from the policy takes its CronJobs with it; its backups stay in storage.
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			return err
		}
		policy.Spec.Schedules = policy.Spec.Schedules[:1]
		return k8s.Update(ctx, policy)
	})
	eventually(t, 15*time.Second, func() error {
		err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: cronJobBackup("cold")}, &batchv1.CronJob{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("cold CronJob still there: %v", err)
	})
	if cold, _ := catalog.List(ctx, openStore(t, s3, "cold"), tenant.Name, "cold"); len(cold) != 1 {
		t.Errorf("cold backups after removing the schedule: %d, want the 1 that was there", len(cold))
	}

	// The tenant's admin: no storage credentials, identity or job Secret readable, and no way to
	// delete the jobs or exec into their pods, all in the operator's namespace.
	admin := clientAs(t, "orchestra-admin")
	for _, name := range []string{"orchestration-s3", "orchestration-identity", builders.BackupJobSecretName(tenant)} {
		err := admin.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: name}, &corev1.Secret{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("tenant admin reading secret %s: %v, want forbidden", name, err)
		}
	}
	if err := admin.Delete(ctx, hot); !apierrors.IsForbidden(err) {
		t.Errorf("tenant admin deleting the backup CronJob: %v, want forbidden", err)
	}
	if err := admin.DeleteAllOf(ctx, &batchv1.Job{}, client.InNamespace(operatorNamespace)); !apierrors.IsForbidden(err) {
		t.Errorf("tenant admin deleting backup Jobs: %v, want forbidden", err)
	}
	adminUser, err := env.Environment.ControlPlane.AddUser(envtest.User{Name: "orchestra-admin"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clientset, err := kubernetes.NewForConfig(adminUser.Config())
	if err != nil {
		t.Fatal(err)
	}
	err = clientset.CoreV1().RESTClient().Post().Namespace(operatorNamespace).Resource("pods").Name(cronJobBackup("hot")+"-1-abcde").
		SubResource("exec").Param("command", "sh").Param("stdout", "true").Do(ctx).Error()
	if !apierrors.IsForbidden(err) {
		t.Errorf("tenant admin exec into a backup pod: %v, want forbidden", err)
	}
	// And inside the tenant's namespace, which the admin can read, no storage credential or
	// identity is to be found.
	secrets := &corev1.SecretList{}
	if err := admin.List(ctx, secrets, client.InNamespace(ns)); err != nil {
		t.Fatalf("tenant admin listing secrets in the own namespace: %v", err)
	}
	for _, s := range secrets.Items {
		for k, v := range s.Data {
			if bytes.Contains(v, []byte(s3.SecretKey)) || bytes.Contains(v, []byte(identity.String())) {
				t.Errorf("secret %s key %s in the tenant namespace holds a storage credential or the identity", s.Name, k)
			}
		}
	}

	// Deleting the Tenant removes its CronJobs and job Secret; the backups stay.
	if err := k8s.Delete(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		list := &batchv1.CronJobList{}
		if err := k8s.List(ctx, list, client.InNamespace(operatorNamespace), client.MatchingLabels{builders.LabelTenant: tenant.Name}); err != nil {
			return err
		}
		if len(list.Items) > 0 {
			return fmt.Errorf("%d CronJobs left", len(list.Items))
		}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.BackupJobSecretName(tenant)}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("job secret: %v", err)
		}
		return nil
	})
	if hotLeft, _ := catalog.List(ctx, openStore(t, s3, "hot"), tenant.Name, "hot"); len(hotLeft) == 0 {
		t.Error("deleting the tenant deleted its backups")
	}
}

// nextCheck moves the injected clock past the check interval, so the operator lists storage again
// on its next pass (it requeues at that interval).
func nextCheck() {
	testClock.SetTime(testClock.Now().Add(backupCheckInterval + time.Second))
}

func createSecret(t *testing.T, namespace, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, StringData: data}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func secretValue(t *testing.T, namespace, name, key string) string {
	t.Helper()
	s := &corev1.Secret{}
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
			return err
		}
		if len(s.Data[key]) == 0 {
			return fmt.Errorf("secret %s/%s has no %s", namespace, name, key)
		}
		return nil
	})
	return string(s.Data[key])
}

// runBackupRoleScript runs the database pod's backup-role script with psql, as its maintenance
// sidecar does.
func runBackupRoleScript(t *testing.T, pg *stack.Postgres, password string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(pg.BinDir, "psql"), "-qAtX", "-f", "-")
	cmd.Stdin = strings.NewReader(builders.BackupRoleSQL())
	cmd.Env = append(os.Environ(), "PGHOST=127.0.0.1", fmt.Sprintf("PGPORT=%d", pg.Port), "PGUSER=postgres",
		"PGPASSWORD="+pg.Password, "PGDATABASE=app", "BACKUP_PASSWORD="+password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup role script: %v\n%s", err, out)
	}
}

// runJobAsPod runs the agent with the arguments and environment of a CronJob's pod template,
// resolving Secret references as the kubelet would, and returns the last line of its output (a
// backup's id). The database address is the one change: the pod would reach postgres.<ns>.svc over
// TLS, the test reaches the loopback server.
// serveDrills runs the restorer the verify pod's scratch sidecar runs, with its PostgreSQL, and
// returns its socket.
func serveDrills(t *testing.T, initContainers []corev1.Container) string {
	t.Helper()
	var pgBin string
	for _, c := range initContainers {
		for i, a := range c.Args {
			if a == "--pg-bin-dir" && i+1 < len(c.Args) {
				pgBin = c.Args[i+1]
			}
		}
	}
	// Run as root here, the restorer starts its scratch server as postgres, who must reach the
	// directory: not under the test's private temporary directory.
	dir, err := os.MkdirTemp("", "tenantops-drill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "drill.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = backup.ServeDrills(ctx, ln, backup.DrillServerOptions{PgBinDir: pgBin, ScratchDir: dir})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

// cronJobBackup and cronJobVerify name the orchestra tenant's CronJobs of a schedule.
func cronJobBackup(schedule string) string {
	return builders.BackupCronJobName(&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "orchestra"}}, schedule)
}

func cronJobVerify(schedule string) string {
	return builders.VerifyCronJobName(&v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "orchestra"}}, schedule)
}

func runJobAsPod(t *testing.T, cronJob string, pg *stack.Postgres) string {
	t.Helper()
	ctx := context.Background()
	cj := &batchv1.CronJob{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: cronJob}, cj); err != nil {
		t.Fatal(err)
	}
	args := podArgs(t, cj.Spec.JobTemplate.Spec.Template.Spec, pg)
	var stdout, stderr bytes.Buffer
	if code := backup.RunCommand(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("%s: agent exited %d: %s", cronJob, code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1]
}

// podArgs are the agent's arguments in a pod's first container with what the kubelet would give
// it made local: the Secrets' files written to a directory of the test's, their values in the
// environment (set for the rest of the test), the database at the loopback server.
func podArgs(t *testing.T, pod corev1.PodSpec, pg *stack.Postgres) []string {
	t.Helper()
	container := pod.Containers[0]
	args := append([]string(nil), container.Args...)
	mounts := map[string]string{}
	for _, m := range container.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	dir := t.TempDir()
	for i := 0; i < len(args)-1; i++ {
		switch args[i] {
		case "--dsn":
			u, err := url.Parse(args[i+1])
			if err != nil {
				t.Fatal(err)
			}
			u.Host = fmt.Sprintf("127.0.0.1:%d", pg.Port)
			u.RawQuery = "sslmode=disable"
			args[i+1] = u.String()
		case "--pg-bin-dir":
			// The image's Debian layout is the test server's build here.
			args[i+1] = pg.BinDir
		case "--status-file":
			args[i+1] = filepath.Join(dir, "status.json")
		case "--termination-log":
			// The pod's /dev/termination-log, which the kubelet reads into the container's
			// terminated state: a file of the test's.
			args[i+1] = filepath.Join(dir, "termination-log")
		case "--identity-file", "--signing-key-file", "--manifest-key":
			// The identity's or signing key's volume: the Secret's key, as the kubelet would
			// mount it.
			for _, v := range pod.Volumes {
				if v.Secret != nil && mounts[filepath.Dir(args[i+1])] == v.Name {
					f := filepath.Join(dir, strings.TrimPrefix(args[i], "--"))
					value := secretValue(t, operatorNamespace, v.Secret.SecretName, v.Secret.Items[0].Key)
					if err := os.WriteFile(f, []byte(value), 0o600); err != nil {
						t.Fatal(err)
					}
					args[i+1] = f
				}
			}
		case "--data-key":
			// The data key's volume: a directory with each of the Secret's items, as the kubelet
			// mounts it.
			for _, v := range pod.Volumes {
				if v.Secret != nil && mounts[args[i+1]] == v.Name {
					keyDir := filepath.Join(dir, "data-key")
					if err := os.MkdirAll(keyDir, 0o700); err != nil {
						t.Fatal(err)
					}
					for _, item := range v.Secret.Items {
						value := secretValue(t, operatorNamespace, v.Secret.SecretName, item.Key)
						if err := os.WriteFile(filepath.Join(keyDir, item.Path), []byte(value), 0o600); err != nil {
							t.Fatal(err)
						}
					}
					args[i+1] = keyDir
				}
			}
		case "--drill-socket":
			// The pod's scratch sidecar: a restorer serving drills in this process.
			args[i+1] = serveDrills(t, pod.InitContainers)
		case "--scratch-dir":
			// Run as root here, the agent starts the scratch server as postgres, who must reach
			// the directory: not under the test's private temporary directory.
			scratch, err := os.MkdirTemp("", "tenantops-scratch-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(scratch) })
			if err := os.Chmod(scratch, 0o777); err != nil {
				t.Fatal(err)
			}
			args[i+1] = scratch
		}
	}
	for _, e := range container.Env {
		value := e.Value
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			value = secretValue(t, operatorNamespace, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
		}
		if e.Name == "HOME" {
			continue
		}
		t.Setenv(e.Name, value)
	}
	return args
}

func openStore(t *testing.T, s3 *stack.S3, prefix string) storage.Store {
	t.Helper()
	loc, err := storage.ParseLocation(s3.Location(prefix))
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenS3(context.Background(), loc, storage.Credentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

func backupIDs(bs []catalog.Backup) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}
