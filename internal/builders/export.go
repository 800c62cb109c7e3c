package builders

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/api/resource"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// ComponentExport is the LabelComponent value of export Jobs and their pods.
const ComponentExport = "export"

// annotationExportID names the export a Job makes.
const annotationExportID = "tenancy.tenantops.io/export-id"

// ExportRequest is one export the operator was asked for: a tenant's backup handed back to the
// customer, encrypted to the customer's own keys.
type ExportRequest struct {
	// ID names the export: its Job and its archive, <tenant>/exports/<ID>.age in the schedule's
	// storage. A DNS label, chosen by the caller (e.g. from the request's name): one ID, one Job.
	ID string
	// Schedule is the policy's schedule whose storage holds the backup and receives the export.
	Schedule string
	// BackupID is a backup id, or catalog.Latest when empty.
	BackupID string
	// Recipients are the customer's age public keys (age1...), the only ones the archive is
	// encrypted to.
	Recipients []string
}

var exportIDRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ExportJobName names the Job of one export of a tenant.
func ExportJobName(t *v1alpha1.Tenant, id string) string { return cronJobName("export", t, id) }

// ExportJob runs `tenant-operator export` once: it reads the backup as a verification job does,
// with the tenant's reader credential and the policy's identity (which also unwraps the escrow
// copy of a tenant data key, stored beside the backups under the same credential: the data key
// Secret is not mounted), checks its signature and checksum, and writes the archive into the same storage with the tenant's writer credential, which may put
// objects under the tenant's prefix and do nothing else. The pod is the verification agent's: Pod
// Security restricted, read-only root file system, no service account token, a memory limit (the
// export streams; see TestExportMemoryIsFlat), and no way through the tenant's firewall, which it
// does not need. Nothing in the clear is written anywhere: pg_restore writes to a pipe, and only
// the encrypted archive leaves the pod.
func ExportJob(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, req ExportRequest, opts Options) (*batchv1ac.JobApplyConfiguration, error) {
	opts = opts.withDefaults()
	if !exportIDRE.MatchString(req.ID) {
		return nil, fmt.Errorf("export id %q: want a DNS label (lowercase letters, digits and '-', at most 63)", req.ID)
	}
	var schedule *v1alpha1.BackupSchedule
	for i := range policy.Spec.Schedules {
		if policy.Spec.Schedules[i].Name == req.Schedule {
			schedule = &policy.Spec.Schedules[i]
		}
	}
	if schedule == nil {
		return nil, fmt.Errorf("export %s: policy %s has no schedule %q", req.ID, policy.Name, req.Schedule)
	}
	ref := policy.Spec.Encryption.IdentitySecretRef
	if ref == nil {
		return nil, fmt.Errorf("export %s: policy %s has no spec.encryption.identitySecretRef to read its backups with", req.ID, policy.Name)
	}
	if len(req.Recipients) == 0 {
		return nil, fmt.Errorf("export %s: no recipient: the customer's age public key is needed", req.ID)
	}
	for i, r := range req.Recipients {
		// Not quoted: a secret key pasted here must not end up in a condition or a log.
		if !strings.HasPrefix(r, "age1") {
			return nil, fmt.Errorf("export %s: recipient %d is not an age public key (age1...)", req.ID, i+1)
		}
		if _, err := age.ParseRecipients(strings.NewReader(r)); err != nil {
			return nil, fmt.Errorf("export %s: recipient %d is not a valid age public key", req.ID, i+1)
		}
	}
	backupID := req.BackupID
	if backupID == "" {
		backupID = catalog.Latest
	} else if err := catalog.ValidateName("backup id", backupID); err != nil {
		return nil, fmt.Errorf("export %s: %w", req.ID, err)
	}
	location, err := StorageLocation(schedule.Storage)
	if err != nil {
		return nil, fmt.Errorf("export %s: schedule %s: %w", req.ID, schedule.Name, err)
	}

	args := []string{"export",
		"--storage", location,
		"--tenant", t.Name,
		"--schedule", schedule.Name,
		"--backup", backupID,
		"--identity-file", path.Join(identityMountDir, identityFileName),
		"--output-storage", location,
		"--export-id", req.ID,
		"-v",
	}
	// No --pg-bin-dir: the agent takes pg_restore of the backup's own major from the image
	// (PostgresBinDir's layout), which reads it whatever major the tenant runs today.
	for _, r := range req.Recipients {
		args = append(args, "--recipient", r)
	}
	for _, uid := range TenantUIDs(t) {
		args = append(args, "--tenant-uid", uid)
	}
	args = append(args, VerifySigningArgs(policy)...)

	env := readerStorageEnv(t, schedule.Storage)
	if schedule.Storage.S3 != nil {
		env = append(env, outputCredentialsEnv(schedule.Storage.S3.WriterSecretName(t.Name))...)
	}
	env = append(env, corev1ac.EnvVar().WithName("HOME").WithValue("/tmp"))
	volumes := []*corev1ac.VolumeApplyConfiguration{
		identityVolume(ref),
		corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("64Mi"))),
	}
	mounts := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("identity").WithMountPath(identityMountDir).WithReadOnly(true),
		corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
	}
	volumes, mounts = withStorageVolume(schedule.Storage, volumes, mounts)

	labels := labelsWith(t, map[string]string{LabelComponent: ComponentExport, LabelSchedule: schedule.Name})
	// Measured at under 50 MiB whatever the database's size (TestExportMemoryIsFlat), and two S3
	// parts of the upload on top.
	agent := agentContainer(opts, args, env, mounts, "250m", "128Mi", "256Mi")
	return batchv1ac.Job(ExportJobName(t, req.ID), opts.OperatorNamespace).
		WithLabels(labels).
		WithAnnotations(map[string]string{annotationBackupPolicy: policy.Name, annotationExportID: req.ID}).
		// A retry writes the same key again; the record that makes the export visible comes only
		// after a whole archive.
		WithSpec(oneShotJobSpec(2, exportDeadline, labels, agentPodSpec(agent, volumes))), nil
}

