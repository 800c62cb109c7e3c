package builders

import (
	"strings"
	"testing"
	"time"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

func backupPolicy() *v1alpha1.BackupPolicy {
	return &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard"},
		Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{
				{Name: "hot", Schedule: "0 */12 * * *", Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
					Endpoint: "s3.eu-west-1.example.com:443", Bucket: "hot", Region: "eu-west-1", Prefix: "tenants",
					CredentialsSecretRef: v1alpha1.SecretReference{Name: "hot-credentials"}}}},
				{Name: "cold", Schedule: "@daily", Storage: v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "cold-backups"}}},
			},
			Encryption: v1alpha1.BackupEncryption{
				Recipients:        []string{"age1qmplsxqs2smjrp0kagrvhmyzwtk0ry2v2el6zpnefqampxq6gqnqkv08lz"},
				IdentitySecretRef: &v1alpha1.SecretKeyReference{Name: "backup-identity", Key: "identity"},
			},
			Verification: &v1alpha1.BackupVerification{Schedule: "0 4 * * 0"},
		},
	}
}

// backupCronJobs are the backup and verification CronJobs of a tenant under backupPolicy.
func backupCronJobs(t *testing.T, tenant *v1alpha1.Tenant) []*batchv1.CronJob {
	t.Helper()
	policy := backupPolicy()
	var out []*batchv1.CronJob
	for _, s := range policy.Spec.Schedules {
		b, err := BackupCronJob(tenant, policy, s, 12*time.Hour, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		v, err := VerifyCronJob(tenant, policy, s, 7*24*time.Hour, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, typed[batchv1.CronJob](t, b), typed[batchv1.CronJob](t, v))
	}
	return out
}

func TestBackupGolden(t *testing.T) {
	tenant := full()
	objs := []any{DatabaseBackupSecret(tenant, "not-a-real-password"), BackupJobSecret(tenant, "not-a-real-password", "-----BEGIN CERTIFICATE-----\n", testOptions())}
	for _, cj := range backupCronJobs(t, tenant) {
		objs = append(objs, cj)
	}
	compareGolden(t, "backup.golden.yaml", objs)
}

// TestBackupJobs checks what the issue asks of every backup and verification CronJob: they run in
// the operator's namespace (never the tenant's), one at a time, with deadlines and short
// histories, their pods pass Pod Security restricted, and no secret value is inlined.
func TestBackupJobs(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	tenant := full()
	opts := testOptions()
	for _, cj := range backupCronJobs(t, tenant) {
		t.Run(cj.Name, func(t *testing.T) {
			if cj.Namespace != opts.OperatorNamespace {
				t.Errorf("namespace %q, want the operator's %q", cj.Namespace, opts.OperatorNamespace)
			}
			if len(cj.Name) > 52 {
				t.Errorf("name %q is longer than a CronJob name may be (52)", cj.Name)
			}
			spec := cj.Spec
			if spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || spec.StartingDeadlineSeconds == nil ||
				spec.JobTemplate.Spec.ActiveDeadlineSeconds == nil || spec.JobTemplate.Spec.BackoffLimit == nil ||
				*spec.SuccessfulJobsHistoryLimit != 3 || *spec.FailedJobsHistoryLimit != 3 {
				t.Errorf("want concurrency Forbid, deadlines, backoff limit and history limits; got %+v", spec)
			}
			pod := spec.JobTemplate.Spec.Template
			results := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &pod.ObjectMeta, &pod.Spec))
			if !results.Allowed {
				t.Errorf("pod violates Pod Security restricted: %s: %s", results.ForbiddenReason(), results.ForbiddenDetail())
			}
			if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
				t.Error("the agent never calls the API server; its pod must not mount a token")
			}
			for _, c := range pod.Spec.Containers {
				for _, e := range c.Env {
					if strings.HasPrefix(e.Name, "AWS_") || e.Name == "PGPASSWORD" {
						if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
							t.Errorf("env %s must come from a Secret", e.Name)
						}
					}
				}
				if strings.Contains(strings.Join(c.Args, " "), "password") {
					t.Errorf("a password on the command line: %v", c.Args)
				}
			}
		})
	}
}

