package builders

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// physicalPolicy is backupPolicy with its hot schedule physical, daily incremental and monthly
// full.
func physicalPolicy() *v1alpha1.BackupPolicy {
	p := backupPolicy()
	p.Spec.Schedules[0].Method = v1alpha1.BackupMethodPhysical
	p.Spec.Schedules[0].FullEvery = "30d"
	p.Status.Signing = &v1alpha1.BackupSigningStatus{PublicKey: "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
	return p
}

func argValue(args []string, flag string) (string, bool) {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return "", false
	}
	return args[i+1], true
}

// TestWALReceiverDeployment: one receiver per physical schedule, in the operator's namespace, with
// what the schedule's backup job holds (writer credential, data key, signing key) and nothing a
// verification holds (the identity), one pod at a time on the schedule's slot, Pod Security
// restricted, no token, through the tenant's firewall, and a readiness probe on its progress.
func TestWALReceiverDeployment(t *testing.T) {
	tenant := full()
	bp := physicalPolicy()
	opts := testOptions()
	if _, err := WALReceiverDeployment(tenant, bp, bp.Spec.Schedules[1], opts); err == nil {
		t.Error("a receiver for a logical schedule was built")
	}
	d := typed[appsv1.Deployment](t, must(WALReceiverDeployment(tenant, bp, bp.Spec.Schedules[0], opts)))
	if d.Namespace != opts.OperatorNamespace || d.Name != WALReceiverName(tenant, "hot") {
		t.Errorf("receiver %s/%s, want %s/%s", d.Namespace, d.Name, opts.OperatorNamespace, WALReceiverName(tenant, "hot"))
	}
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("want one replica, replaced by Recreate (never two on one slot); got %d, %s", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template
	evaluator, err := newEvaluator()
	if err != nil {
		t.Fatal(err)
	}
	if res := policy.AggregateCheckResults(evaluator.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}, &pod.ObjectMeta, &pod.Spec)); !res.Allowed {
		t.Errorf("pod violates Pod Security restricted: %s: %s", res.ForbiddenReason(), res.ForbiddenDetail())
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the receiver never calls the API server; its pod must not mount a token")
	}
	for k, v := range opts.OperatorPodSelector {
		if pod.Labels[k] != v {
			t.Errorf("pod lacks the firewall label %s=%s: it could not reach the database", k, v)
		}
	}
	c := pod.Spec.Containers[0]
	want := map[string]string{"--slot": "tenantops_wal_hot", "--tenant": tenant.Name, "--tenant-uid": string(tenant.UID),
		"--data-key": dataKeyMountDir, "--dsn": BackupDSN(tenant), "--signing-key-file": signingMountDir + "/" + BackupSigningSecretKey}
	for flag, value := range want {
		if got, _ := argValue(c.Args, flag); got != value {
			t.Errorf("%s %q, want %q", flag, got, value)
		}
	}
	if c.Args[0] != "wal-receive" || strings.Contains(strings.Join(c.Args, " "), "identity") {
		t.Errorf("want wal-receive without any identity; args %v", c.Args)
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "AWS_") && e.ValueFrom.SecretKeyRef.Name != bp.Spec.Schedules[0].Storage.S3.WriterSecretName(tenant.Name) {
			t.Errorf("%s from %s, want the writer's Secret", e.Name, e.ValueFrom.SecretKeyRef.Name)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == bp.Spec.Encryption.IdentitySecretRef.Name {
			t.Error("the receiver mounts the policy's identity, which reads every backup")
		}
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.Exec == nil || c.ReadinessProbe.Exec.Command[1] != "wal-receive-status" {
		t.Errorf("want a readiness probe on the receiver's progress, got %+v", c.ReadinessProbe)
	}
}

