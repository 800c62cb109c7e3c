package builders

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/storage"
)

const (
	customerKey  = "age1qmplsxqs2smjrp0kagrvhmyzwtk0ry2v2el6zpnefqampxq6gqnqkv08lz"
	customerKey2 = "age1lgg77vs8ygp06ry9qxagc3zct3vfq74gh5sclcjfrhntdtp033hq0tjn50"
)

// exportPolicy is backupPolicy with split, per-tenant S3 credentials and a signing key, as a
// production policy has them.
func exportPolicy() *v1alpha1.BackupPolicy {
	p := backupPolicy()
	s3 := p.Spec.Schedules[0].Storage.S3
	s3.WriterCredentialsSecretRef = &v1alpha1.StorageCredentialsReference{Name: "hot-writer", PerTenant: true}
	s3.ReaderCredentialsSecretRef = &v1alpha1.StorageCredentialsReference{Name: "hot-reader", PerTenant: true}
	p.Status.Signing = &v1alpha1.BackupSigningStatus{PublicKey: "ed25519:" + strings.Repeat("A", 43) + "="}
	return p
}

// TestExportJob checks the export Job of each kind of storage: it reads the backup with the
// tenant's reader credential and the policy's identity, checks signatures as verification does,
// writes the archive into the same storage with the writer credential under the export's id, and
// runs in a pod that passes Pod Security restricted, mounts no token, writes nothing but /tmp,
// has a memory limit and no way through the tenant's firewall. It mounts the identity, /tmp and
// the storage volume only: not the tenant's data key Secret, which the agent does not need (it
// unwraps the key's escrow copy from storage, as restore does).
func TestExportJob(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	opts := testOptions()
	tests := []struct {
		name       string
		req        ExportRequest
		wantArgs   []string
		wantEnv    map[string]string // variable: Secret/key
		wantVolume string
	}{
		{
			name: "s3, latest, two recipients",
			req:  ExportRequest{ID: "contract-end", Schedule: "hot", Recipients: []string{customerKey, customerKey2}},
			wantArgs: []string{"export", "--storage", "s3://hot/tenants?endpoint=s3.eu-west-1.example.com:443&region=eu-west-1",
				"--tenant", "acme", "--schedule", "hot", "--backup", "latest", "--identity-file", "/etc/tenantops/identity/identity",
				"--output-storage", "s3://hot/tenants?endpoint=s3.eu-west-1.example.com:443&region=eu-west-1", "--export-id", "contract-end", "-v",
				"--recipient", customerKey, "--recipient", customerKey2, "--tenant-uid", "3f1c0a52-4d5e-4b7a-9c1d-2e3f4a5b6c7d",
				"--signing-public-key", "ed25519:" + strings.Repeat("A", 43) + "="},
			wantEnv: map[string]string{
				"AWS_ACCESS_KEY_ID": "hot-reader-acme/AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "hot-reader-acme/AWS_SECRET_ACCESS_KEY",
				storage.EnvOutputAccessKeyID:     "hot-writer-acme/AWS_ACCESS_KEY_ID",
				storage.EnvOutputSecretAccessKey: "hot-writer-acme/AWS_SECRET_ACCESS_KEY",
			},
		},
		{
			name: "volume, one backup",
			req:  ExportRequest{ID: "e2", Schedule: "cold", BackupID: "20260101T000000Z-abcdef", Recipients: []string{customerKey}},
			wantArgs: []string{"export", "--storage", "file:///var/lib/tenantops/backups", "--tenant", "acme", "--schedule", "cold",
				"--backup", "20260101T000000Z-abcdef", "--identity-file", "/etc/tenantops/identity/identity",
				"--output-storage", "file:///var/lib/tenantops/backups", "--export-id", "e2", "-v", "--recipient", customerKey,
				"--tenant-uid", "3f1c0a52-4d5e-4b7a-9c1d-2e3f4a5b6c7d", "--signing-public-key", "ed25519:" + strings.Repeat("A", 43) + "="},
			wantEnv:    map[string]string{},
			wantVolume: "cold-backups",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tenant := full()
			tenant.UID = "3f1c0a52-4d5e-4b7a-9c1d-2e3f4a5b6c7d"
			ac, err := ExportJob(tenant, exportPolicy(), tt.req, opts)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := ExportJob(tenant, exportPolicy(), tt.req, opts)
			if a, b := mustJSON(t, ac), mustJSON(t, again); a != b {
				t.Error("the same request built two different Jobs")
			}
			job := typed[batchv1.Job](t, ac)
			if job.Namespace != opts.OperatorNamespace || job.Name != ExportJobName(tenant, tt.req.ID) || len(job.Name) > 63 ||
				!strings.HasPrefix(job.Name, "export-acme-"+tt.req.ID+"-") {
				t.Errorf("job %s/%s, want export-acme-%s-<hash> in %s", job.Namespace, job.Name, tt.req.ID, opts.OperatorNamespace)
			}
			if job.Labels[LabelComponent] != ComponentExport || job.Labels[LabelTenant] != "acme" || job.Annotations[annotationExportID] != tt.req.ID {
				t.Errorf("labels %v, annotations %v", job.Labels, job.Annotations)
			}
			if job.Spec.BackoffLimit == nil || job.Spec.ActiveDeadlineSeconds == nil || job.Spec.TTLSecondsAfterFinished == nil {
				t.Errorf("want a backoff limit, a deadline and a TTL: %+v", job.Spec)
			}
			pod := job.Spec.Template
			results := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &pod.ObjectMeta, &pod.Spec))
			if !results.Allowed {
				t.Errorf("pod violates Pod Security restricted: %s: %s", results.ForbiddenReason(), results.ForbiddenDetail())
			}
			if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
				t.Error("the export never calls the API server; its pod must not mount a token")
			}
			for k, v := range opts.OperatorPodSelector {
				if pod.Labels[k] == v {
					t.Errorf("export pods carry %s=%s, which lets them through tenant firewalls", k, v)
				}
			}
			if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) != 0 {
				t.Fatalf("want one container, the agent: %d and %d init", len(pod.Spec.Containers), len(pod.Spec.InitContainers))
			}
			c := pod.Spec.Containers[0]
			if !slices.Equal(c.Args, tt.wantArgs) {
				t.Errorf("args\n%q\nwant\n%q", c.Args, tt.wantArgs)
			}
			if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
				t.Error("the agent's root file system must be read-only")
			}
			if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || lim.Value() > 512<<20 {
				t.Errorf("memory limit %v, want one of at most 512Mi", c.Resources.Limits)
			}
			gotEnv := map[string]string{}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					gotEnv[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				case e.Name == "HOME" && e.Value == "/tmp":
				default:
					t.Errorf("env %s=%q: only Secret references and HOME", e.Name, e.Value)
				}
			}
			if len(gotEnv) != len(tt.wantEnv) {
				t.Errorf("secret env %v, want %v", gotEnv, tt.wantEnv)
			}
			for k, v := range tt.wantEnv {
				if gotEnv[k] != v {
					t.Errorf("env %s from %q, want %q", k, gotEnv[k], v)
				}
			}
			volumes := map[string]corev1.Volume{}
			for _, v := range pod.Spec.Volumes {
				volumes[v.Name] = v
			}
			for _, m := range c.VolumeMounts {
				v := volumes[m.Name]
				switch {
				case m.Name == "identity":
					if !m.ReadOnly || v.Secret == nil || v.Secret.SecretName != "backup-identity" || m.MountPath != "/etc/tenantops/identity" {
						t.Errorf("identity mount %+v of %+v", m, v.VolumeSource)
					}
				case m.Name == "tmp" && v.EmptyDir != nil && v.EmptyDir.Medium != corev1.StorageMediumMemory:
				case v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == tt.wantVolume:
				default:
					t.Errorf("unexpected mount %s of %+v", m.Name, v.VolumeSource)
				}
			}
			if (tt.wantVolume != "") != (len(c.VolumeMounts) == 3) {
				t.Errorf("mounts %v, want the storage volume %q", c.VolumeMounts, tt.wantVolume)
			}
		})
	}
}

