package builders

import (
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// An ErasureRequest is carried out by a Job in the operator's namespace, not the tenant's: it
// holds the tenant's data key, the policy's signing key and the storage writer credential, which
// tenant admins (who can read their namespace's Secrets) must not reach. It connects to the
// tenant's database as the application's role, through the firewall as backups do (its pod
// carries Options.OperatorPodSelector), with the password copied into ErasureJobSecretName.

// ComponentErasure is the LabelComponent value of erasure Jobs, their pods and Secret.
const ComponentErasure = "erasure"

// Labels naming the ErasureRequest a Job carries out.
const (
	LabelErasureRequestNamespace = "tenancy.tenantops.io/erasure-request-namespace"
	LabelErasureRequestName      = "tenancy.tenantops.io/erasure-request-name"
)

// ErasureSecretKeyPassword is the application role's password in ErasureJobSecretName.
const ErasureSecretKeyPassword = "password"

// ErasureJobSecretName holds the application role's password for the tenant's erasure Jobs, in
// the operator's namespace.
func ErasureJobSecretName(t *v1alpha1.Tenant) string { return "tenant-" + t.Name + "-erasure" }

// ErasureJobSecret is that Secret.
func ErasureJobSecret(t *v1alpha1.Tenant, password string, opts Options) *corev1ac.SecretApplyConfiguration {
	opts = opts.withDefaults()
	return corev1ac.Secret(ErasureJobSecretName(t), opts.OperatorNamespace).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: ComponentErasure})).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{ErasureSecretKeyPassword: []byte(password)})
}

// ErasureJobName names the Job of one request: its name and the first characters of its UID, so
// that a request deleted and made again under the same name gets a Job of its own.
func ErasureJobName(t *v1alpha1.Tenant, req *v1alpha1.ErasureRequest) string {
	uid := string(req.UID)
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return boundedName("erase-"+t.Name+"-"+req.Name+"-"+uid, 63)
}

// ErasureDSN is how an erasure Job connects: as the application's role, TLS verified against the
// mounted CA; the password comes from PGPASSWORD.
func ErasureDSN(t *v1alpha1.Tenant) string { return agentDSN(t, databaseUser, backupCAMountDir) }

// ErasureJob runs `tenant-operator forget` once for a request: the function with the subject
// bound, then the ledger entry in every storage location of the policy's schedules. Pod Security
// restricted, no service account token, read-only mounts; the termination message is the ledger
// entry's key (or, on failure, the agent's one error line).
func ErasureJob(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, req *v1alpha1.ErasureRequest, opts Options) (*batchv1ac.JobApplyConfiguration, error) {
	opts = opts.withDefaults()
	if len(policy.Spec.Schedules) == 0 {
		return nil, fmt.Errorf("policy %s has no schedules: no storage holds the tenant's ledger", policy.Name)
	}
	// The agent takes one S3 credential from its environment, and a pod mounts what volumes it
	// is given: every S3 location must accept the same writer Secret, every volume location be
	// the same claim.
	var s3Storage, volumeStorage *v1alpha1.BackupStorage
	var locations []string
	for i, sched := range policy.Spec.Schedules {
		s := &policy.Spec.Schedules[i].Storage
		loc, err := StorageLocation(*s)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", sched.Name, err)
		}
		switch {
		case s.S3 != nil && s3Storage == nil:
			s3Storage = s
		case s.S3 != nil && s.S3.WriterSecretName(t.Name) != s3Storage.S3.WriterSecretName(t.Name):
			return nil, fmt.Errorf("schedule %s stores with other credentials than an earlier schedule; erasure requests need one writer credential for every location", sched.Name)
		case s.Volume != nil && volumeStorage == nil:
			volumeStorage = s
		case s.Volume != nil && s.Volume.ClaimName != volumeStorage.Volume.ClaimName:
			return nil, fmt.Errorf("schedule %s stores on another volume than an earlier schedule; erasure requests need one", sched.Name)
		}
		if !slices.Contains(locations, loc) {
			locations = append(locations, loc)
		}
	}
	first := s3Storage
	if first == nil {
		first = volumeStorage
	}
	writer, env, volumes, mounts, err := writerAgent(t, policy, *first)
	if err != nil {
		return nil, err
	}
	if first != volumeStorage && volumeStorage != nil {
		volumes, mounts = withStorageVolume(*volumeStorage, volumes, mounts)
	}
	args := []string{"forget"}
	for _, loc := range locations {
		args = append(args, "--storage", loc)
	}
	args = append(args, "--tenant", t.Name, "--dsn", ErasureDSN(t), "--call", req.Spec.Function, "--subject", req.Spec.Subject,
		"--request", req.Name+"/"+string(req.UID), "--termination-log", corev1.TerminationMessagePathDefault)
	args = append(args, writer...)
	// The application role's password, not the backup role's that writerAgent passes.
	env[0] = corev1ac.EnvVar().WithName("PGPASSWORD").WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
		corev1ac.SecretKeySelector().WithName(ErasureJobSecretName(t)).WithKey(ErasureSecretKeyPassword)))
	env = append(env, corev1ac.EnvVar().WithName("HOME").WithValue("/tmp"))
	volumes = append(volumes, corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource()))
	mounts = append(mounts, corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"))
	labels := labelsWith(t, map[string]string{LabelComponent: ComponentErasure,
		LabelErasureRequestNamespace: req.Namespace, LabelErasureRequestName: req.Name})
	podLabels := maps.Clone(labels)
	maps.Copy(podLabels, opts.OperatorPodSelector) // through the tenant's firewall, as backups
	agent := agentContainer(opts, args, env, mounts, "50m", "64Mi", "128Mi").
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError)
	return batchv1ac.Job(ErasureJobName(t, req), opts.OperatorNamespace).
		WithLabels(labels).
		// A retry runs the function again (it must be idempotent) and appends nothing twice.
		WithSpec(oneShotJobSpec(2, 10*time.Minute, podLabels, agentPodSpec(agent, volumes))), nil
}