func newEvaluator() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestPhysicalScheduleJobs: a physical schedule's backup job takes base backups (incremental, a
// full one every fullEvery, with the manifest key), and its verification checks checksums and the
// signature without the identity or a scratch server.
func TestPhysicalScheduleJobs(t *testing.T) {
	tenant := full()
	policy := physicalPolicy()
	hot := policy.Spec.Schedules[0]
	b := typed[batchv1.CronJob](t, must(BackupCronJob(tenant, policy, hot, 24*time.Hour, testOptions())))
	args := b.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args
	if m, _ := argValue(args, "--method"); m != "physical" {
		t.Errorf("--method %q, want physical; args %v", m, args)
	}
	if f, _ := argValue(args, "--full-every"); f != (30 * 24 * time.Hour).String() {
		t.Errorf("--full-every %q, want 720h0m0s", f)
	}
	if k, _ := argValue(args, "--manifest-key"); k != manifestKeyMountDir+"/"+ManifestKeySecretKey {
		t.Errorf("--manifest-key %q", k)
	}
	mounted := false
	for _, v := range b.Spec.JobTemplate.Spec.Template.Spec.Volumes {
		mounted = mounted || (v.Secret != nil && v.Secret.SecretName == ManifestKeySecretName(tenant))
	}
	if !mounted {
		t.Error("the manifest key Secret is not mounted")
	}
	// Without fullEvery every backup is full: no manifest key.
	hot.FullEvery = ""
	b = typed[batchv1.CronJob](t, must(BackupCronJob(tenant, policy, hot, 24*time.Hour, testOptions())))
	if _, ok := argValue(b.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args, "--manifest-key"); ok {
		t.Error("a full-only schedule got the manifest key")
	}

	v := typed[batchv1.CronJob](t, must(VerifyCronJob(tenant, policy, hot, 7*24*time.Hour, testOptions())))
	spec := v.Spec.JobTemplate.Spec.Template.Spec
	vargs := strings.Join(spec.Containers[0].Args, " ")
	if strings.Contains(vargs, "--identity-file") || strings.Contains(vargs, "--drill") || len(spec.InitContainers) > 0 {
		t.Errorf("a physical schedule's verification must check checksums only; args %s, init containers %d", vargs, len(spec.InitContainers))
	}
	if !strings.Contains(vargs, "--signing-public-key") {
		t.Errorf("verification must check the signature; args %s", vargs)
	}
}

// TestDatabaseArchiving: archiving adds the settings and slots the receivers need, summarizes WAL
// only for incremental backups on PostgreSQL 17 and later, leaves a database without physical
// schedules as it was, and is read back from the StatefulSet.
func TestDatabaseArchiving(t *testing.T) {
	serverArgs := func(sts *appsv1.StatefulSet) string {
		return strings.Join(sts.Spec.Template.Spec.Containers[0].Args, " ")
	}
	env := func(sts *appsv1.StatefulSet, name string) string {
		for _, c := range sts.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if e.Name == name {
					return e.Value
				}
			}
		}
		return "<unset>"
	}
	tenant := full()
	plain := typed[appsv1.StatefulSet](t, DatabaseStatefulSet(tenant, testOptions()))
	if strings.Contains(serverArgs(plain), "archive") || env(plain, "WAL_ARCHIVE_SLOTS") != "" {
		t.Errorf("a database without physical schedules archives: %s", serverArgs(plain))
	}
	if got := WALArchiveInUse(plain); len(got.Slots) != 0 {
		t.Errorf("WALArchiveInUse of a plain database: %+v", got)
	}
	policy := physicalPolicy()
	policy.Spec.Schedules = append(policy.Spec.Schedules, v1alpha1.BackupSchedule{Name: "off-site", Schedule: "@weekly",
		Method: v1alpha1.BackupMethodPhysical, Storage: policy.Spec.Schedules[1].Storage})
	archive := WALArchiveOf(policy)
	if !slices.Equal(archive.Slots, []string{"tenantops_wal_hot", "tenantops_wal_off_site"}) || !archive.Summarize {
		t.Fatalf("WALArchiveOf: %+v", archive)
	}
	for _, tc := range []struct {
		version   string
		summarize bool
	}{{"16", false}, {"17", true}, {"18", true}} {
		tn := full()
		tn.Spec.Database.Version = tc.version
		sts := typed[appsv1.StatefulSet](t, DatabaseStatefulSetArchiving(tn, archive, testOptions()))
		a := serverArgs(sts)
		for _, want := range []string{"archive_mode=on", "archive_timeout=55s", "wal_level=replica"} {
			if !strings.Contains(a, want) {
				t.Errorf("PostgreSQL %s: args lack %s: %s", tc.version, want, a)
			}
		}
		if strings.Contains(a, "summarize_wal=on") != tc.summarize {
			t.Errorf("PostgreSQL %s: summarize_wal in args = %v, want %v", tc.version, !tc.summarize, tc.summarize)
		}
		if got := env(sts, "WAL_ARCHIVE_SLOTS"); got != "tenantops_wal_hot tenantops_wal_off_site" {
			t.Errorf("WAL_ARCHIVE_SLOTS %q", got)
		}
		if got := WALArchiveInUse(sts); !slices.Equal(got.Slots, archive.Slots) || !got.Summarize {
			t.Errorf("WALArchiveInUse %+v, want %+v", got, archive)
		}
	}
	if !strings.Contains(DatabaseHBA(), "hostssl   replication "+BackupRoleName) {
		t.Error("pg_hba.conf lets no replication connection of the backup role in")
	}
}