func TestExportJobRefuses(t *testing.T) {
	noIdentity := exportPolicy()
	noIdentity.Spec.Encryption.IdentitySecretRef = nil
	ok := ExportRequest{ID: "e1", Schedule: "hot", Recipients: []string{customerKey}}
	for _, tt := range []struct {
		name   string
		policy *v1alpha1.BackupPolicy
		change func(*ExportRequest)
		want   string
	}{
		{"unknown schedule", exportPolicy(), func(r *ExportRequest) { r.Schedule = "warm" }, `has no schedule "warm"`},
		{"no identity", noIdentity, func(*ExportRequest) {}, "no spec.encryption.identitySecretRef"},
		{"no recipient", exportPolicy(), func(r *ExportRequest) { r.Recipients = nil }, "no recipient"},
		{"a secret key for a recipient", exportPolicy(), func(r *ExportRequest) {
			r.Recipients = []string{"AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQSNRNXL"}
		}, "recipient 1 is not an age public key"},
		{"a damaged recipient", exportPolicy(), func(r *ExportRequest) { r.Recipients = []string{customerKey[:40]} }, "recipient 1 is not a valid age public key"},
		{"an id that is no DNS label", exportPolicy(), func(r *ExportRequest) { r.ID = "Contract_End" }, "want a DNS label"},
		{"a backup id with a slash", exportPolicy(), func(r *ExportRequest) { r.BackupID = "../x" }, "invalid backup id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := ok
			tt.change(&req)
			_, err := ExportJob(full(), tt.policy, req, testOptions())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Errorf("the error shows the secret key: %v", err)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestTenantExportRequest: a TenantExport's name is its export id when it is a DNS label, else one
// from its UID; the schedule is the one named or the first logical one; a physical or missing one
// is refused, naming the field.
func TestTenantExportRequest(t *testing.T) {
	policy := exportPolicy()
	policy.Spec.Schedules = append([]v1alpha1.BackupSchedule{{Name: "pitr", Method: v1alpha1.BackupMethodPhysical, Storage: policy.Spec.Schedules[0].Storage}}, policy.Spec.Schedules...)
	export := func(name, schedule string) *v1alpha1.TenantExport {
		return &v1alpha1.TenantExport{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "3f1c0a52-4d5e-4b7a-9c1d-2e3f4a5b6c7d"},
			Spec: v1alpha1.TenantExportSpec{Tenant: "acme", Schedule: schedule, Recipients: []string{customerKey}}}
	}
	for _, tt := range []struct {
		name, schedule, wantID, wantSchedule, wantErr string
	}{
		{name: "contract-end", wantID: "contract-end", wantSchedule: "hot"},
		{name: "acme.contract.end", schedule: "cold", wantID: "export-3f1c0a524d5e", wantSchedule: "cold"},
		{name: "x", schedule: "pitr", wantErr: "spec.schedule: schedule pitr of BackupPolicy standard is physical"},
		{name: "x", schedule: "nope", wantErr: `spec.schedule: BackupPolicy standard has no schedule "nope"`},
	} {
		req, err := TenantExportRequest(export(tt.name, tt.schedule), policy)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s/%s: %v, want %q", tt.name, tt.schedule, err, tt.wantErr)
			}
		case err != nil || req.ID != tt.wantID || req.Schedule != tt.wantSchedule || !slices.Equal(req.Recipients, []string{customerKey}):
			t.Errorf("%s/%s: %+v, %v; want id %s, schedule %s", tt.name, tt.schedule, req, err, tt.wantID, tt.wantSchedule)
		}
	}
	if got := ExportArchiveKey("acme", "contract-end"); got != "acme/exports/contract-end.age" {
		t.Errorf("archive key %s", got)
	}
}
