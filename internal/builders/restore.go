package builders

import (
	"fmt"
	"path"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// ComponentRestore is the LabelComponent value of restore Jobs, their pods and their Secrets.
const ComponentRestore = "restore"

// LabelRestore names the TenantRestore a Job or Secret belongs to.
const LabelRestore = "tenancy.tenantops.io/restore"

const (
	restoreDBMountDir = "/etc/tenantops/target-database"
	restoreScratchDir = "/var/lib/tenantops-restore"
	// restoreDeadline bounds one restore: a whole database fetched, unpacked, replayed and copied.
	restoreDeadline = 12 * time.Hour
)

// RestoreJobName names the Job (and its Secret) of a TenantRestore.
func RestoreJobName(r *v1alpha1.TenantRestore) string { return boundedName("restore-"+r.Name, 63) }

// RestoreSchedule picks the schedule a restore reads: the named one, or the policy's first of the
// method the restore needs.
func RestoreSchedule(r *v1alpha1.TenantRestore, policy *v1alpha1.BackupPolicy) (v1alpha1.BackupSchedule, error) {
	physical := r.Spec.PointInTime != nil
	for _, s := range policy.Spec.Schedules {
		if r.Spec.Schedule != "" && s.Name != r.Spec.Schedule {
			continue
		}
		if s.IsPhysical() != physical {
			if r.Spec.Schedule != "" {
				return s, fmt.Errorf("spec.schedule: schedule %s of BackupPolicy %s is %s; %s", s.Name, policy.Name, methodOf(s), restoreNeeds(physical))
			}
			continue
		}
		return s, nil
	}
	if r.Spec.Schedule != "" {
		return v1alpha1.BackupSchedule{}, fmt.Errorf("spec.schedule: BackupPolicy %s has no schedule %q", policy.Name, r.Spec.Schedule)
	}
	return v1alpha1.BackupSchedule{}, fmt.Errorf("BackupPolicy %s has no %s schedule; %s", policy.Name, map[bool]string{true: "physical", false: "logical"}[physical], restoreNeeds(physical))
}

func methodOf(s v1alpha1.BackupSchedule) string {
	if s.IsPhysical() {
		return "physical"
	}
	return "logical"
}

func restoreNeeds(physical bool) string {
	if physical {
		return "spec.pointInTime needs a physical schedule (base backups and WAL)"
	}
	return "spec.backup needs a logical schedule (dumps)"
}

// RestoreJobSecret is what the restore Job needs to reach the target's database: the application
// role's password and the CA that signed the database's certificate. It lives in the operator's
// namespace beside the Job, for as long as the restore runs.
func RestoreJobSecret(r *v1alpha1.TenantRestore, target *v1alpha1.Tenant, password, caPEM string, opts Options) *corev1ac.SecretApplyConfiguration {
	opts = opts.withDefaults()
	return corev1ac.Secret(RestoreJobName(r), opts.OperatorNamespace).
		WithLabels(labelsWith(target, map[string]string{LabelComponent: ComponentRestore, LabelRestore: r.Name})).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{BackupSecretKeyPassword: []byte(password), BackupSecretKeyCA: []byte(caPEM)})
}

// restoreDSN is how the restore connects to the target: as its application role (the restored
// objects are the application's, as they were), TLS verified against the mounted CA.
func restoreDSN(target *v1alpha1.Tenant) string {
	return agentDSN(target, databaseUser, restoreDBMountDir)
}

