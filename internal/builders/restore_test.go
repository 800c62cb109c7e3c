package builders

import (
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// restorePolicy is exportPolicy with a physical schedule beside the logical ones.
func restorePolicy() *v1alpha1.BackupPolicy {
	p := exportPolicy()
	p.Spec.Schedules = append(p.Spec.Schedules, v1alpha1.BackupSchedule{Name: "pitr", Schedule: "@daily", Method: v1alpha1.BackupMethodPhysical,
		Storage: p.Spec.Schedules[0].Storage})
	return p
}

// TestRestoreJob checks the restore Job of each kind of request: the schedule it reads, the target
// it reaches (the target's application role, its password from the restore's Secret, TLS against
// the target's CA), --force only in place, a scratch volume only for a point in time, and a pod
// that passes Pod Security restricted, mounts no token, and carries the label that lets it through
// the target's firewall.
func TestRestoreJob(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	opts := testOptions()
	moment := metav1.NewTime(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	const s3Location = "s3://hot/tenants?endpoint=s3.eu-west-1.example.com:443&region=eu-west-1"
	tests := []struct {
		name        string
		spec        v1alpha1.TenantRestoreSpec
		wantArgs    []string // in order, a subsequence of the args
		wantAbsent  []string
		wantScratch bool
	}{
		{
			name:       "latest dump into another tenant",
			spec:       v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "acme-copy", Backup: "latest"},
			wantArgs:   []string{"restore", "--storage", s3Location, "--tenant", "acme", "--schedule", "hot", "--identity-file", "/etc/tenantops/identity/identity", "--dsn", "postgresql://app@postgres.tenant-acme-copy.svc:5432/app?sslmode=verify-full&sslrootcert=%2Fetc%2Ftenantops%2Ftarget-database%2Fca.crt", "--no-owner", "--backup", "latest", "--tenant-uid", "3f1c0a52-4d5e-4b7a-9c1d-2e3f4a5b6c7d", "--signing-public-key"},
			wantAbsent: []string{"--force", "--to-time", "--scratch-dir"},
		},
		{
			name:       "one dump of a volume schedule, in place",
			spec:       v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "acme", ConfirmInPlace: "acme", Schedule: "cold", Backup: "20260101T000000Z-abcdef"},
			wantArgs:   []string{"restore", "--storage", "file:///var/lib/tenantops/backups", "--schedule", "cold", "--backup", "20260101T000000Z-abcdef", "--force"},
			wantAbsent: []string{"--scratch-dir"},
		},
		{
			name:        "a moment",
			spec:        v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "acme-copy", PointInTime: &v1alpha1.PointInTimeTarget{Time: &moment}},
			wantArgs:    []string{"restore", "--schedule", "pitr", "--to-time", "2026-05-01T12:00:00Z", "--scratch-dir", restoreScratchDir},
			wantAbsent:  []string{"--backup", "--force"},
			wantScratch: true,
		},
		{
			name:        "a WAL position",
			spec:        v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "acme-copy", PointInTime: &v1alpha1.PointInTimeTarget{LSN: "0/3000028"}},
			wantArgs:    []string{"--to-lsn", "0/3000028"},
			wantScratch: true,
		},
		{
			name:        "the end of the archive",
			spec:        v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "acme-copy", PointInTime: &v1alpha1.PointInTimeTarget{Latest: true}},
			wantArgs:    []string{"--to-latest"},
			wantScratch: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source := full()
			source.UID = "3f1c0a52-4d5e-4b7a-9c1d-2e3f4a5b6c7d"
			target := full()
			target.Name = tt.spec.TargetTenant
			restore := &v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "r1"}, Spec: tt.spec}
			ac, err := RestoreJob(restore, source, target, restorePolicy(), opts)
			if err != nil {
				t.Fatal(err)
			}
			job := typed[batchv1.Job](t, ac)
			if job.Namespace != opts.OperatorNamespace || job.Name != "restore-r1" || job.Labels[LabelRestore] != "r1" || job.Labels[LabelComponent] != ComponentRestore {
				t.Errorf("job %s/%s labels %v", job.Namespace, job.Name, job.Labels)
			}
			if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 1 || job.Spec.ActiveDeadlineSeconds == nil || job.Spec.TTLSecondsAfterFinished == nil {
				t.Errorf("want one retry, a deadline and a TTL: %+v", job.Spec)
			}
			pod := job.Spec.Template
			results := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &pod.ObjectMeta, &pod.Spec))
			if !results.Allowed {
				t.Errorf("pod violates Pod Security restricted: %s: %s", results.ForbiddenReason(), results.ForbiddenDetail())
			}
			if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
				t.Error("the restore never calls the API server; its pod must not mount a token")
			}
			for k, v := range opts.OperatorPodSelector {
				if pod.Labels[k] != v {
					t.Errorf("restore pods lack %s=%s, which lets them through the target's firewall", k, v)
				}
			}
			args := pod.Spec.Containers[0].Args
			if !isSubsequence(args, tt.wantArgs) {
				t.Errorf("args %q\nwant in order %q", args, tt.wantArgs)
			}
			for _, a := range tt.wantAbsent {
				if slices.Contains(args, a) {
					t.Errorf("args %q have %s", args, a)
				}
			}
			var password *corev1.EnvVar
			for i, e := range pod.Spec.Containers[0].Env {
				if e.Name == "PGPASSWORD" {
					password = &pod.Spec.Containers[0].Env[i]
				}
			}
			if password == nil || password.ValueFrom == nil || password.ValueFrom.SecretKeyRef.Name != "restore-r1" || password.Value != "" {
				t.Errorf("PGPASSWORD %+v, want it from the restore's Secret", password)
			}
			scratch := false
			for _, v := range pod.Spec.Volumes {
				if v.Name == "scratch" && v.Ephemeral != nil {
					scratch = true
					want := ScratchSize(source)
					if got := v.Ephemeral.VolumeClaimTemplate.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(want) != 0 {
						t.Errorf("scratch volume %s, want %s", got.String(), want.String())
					}
				}
			}
			if scratch != tt.wantScratch {
				t.Errorf("scratch volume %v, want %v", scratch, tt.wantScratch)
			}
		})
	}
}

// TestRestoreJobRefuses covers the specs admission cannot judge: they depend on the policy.
func TestRestoreJobRefuses(t *testing.T) {
	logicalOnly := exportPolicy()
	noIdentity := restorePolicy()
	noIdentity.Spec.Encryption.IdentitySecretRef = nil
	for _, tt := range []struct {
		name   string
		spec   v1alpha1.TenantRestoreSpec
		policy *v1alpha1.BackupPolicy
		want   string
	}{
		{"no physical schedule", v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "b", PointInTime: &v1alpha1.PointInTimeTarget{Latest: true}}, logicalOnly, "has no physical schedule; spec.pointInTime needs"},
		{"schedule of the wrong method", v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "b", Schedule: "pitr", Backup: "latest"}, restorePolicy(), "spec.schedule: schedule pitr of BackupPolicy standard is physical; spec.backup needs a logical schedule"},
		{"no such schedule", v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "b", Schedule: "nope", Backup: "latest"}, restorePolicy(), `spec.schedule: BackupPolicy standard has no schedule "nope"`},
		{"no identity", v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "b", Backup: "latest"}, noIdentity, "no spec.encryption.identitySecretRef"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			restore := &v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: tt.spec}
			_, err := RestoreJob(restore, full(), full(), tt.policy, testOptions())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// isSubsequence says whether want appears in got in order (not necessarily adjacent).
func isSubsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