// TestBackupJobNames keeps names within the CronJob limit, readable, deterministic and distinct
// for every tenant and schedule, also where their hyphens line up.
func TestBackupJobNames(t *testing.T) {
	tenant := func(name string) *v1alpha1.Tenant { tn := full(); tn.Name = name; return tn }
	long := tenant(strings.Repeat("a", 56))
	a, b := BackupCronJobName(long, "hot"), BackupCronJobName(long, "cold")
	if len(a) > 52 || len(b) > 52 || a == b {
		t.Errorf("names %q and %q: want at most 52 characters and distinct", a, b)
	}
	if got := BackupCronJobName(full(), "hot"); !strings.HasPrefix(got, "backup-acme-hot-") || len(got) != len("backup-acme-hot-")+8 {
		t.Errorf("short name = %q, want backup-acme-hot-<hash>", got)
	}
	if a != BackupCronJobName(long, "hot") {
		t.Error("names are not deterministic")
	}
	pairs := [][2]string{{"a-b", "c"}, {"a", "b-c"}, {"a-b-c", "d"}, {"a", "b-c-d"}, {"a-b", "c-d"}}
	seen := map[string]string{}
	for _, p := range pairs {
		for _, name := range []string{BackupCronJobName(tenant(p[0]), p[1]), VerifyCronJobName(tenant(p[0]), p[1])} {
			if other, ok := seen[name]; ok {
				t.Errorf("tenant %s schedule %s and %s share the CronJob %s", p[0], p[1], other, name)
			}
			seen[name] = p[0] + "/" + p[1]
		}
	}
}

// TestBackupPodsThroughFirewall evaluates the tenant's NetworkPolicies with cyclonus for the pods
// the CronJobs really create: backup pods reach the database; verification drills restore into
// their own scratch server, so their pods are not let through.
func TestBackupPodsThroughFirewall(t *testing.T) {
	tenant := full()
	opts := testOptions()
	var policies []*networkingv1.NetworkPolicy
	for _, p := range NetworkPolicies(tenant, opts) {
		policies = append(policies, typed[networkingv1.NetworkPolicy](t, p))
	}
	evaluated := matcher.BuildNetworkPolicies(true, policies)
	db := peer{namespace: NamespaceName(tenant), labels: dbPodLabels(t, tenant), ip: "10.1.0.20"}
	for _, cj := range backupCronJobs(t, tenant) {
		pod := peer{namespace: cj.Namespace, labels: cj.Spec.JobTemplate.Spec.Template.Labels, ip: "10.0.0.7"}
		want := cj.Labels[LabelComponent] == ComponentBackup
		got := evaluated.IsTrafficAllowed(&matcher.Traffic{
			Source: pod.traffic(), Destination: db.traffic(),
			ResolvedPort: DatabasePort, Protocol: corev1.ProtocolTCP,
		}).IsAllowed()
		if got != want {
			t.Errorf("pod of %s to the database: allowed=%v, want %v", cj.Name, got, want)
		}
	}
}

func TestStorageLocation(t *testing.T) {
	s3 := v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: "127.0.0.1:9000", Bucket: "b", Region: "eu-west-1", Prefix: "p/q", Insecure: true}}
	if got, _ := StorageLocation(s3); got != "s3://b/p/q?endpoint=127.0.0.1:9000&region=eu-west-1&insecure=true" {
		t.Errorf("s3 location = %q", got)
	}
	vol := v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "x"}}
	if got, _ := StorageLocation(vol); got != "file:///var/lib/tenantops/backups" {
		t.Errorf("volume location = %q", got)
	}
	if _, err := StorageLocation(v1alpha1.BackupStorage{}); err == nil {
		t.Error("empty storage accepted")
	}
}