// RestoreJob runs `tenant-operator restore` once, in the operator's namespace: it reads the
// source tenant's backups with the tenant's reader credential and the policy's identity (which
// unwraps the tenant's data key from its escrow copy), checks signatures and checksums, and
// restores into the target tenant's database as its application role, in one transaction, the
// rows counted against the manifest (a dump) or the recovered server (a point in time, recovered
// in a scratch volume first). Nothing holding keys runs in a tenant's namespace, whose admins read
// its Secrets; the pod carries Options.OperatorPodSelector to pass the target's firewall, and is
// Pod Security restricted with no service account token.
func RestoreJob(r *v1alpha1.TenantRestore, source, target *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, opts Options) (*batchv1ac.JobApplyConfiguration, error) {
	opts = opts.withDefaults()
	schedule, err := RestoreSchedule(r, policy)
	if err != nil {
		return nil, err
	}
	ref := policy.Spec.Encryption.IdentitySecretRef
	if ref == nil {
		return nil, fmt.Errorf("BackupPolicy %s has no spec.encryption.identitySecretRef to read its backups with", policy.Name)
	}
	location, err := StorageLocation(schedule.Storage)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", schedule.Name, err)
	}
	args := []string{"restore",
		"--storage", location,
		"--tenant", source.Name,
		"--schedule", schedule.Name,
		"--identity-file", path.Join(identityMountDir, identityFileName),
		"--dsn", restoreDSN(target),
		// Every object belongs to the target's application role, as a tenant's objects do.
		"--no-owner",
		"-v",
	}
	volumes := []*corev1ac.VolumeApplyConfiguration{
		identityVolume(ref),
		corev1ac.Volume().WithName("target-database").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(RestoreJobName(r)).
			WithItems(corev1ac.KeyToPath().WithKey(BackupSecretKeyCA).WithPath(BackupSecretKeyCA)).
			WithDefaultMode(0o440)),
		corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("64Mi"))),
	}
	mounts := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("identity").WithMountPath(identityMountDir).WithReadOnly(true),
		corev1ac.VolumeMount().WithName("target-database").WithMountPath(restoreDBMountDir).WithReadOnly(true),
		corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
	}
	memory := "256Mi"
	if pit := r.Spec.PointInTime; pit != nil {
		switch {
		case pit.Latest:
			args = append(args, "--to-latest")
		case pit.Time != nil:
			args = append(args, "--to-time", pit.Time.UTC().Format(time.RFC3339))
		default:
			args = append(args, "--to-lsn", pit.LSN)
		}
		// The cluster recovers on a scratch volume of the source database's size, then is copied.
		args = append(args, "--scratch-dir", restoreScratchDir)
		volumes = append(volumes, corev1ac.Volume().WithName("scratch").WithEphemeral(corev1ac.EphemeralVolumeSource().WithVolumeClaimTemplate(
			corev1ac.PersistentVolumeClaimTemplate().
				WithLabels(labelsWith(target, map[string]string{LabelComponent: ComponentRestore, LabelRestore: r.Name})).
				WithSpec(scratchClaim(source)))))
		mounts = append(mounts, corev1ac.VolumeMount().WithName("scratch").WithMountPath(restoreScratchDir))
		// PostgreSQL recovers in this container: its shared buffers and replay.
		memory = "1Gi"
	} else {
		backupID := r.Spec.Backup
		if backupID != catalog.Latest {
			if err := catalog.ValidateName("spec.backup", backupID); err != nil {
				return nil, err
			}
		}
		args = append(args, "--backup", backupID)
	}
	if r.Spec.TargetTenant == r.Spec.Tenant {
		// In place, confirmed (admission checks spec.confirmInPlace): the backup's objects
		// replace the live ones.
		args = append(args, "--force")
	}
	for _, uid := range TenantUIDs(source) {
		args = append(args, "--tenant-uid", uid)
	}
	args = append(args, VerifySigningArgs(policy)...)
	volumes, mounts = withStorageVolume(schedule.Storage, volumes, mounts)

	env := append(readerStorageEnv(source, schedule.Storage),
		corev1ac.EnvVar().WithName("HOME").WithValue("/tmp"),
		corev1ac.EnvVar().WithName("PGPASSWORD").WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(RestoreJobName(r)).WithKey(BackupSecretKeyPassword))))
	labels := labelsWith(target, map[string]string{LabelComponent: ComponentRestore, LabelRestore: r.Name})
	podLabels := labelsWith(target, map[string]string{LabelComponent: ComponentRestore, LabelRestore: r.Name})
	for k, v := range opts.OperatorPodSelector {
		podLabels[k] = v
	}
	agent := agentContainer(opts, args, env, mounts, "250m", "128Mi", memory)
	return batchv1ac.Job(RestoreJobName(r), opts.OperatorNamespace).
		WithLabels(labels).
		WithAnnotations(map[string]string{annotationBackupPolicy: policy.Name}).
		// One retry: the restore is one transaction, so a second try starts from the target as it
		// was; a refusal (a target that is not empty) fails the same way twice.
		WithSpec(oneShotJobSpec(1, restoreDeadline, podLabels, agentPodSpec(agent, volumes))), nil
}
