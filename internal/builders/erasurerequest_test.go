package builders

import (
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

func erasureRequest() *v1alpha1.ErasureRequest {
	return &v1alpha1.ErasureRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "forget-alice", Namespace: "tenant-acme", UID: "0e4c2a8b-1111-4d6e-9f00-aa00bb11cc22"},
		Spec:       v1alpha1.ErasureRequestSpec{Subject: "alice", Function: "app.forget"},
	}
}

// The erasure Job runs forget once in the operator's namespace: as the application role (its
// password from the erasure Secret, never the backup role's), with the data key and signing key
// mounted, the ledger written to every location, through the firewall as backups, in a pod that
// passes Pod Security restricted and mounts no token.
func TestErasureJob(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	tenant, pol, req, opts := full(), exportPolicy(), erasureRequest(), testOptions()
	job := typed[batchv1.Job](t, mustErasureJob(t, tenant, pol, req, opts))
	if job.Namespace != opts.OperatorNamespace || job.Name != ErasureJobName(tenant, req) || len(job.Name) > 63 || !strings.HasSuffix(job.Name, "-0e4c2a8b") {
		t.Errorf("job %s/%s", job.Namespace, job.Name)
	}
	pod := job.Spec.Template
	if r := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &pod.ObjectMeta, &pod.Spec)); !r.Allowed {
		t.Errorf("pod violates Pod Security restricted: %s: %s", r.ForbiddenReason(), r.ForbiddenDetail())
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token")
	}
	for k, v := range opts.OperatorPodSelector {
		if pod.Labels[k] != v {
			t.Errorf("pod lacks the operator's selector label %s=%s: it could not reach the database", k, v)
		}
	}
	if job.Labels[LabelErasureRequestNamespace] != "tenant-acme" || job.Labels[LabelErasureRequestName] != "forget-alice" {
		t.Errorf("labels %v do not name the request", job.Labels)
	}
	c := pod.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"forget --storage s3://", "--call app.forget --subject alice --request forget-alice/0e4c2a8b-1111-4d6e-9f00-aa00bb11cc22",
		"--tenant-uid " + string(tenant.UID), "--data-key /etc/tenantops/data-key", "--signing-key-file /etc/tenantops/signing/signing.key",
		"--termination-log /dev/termination-log", "postgresql://app@"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	var pw string
	for _, e := range c.Env {
		if e.Value != "" && e.Name != "HOME" {
			t.Errorf("env %s inlines a value", e.Name)
		}
		if e.Name == "PGPASSWORD" {
			pw = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	if pw != ErasureJobSecretName(tenant)+"/password" {
		t.Errorf("PGPASSWORD from %q, want the erasure Secret's application password", pw)
	}
	if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == DataKeySecretName(tenant) }) {
		t.Error("the data key is not mounted")
	}
	// Same input, same Job.
	if again := typed[batchv1.Job](t, mustErasureJob(t, tenant, pol, req, opts)); mustJSON(t, again) != mustJSON(t, job) {
		t.Error("the builder is not deterministic")
	}
}

func TestErasureJobRefusesTwoCredentials(t *testing.T) {
	pol := exportPolicy()
	second := *pol.Spec.Schedules[0].DeepCopy()
	second.Name = "cold"
	second.Storage.S3.WriterCredentialsSecretRef = &v1alpha1.StorageCredentialsReference{Name: "cold-writer", PerTenant: true}
	pol.Spec.Schedules = append(pol.Spec.Schedules, second)
	if _, err := ErasureJob(full(), pol, erasureRequest(), testOptions()); err == nil || !strings.Contains(err.Error(), "other credentials") {
		t.Fatalf("err %v", err)
	}
}

func mustErasureJob(t *testing.T, tenant *v1alpha1.Tenant, pol *v1alpha1.BackupPolicy, req *v1alpha1.ErasureRequest, opts Options) any {
	t.Helper()
	job, err := ErasureJob(tenant, pol, req, opts)
	if err != nil {
		t.Fatal(err)
	}
	return job
}
