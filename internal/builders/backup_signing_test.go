package builders

import (
	"crypto/rand"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// splitPolicy is backupPolicy with credentials split by purpose, per tenant for the jobs, and a
// signing key published in its status.
func splitPolicy(t *testing.T) (*v1alpha1.BackupPolicy, []string) {
	t.Helper()
	policy := backupPolicy()
	s3 := policy.Spec.Schedules[0].Storage.S3
	s3.WriterCredentialsSecretRef = &v1alpha1.StorageCredentialsReference{Name: "hot-writer", PerTenant: true}
	s3.ReaderCredentialsSecretRef = &v1alpha1.StorageCredentialsReference{Name: "hot-reader", PerTenant: true}
	s3.PrunerCredentialsSecretRef = &v1alpha1.SecretReference{Name: "hot-pruner"}
	var keys []string
	for range 3 {
		_, pub, err := catalog.GenerateSigningKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, pub)
	}
	policy.Status.Signing = &v1alpha1.BackupSigningStatus{PublicKey: keys[0], PreviousPublicKeys: []string{keys[1]}, SecretName: BackupSigningSecretName(policy)}
	policy.Spec.Signing = &v1alpha1.BackupSigning{AdditionalPublicKeys: []string{keys[2]}}
	return policy, keys
}

func secretsOf(pod corev1.PodSpec) (env map[string]string, volumes map[string][]string) {
	env, volumes = map[string]string{}, map[string][]string{}
	for _, c := range pod.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				env[e.Name] = e.ValueFrom.SecretKeyRef.Name
			}
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			for _, item := range v.Secret.Items {
				volumes[v.Secret.SecretName] = append(volumes[v.Secret.SecretName], item.Key)
			}
		}
	}
	return env, volumes
}

// TestBackupJobGetsWriterAndSigningKey: a tenant's backup job gets its own writer credential and
// the policy's private signing key, as a file and alone, and nothing that may delete.
func TestBackupJobGetsWriterAndSigningKey(t *testing.T) {
	policy, _ := splitPolicy(t)
	tenant := full()
	ac, err := BackupCronJob(tenant, policy, policy.Spec.Schedules[0], 12*time.Hour, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	cj := typed[batchv1.CronJob](t, ac)
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	env, volumes := secretsOf(pod)
	if env["AWS_ACCESS_KEY_ID"] != "hot-writer-acme" || env["AWS_SECRET_ACCESS_KEY"] != "hot-writer-acme" {
		t.Fatalf("backup job's storage credentials from %v, want the tenant's writer Secret hot-writer-acme", env)
	}
	signing := BackupSigningSecretName(policy)
	if !slices.Equal(volumes[signing], []string{BackupSigningSecretKey}) {
		t.Fatalf("backup job mounts %v of %s, want the private key alone", volumes[signing], signing)
	}
	for _, banned := range []string{"hot-pruner", "hot-credentials", "hot-reader-acme"} {
		if _, ok := volumes[banned]; ok || slices.Contains(valuesOf(env), banned) {
			t.Fatalf("backup job gets Secret %s", banned)
		}
	}
	args := pod.Containers[0].Args
	i := slices.Index(args, "--signing-key-file")
	if i < 0 {
		t.Fatalf("backup job is not told to sign: %v", args)
	}
	mounted := false
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.Name == "signing-key" && m.ReadOnly && args[i+1] == path.Join(m.MountPath, BackupSigningSecretKey) {
			mounted = true
		}
	}
	if !mounted {
		t.Fatalf("--signing-key-file %s is not where the key is mounted read-only", args[i+1])
	}

	// Before the operator has published a key, backups are unsigned and nothing is mounted.
	policy.Status.Signing = nil
	ac, err = BackupCronJob(tenant, policy, policy.Spec.Schedules[0], 12*time.Hour, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	pod = typed[batchv1.CronJob](t, ac).Spec.JobTemplate.Spec.Template.Spec
	if _, volumes := secretsOf(pod); volumes[signing] != nil || slices.Contains(pod.Containers[0].Args, "--signing-key-file") {
		t.Fatal("a backup job signs before the policy has a published key")
	}
}

// envSecrets are the Secrets the variables come from.
func envSecrets(env []*corev1ac.EnvVarApplyConfiguration) []string {
	var out []string
	for _, e := range env {
		out = append(out, *e.ValueFrom.SecretKeyRef.Name)
	}
	return out
}

func valuesOf(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestVerifyJobNeverGetsTheSigningKey guards the split: whatever else the verification job gets,
// it is never the private key (a verifier that could sign could bless a forged backup).
func TestVerifyJobNeverGetsTheSigningKey(t *testing.T) {
	policy, _ := splitPolicy(t)
	for _, s := range policy.Spec.Schedules {
		ac, err := VerifyCronJob(full(), policy, s, 7*24*time.Hour, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		pod := typed[batchv1.CronJob](t, ac).Spec.JobTemplate.Spec.Template.Spec
		if _, volumes := secretsOf(pod); volumes[BackupSigningSecretName(policy)] != nil {
			t.Fatalf("%s: the verification job mounts the signing key", s.Name)
		}
	}
}

func TestStorageCredentialsByPurpose(t *testing.T) {
	tenant := full()
	cases := []struct {
		name                   string
		s3                     v1alpha1.S3Storage
		writer, reader, pruner string
	}{
		{"one credential for all, as before", v1alpha1.S3Storage{CredentialsSecretRef: v1alpha1.SecretReference{Name: "all"}}, "all", "all", "all"},
		{"split, shared by the policy's tenants", v1alpha1.S3Storage{CredentialsSecretRef: v1alpha1.SecretReference{Name: "r"},
			WriterCredentialsSecretRef: &v1alpha1.StorageCredentialsReference{Name: "w"},
			ReaderCredentialsSecretRef: &v1alpha1.StorageCredentialsReference{Name: "r"},
			PrunerCredentialsSecretRef: &v1alpha1.SecretReference{Name: "p"}}, "w", "r", "p"},
		{"split per tenant", v1alpha1.S3Storage{CredentialsSecretRef: v1alpha1.SecretReference{Name: "fallback"},
			WriterCredentialsSecretRef: &v1alpha1.StorageCredentialsReference{Name: "w", PerTenant: true},
			ReaderCredentialsSecretRef: &v1alpha1.StorageCredentialsReference{Name: "r", PerTenant: true},
			PrunerCredentialsSecretRef: &v1alpha1.SecretReference{Name: "p"}}, "w-acme", "r-acme", "p"},
		{"only a pruner: jobs keep the fallback", v1alpha1.S3Storage{CredentialsSecretRef: v1alpha1.SecretReference{Name: "fallback"},
			PrunerCredentialsSecretRef: &v1alpha1.SecretReference{Name: "p"}}, "fallback", "fallback", "p"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storage := v1alpha1.BackupStorage{S3: &c.s3}
			for _, got := range []struct {
				secrets []string
				want    string
			}{
				{envSecrets(writerStorageEnv(tenant, storage)), c.writer},
				{envSecrets(readerStorageEnv(tenant, storage)), c.reader},
			} {
				if !slices.Equal(got.secrets, []string{got.want, got.want}) {
					t.Fatalf("credentials from %v, want Secret %s", got.secrets, got.want)
				}
			}
			if p := c.s3.PrunerSecretName(); p != c.pruner {
				t.Fatalf("pruner %s, want %s", p, c.pruner)
			}
		})
	}
	if writerStorageEnv(tenant, v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "c"}}) != nil {
		t.Fatal("a volume gets S3 credentials")
	}
}

