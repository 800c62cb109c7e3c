package builders

import (
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// TestVerifyPodSeparatesTheDrill checks the verification pod of every kind of schedule: with an
// identity, the drill's scratch container (where the tenant's SQL runs) has no Secret volume, no
// credential in its environment, no storage volume and its own uid; the agent, which has them, has
// no scratch volume; the scratch volume is a sized claim, not memory; and the pod passes Pod
// Security restricted. A policy with verification and no identity is refused (validation refuses it
// first), so there is no verification without a drill.
func TestVerifyPodSeparatesTheDrill(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	restricted := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	s3 := v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: "s3.example.com", Bucket: "b", CredentialsSecretRef: v1alpha1.SecretReference{Name: "s3-credentials"}}}
	volume := v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "backups"}}
	identity := &v1alpha1.SecretKeyReference{Name: "backup-identity", Key: "key"}
	tests := []struct {
		name     string
		storage  v1alpha1.BackupStorage
		identity *v1alpha1.SecretKeyReference
		tenant   *v1alpha1.Tenant
	}{
		{"s3 drill", s3, identity, full()},
		{"volume drill", volume, identity, minimal()},
	}
	t.Run("no identity", func(t *testing.T) {
		p := backupPolicy()
		p.Spec.Encryption.IdentitySecretRef = nil
		if _, err := VerifyCronJob(minimal(), p, v1alpha1.BackupSchedule{Name: "s", Schedule: "@daily", Storage: volume}, 24*time.Hour, testOptions()); err == nil {
			t.Error("a verification without an identity was built; it cannot decrypt")
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := backupPolicy()
			p.Spec.Encryption.IdentitySecretRef = tt.identity
			ac, err := VerifyCronJob(tt.tenant, p, v1alpha1.BackupSchedule{Name: "s", Schedule: "@daily", Storage: tt.storage}, 24*time.Hour, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			cj := typed[batchv1.CronJob](t, ac)
			pod := cj.Spec.JobTemplate.Spec.Template
			results := policy.AggregateCheckResults(evaluator.EvaluatePod(restricted, &pod.ObjectMeta, &pod.Spec))
			if !results.Allowed {
				t.Errorf("pod violates Pod Security restricted: %s: %s", results.ForbiddenReason(), results.ForbiddenDetail())
			}
			for k, v := range testOptions().OperatorPodSelector {
				if pod.Labels[k] == v {
					t.Errorf("verify pods carry %s=%s, which lets them through tenant firewalls", k, v)
				}
			}
			volumes := map[string]corev1.Volume{}
			for _, v := range pod.Spec.Volumes {
				volumes[v.Name] = v
			}
			if len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Name != "agent" {
				t.Fatalf("containers %v, want the agent alone", containerNames(pod.Spec.Containers))
			}
			agent := pod.Spec.Containers[0]
			if !slices.Contains(agent.Args, "--drill-socket") {
				t.Errorf("agent args %v, want a drill through the scratch sidecar", agent.Args)
			}
			if len(pod.Spec.InitContainers) != 1 {
				t.Fatalf("init containers %v, want the scratch sidecar", containerNames(pod.Spec.InitContainers))
			}
			scratch := pod.Spec.InitContainers[0]
			if scratch.RestartPolicy == nil || *scratch.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Error("the scratch container must be a sidecar (restartPolicy Always), stopped when the agent ends")
			}
			for _, e := range scratch.Env {
				if e.ValueFrom != nil || strings.HasPrefix(e.Name, "AWS_") || strings.HasPrefix(e.Name, "PG") {
					t.Errorf("the scratch container gets %s in its environment", e.Name)
				}
			}
			if len(scratch.EnvFrom) != 0 {
				t.Errorf("the scratch container has envFrom %v", scratch.EnvFrom)
			}
			for _, m := range scratch.VolumeMounts {
				v := volumes[m.Name]
				if v.Secret != nil || v.Projected != nil || v.PersistentVolumeClaim != nil || v.ConfigMap != nil {
					t.Errorf("the scratch container mounts volume %s (%+v)", m.Name, v.VolumeSource)
				}
			}
			joined := strings.Join(scratch.Args, " ")
			for _, flag := range []string{"--identity-file", "--storage", "--drill-socket"} {
				if strings.Contains(joined, flag) {
					t.Errorf("the scratch container is given %s: %s", flag, joined)
				}
			}
			if !strings.Contains(joined, "--serve-drills "+drillSocketDir+"/") || !strings.Contains(strings.Join(agent.Args, " "), "--drill-socket "+drillSocketDir+"/") {
				t.Errorf("agent and scratch do not meet on the socket: agent %v, scratch %v", agent.Args, scratch.Args)
			}
			agentUID := *pod.Spec.SecurityContext.RunAsUser
			if scratch.SecurityContext.RunAsUser == nil || *scratch.SecurityContext.RunAsUser == agentUID {
				t.Errorf("the scratch container runs as the agent's uid %d", agentUID)
			}
			for _, m := range agent.VolumeMounts {
				if m.Name == "scratch" {
					t.Error("the agent mounts the scratch volume")
				}
			}
			if !mounts(agent, "identity") || !mounts(agent, "drill") || !mounts(scratch, "drill") || !mounts(scratch, "scratch") {
				t.Errorf("mounts: agent %v, scratch %v", agent.VolumeMounts, scratch.VolumeMounts)
			}

			sv := volumes["scratch"]
			if sv.EmptyDir != nil || sv.Ephemeral == nil || sv.Ephemeral.VolumeClaimTemplate == nil {
				t.Fatalf("scratch volume %+v, want a generic ephemeral volume", sv.VolumeSource)
			}
			claim := sv.Ephemeral.VolumeClaimTemplate.Spec
			size := claim.Resources.Requests[corev1.ResourceStorage]
			if size.Cmp(tt.tenant.Spec.Database.Storage.Size) <= 0 {
				t.Errorf("scratch volume of %s for a database volume of %s", size.String(), tt.tenant.Spec.Database.Storage.Size.String())
			}
			if want := tt.tenant.Spec.Database.Storage.StorageClassName; (want == nil) != (claim.StorageClassName == nil) || (want != nil && *want != *claim.StorageClassName) {
				t.Errorf("scratch volume's storage class %v, want the database's %v", claim.StorageClassName, want)
			}
			for _, v := range pod.Spec.Volumes {
				if v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory {
					t.Errorf("volume %s is memory, which counts against the containers' limits", v.Name)
				}
			}
		})
	}
}

// TestScratchSize: a 2 GiB database gets 3 GiB of scratch space; a large one a quarter more.
func TestScratchSize(t *testing.T) {
	for _, tt := range []struct{ db, want string }{
		{"1Gi", "2Gi"},
		{"2Gi", "3Gi"},
		{"200Gi", "250Gi"},
		{"1500M", "2455Mi"},
	} {
		tenant := minimal()
		tenant.Spec.Database.Storage.Size = resource.MustParse(tt.db)
		if got := ScratchSize(tenant); got.Cmp(resource.MustParse(tt.want)) != 0 {
			t.Errorf("ScratchSize(%s) = %s, want %s", tt.db, got.String(), tt.want)
		}
	}
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func mounts(c corev1.Container, volume string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return true
		}
	}
	return false
}