// exportDeadline bounds one export: it reads the backup twice, about as long as two restores.
const exportDeadline = 12 * time.Hour

// outputCredentialsEnv passes a Secret's S3 credential as the export's output credential
// (storage.EnvOutputAccessKeyID ...).
func outputCredentialsEnv(secret string) []*corev1ac.EnvVarApplyConfiguration {
	var env []*corev1ac.EnvVarApplyConfiguration
	for _, v := range [][2]string{{storage.EnvOutputAccessKeyID, "AWS_ACCESS_KEY_ID"}, {storage.EnvOutputSecretAccessKey, "AWS_SECRET_ACCESS_KEY"}} {
		env = append(env, corev1ac.EnvVar().WithName(v[0]).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(secret).WithKey(v[1]))))
	}
	return env
}

// TenantExportRequest is the ExportRequest of a TenantExport: its name is the export's id when
// that is a DNS label, else one made from its UID; the schedule is the one named, or the policy's
// first logical one.
func TenantExportRequest(e *v1alpha1.TenantExport, policy *v1alpha1.BackupPolicy) (ExportRequest, error) {
	id := e.Name
	if !exportIDRE.MatchString(id) {
		uid := strings.ReplaceAll(string(e.UID), "-", "")
		id = "export-" + uid[:min(len(uid), 12)]
	}
	req := ExportRequest{ID: id, BackupID: e.Spec.Backup, Recipients: e.Spec.Recipients}
	for _, s := range policy.Spec.Schedules {
		if (e.Spec.Schedule == "" && !s.IsPhysical()) || s.Name == e.Spec.Schedule {
			if s.IsPhysical() {
				return req, fmt.Errorf("spec.schedule: schedule %s of BackupPolicy %s is physical; an export reads a logical backup (a dump)", s.Name, policy.Name)
			}
			req.Schedule = s.Name
			return req, nil
		}
	}
	if e.Spec.Schedule != "" {
		return req, fmt.Errorf("spec.schedule: BackupPolicy %s has no schedule %q", policy.Name, e.Spec.Schedule)
	}
	return req, fmt.Errorf("BackupPolicy %s has no logical schedule; an export reads a logical backup (a dump)", policy.Name)
}

// ExportArchiveKey is where an export's archive is, in its schedule's storage.
func ExportArchiveKey(tenant, id string) string { return tenant + "/exports/" + id + ".age" }