// TestSigningTrustAndVerifyArgs: the operator and the verification jobs trust the same keys: the
// current one, the ones before a rotation and the spec's additional ones; unsigned backups only
// when the spec says so, or while no key has been published yet.
func TestSigningTrustAndVerifyArgs(t *testing.T) {
	policy, keys := splitPolicy(t)
	trust, err := SigningTrust(policy)
	if err != nil {
		t.Fatal(err)
	}
	if len(trust.Keys) != 3 || trust.AllowUnsigned {
		t.Fatalf("trust %d keys, allow unsigned %v", len(trust.Keys), trust.AllowUnsigned)
	}
	for i, k := range keys {
		if catalog.FormatPublicKey(trust.Keys[i]) != k {
			t.Fatalf("key %d: %s, want %s", i, catalog.FormatPublicKey(trust.Keys[i]), k)
		}
	}
	want := "--signing-public-key " + strings.Join(keys, " --signing-public-key ")
	if got := strings.Join(VerifySigningArgs(policy), " "); got != want {
		t.Fatalf("verify args %q, want %q", got, want)
	}

	policy.Spec.Signing.AllowUnsigned = true
	if got := VerifySigningArgs(policy); got[len(got)-1] != "--allow-unsigned" {
		t.Fatalf("verify args %v, want --allow-unsigned last", got)
	}
	policy.Spec.Signing = nil
	policy.Status.Signing = nil
	if got := strings.Join(VerifySigningArgs(policy), " "); got != "--allow-unsigned" {
		t.Fatalf("before a key is published: %q", got)
	}
	if trust, err := SigningTrust(policy); err != nil || !trust.AllowUnsigned || len(trust.Keys) != 0 {
		t.Fatalf("before a key is published: %+v %v", trust, err)
	}
	policy.Status.Signing = &v1alpha1.BackupSigningStatus{PublicKey: "ed25519:broken"}
	if _, err := SigningTrust(policy); err == nil {
		t.Fatal("a broken published key is accepted")
	}
}

func TestBackupSigningSecret(t *testing.T) {
	policy := backupPolicy()
	pemData, pub, err := catalog.GenerateSigningKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := typed[corev1.Secret](t, BackupSigningSecret(policy, pemData, []string{pub, "ed25519:old"}, testOptions()))
	if s.Namespace != testOptions().OperatorNamespace || s.Name != "backup-signing-standard" {
		t.Fatalf("secret %s/%s", s.Namespace, s.Name)
	}
	if string(s.Data[BackupSigningSecretKey]) != string(pemData) || string(s.Data[BackupSigningSecretKeyTrusted]) != pub+"\ned25519:old\n" {
		t.Fatalf("secret data keys %v", s.Data)
	}
	if s.Labels[LabelManagedBy] != ManagedByValue || s.Labels[LabelTenant] != "" {
		t.Fatalf("labels %v: the operator's, and no tenant's (the key is the policy's)", s.Labels)
	}
}
