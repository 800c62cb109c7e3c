package builders

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/schedule"
)

// Continuous WAL archiving. A physical schedule's storage receives the tenant's WAL as it is
// written, for point-in-time recovery. The database does not push it (archive_command): its pod
// lives in the tenant's namespace, whose admins can read every Secret there, and pushing would put
// the storage credential and the policy's signing key within their reach. Instead a receiver per
// physical schedule, a Deployment in the operator's namespace like the backup jobs, streams the WAL
// over the replication protocol as the backup role (`tenant-operator wal-receive`), encrypts it to
// the tenant's data key, signs and stores it. A replication slot per receiver makes the server keep
// each segment until its receiver has stored it, so that a receiver that is down or cannot reach
// storage loses nothing; the database's volume holds the backlog meanwhile, which WALArchiving and
// the TenantWALArchivingFailing alert report long before it fills.

const (
	// ComponentWALReceiver is the LabelComponent value of WAL receivers and their pods.
	ComponentWALReceiver = "wal-receiver"

	// ArchiveTimeout is the longest a committed transaction waits for its WAL segment to be
	// complete, and so streamed and stored, when the database writes little: the recovery point
	// of a quiet tenant (archive_timeout). A tenant that writes nothing switches no segment. 55 s,
	// not a minute: the promise is a recovery point of a minute, and the segment's upload comes
	// on top (measured at well under a second: docs/performance.md).
	ArchiveTimeout = 55 * time.Second

	// walSlotPrefix starts the name of every replication slot the operator makes; the database
	// drops those of its receivers that are gone (walSlotsSQL).
	walSlotPrefix = "tenantops_wal_"

	// walStatusDir holds the receiver's status file, which its readiness probe reads.
	walStatusDir  = "/run/tenantops-wal"
	walStatusFile = walStatusDir + "/status.json"
	// WALReceiverStallAfter is how long the receiver may go without storing what it has received
	// (or without hearing from the server) before its probe calls it not ready.
	WALReceiverStallAfter = 2 * time.Minute

	// manifestKeyMountDir holds the tenant's manifest key in physical backup jobs.
	manifestKeyMountDir = "/etc/tenantops/manifest-key"
	// ManifestKeySecretKey is the age identity in ManifestKeySecretName.
	ManifestKeySecretKey = "identity"
	// ComponentManifestKey is the LabelComponent value of manifest key Secrets.
	ComponentManifestKey = "manifest-key"

	// AnnotationWALArchiveSlots on a database StatefulSet lists its receivers' slots.
	AnnotationWALArchiveSlots = "tenancy.tenantops.io/wal-archive-slots"
	annotationSummarizeWAL    = "tenancy.tenantops.io/summarize-wal"

	// agentPath is the agent in its image, for exec probes.
	agentPath = "/usr/local/bin/tenant-operator"
)

// WALArchive is how a tenant's database serves its WAL receivers: one replication slot per
// physical schedule, and WAL summaries when a schedule takes incremental backups.
type WALArchive struct {
	// Slots are the receivers' replication slots, in the policy's schedule order.
	Slots []string
	// Summarize turns on summarize_wal, which pg_basebackup --incremental needs (PostgreSQL 17
	// and later; ignored before).
	Summarize bool
}

// WALArchiveOf is what a BackupPolicy asks of its tenants' databases; nothing without a policy.
func WALArchiveOf(policy *v1alpha1.BackupPolicy) WALArchive {
	var a WALArchive
	if policy == nil {
		return a
	}
	for _, s := range policy.Spec.Schedules {
		if !s.IsPhysical() {
			continue
		}
		a.Slots = append(a.Slots, WALSlotName(s.Name))
		a.Summarize = a.Summarize || s.FullEvery != ""
	}
	return a
}

// WALArchiveInUse reads the archiving a database StatefulSet was built with (its annotations,
// which the manager's cache keeps), so that a pass that cannot read the tenant's BackupPolicy
// (deleted, invalid) keeps it: turning it off would restart the database and drop the slots, and
// with them the WAL not yet stored.
func WALArchiveInUse(sts *appsv1.StatefulSet) WALArchive {
	return WALArchive{Slots: strings.Fields(sts.Annotations[AnnotationWALArchiveSlots]), Summarize: sts.Annotations[annotationSummarizeWAL] == "on"}
}

// annotations reflects the archiving on the StatefulSet (WALArchiveInUse).
func (a WALArchive) annotations() map[string]string {
	if len(a.Slots) == 0 {
		return nil
	}
	m := map[string]string{AnnotationWALArchiveSlots: strings.Join(a.Slots, " ")}
	if a.Summarize {
		m[annotationSummarizeWAL] = "on"
	}
	return m
}

// WALSlotName is the replication slot of a schedule's receiver: a slot name takes lowercase
// letters, digits and underscores, at most 63; a schedule name is a DNS label of at most 20.
func WALSlotName(schedule string) string {
	return walSlotPrefix + strings.ReplaceAll(schedule, "-", "_")
}

// serverArgs are the settings archiving adds to the server's command line. archive_mode with a
// command that does nothing is there for archive_timeout alone: it makes the server end a segment
// that has waited that long with changes in it, which the receivers then store; the slots, not the
// archiver, decide when a segment may go.
func (a WALArchive) serverArgs(t *v1alpha1.Tenant) []string {
	if len(a.Slots) == 0 {
		return nil
	}
	args := []string{
		"-c", "wal_level=replica",
		"-c", "archive_mode=on",
		"-c", "archive_command=/bin/true",
		"-c", "archive_timeout=" + strconv.Itoa(int(ArchiveTimeout.Seconds())) + "s",
	}
	if major, err := strconv.Atoi(DatabaseVersion(t)); err == nil && major >= 17 && a.Summarize {
		args = append(args, "-c", "summarize_wal=on")
	}
	return args
}

// WALReceiverName names the receiver of one physical schedule of a tenant.
func WALReceiverName(t *v1alpha1.Tenant, schedule string) string {
	return cronJobName("wal", t, schedule)
}

// WALReceiverDeployment runs `tenant-operator wal-receive` for one physical schedule: one replica
// at a time (Recreate: two receivers on one slot would have the second refused), in the
// operator's namespace, with what a backup job of the schedule holds and nothing more (writerAgent),
// under Pod Security restricted, no service account token. Its memory stays flat: it holds at most
// two segments (see docs/backup-agent.md, wal-receive).
func WALReceiverDeployment(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, sched v1alpha1.BackupSchedule, opts Options) (*appsv1ac.DeploymentApplyConfiguration, error) {
	opts = opts.withDefaults()
	if !sched.IsPhysical() {
		return nil, fmt.Errorf("schedule %s is not physical: it archives no WAL", sched.Name)
	}
	location, err := StorageLocation(sched.Storage)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", sched.Name, err)
	}
	writer, env, volumes, mounts, err := writerAgent(t, policy, sched.Storage)
	if err != nil {
		return nil, err
	}
	args := append([]string{"wal-receive",
		"--dsn", BackupDSN(t),
		"--slot", WALSlotName(sched.Name),
		"--storage", location,
		"--tenant", t.Name,
		"--status-file", walStatusFile,
		"-v",
	}, writer...)
	env = append(env,
		corev1ac.EnvVar().WithName("HOME").WithValue("/tmp"),
		// The Go runtime collects before it reaches the limit rather than after.
		corev1ac.EnvVar().WithName("GOMEMLIMIT").WithValue("96MiB"))
	volumes = append(volumes,
		corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("16Mi"))),
		corev1ac.Volume().WithName("status").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithMedium(corev1.StorageMediumMemory).WithSizeLimit(resource.MustParse("1Mi"))))
	mounts = append(mounts,
		corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		corev1ac.VolumeMount().WithName("status").WithMountPath(walStatusDir))
	labels := labelsWith(t, map[string]string{LabelComponent: ComponentWALReceiver, LabelSchedule: sched.Name})
	podLabels := maps.Clone(labels)
	// The receiver connects to the tenant's database: its pods pass the tenant's firewall.
	maps.Copy(podLabels, opts.OperatorPodSelector)
	receiver := corev1ac.Container().
		WithName("receiver").
		WithImage(opts.AgentImage).
		WithArgs(args...).
		WithEnv(env...).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")})).
		WithSecurityContext(RestrictedContainerSecurityContext()).
		WithVolumeMounts(mounts...).
		// Ready while it keeps up: it stored what it received, or had nothing to store, within
		// WALReceiverStallAfter. A receiver that cannot reach storage or the database turns
		// unready, which WALArchiving reads from the Deployment.
		WithReadinessProbe(corev1ac.Probe().WithExec(corev1ac.ExecAction().WithCommand(agentPath, "wal-receive-status",
			"--status-file", walStatusFile, "--within", WALReceiverStallAfter.String())).
			WithPeriodSeconds(15).WithTimeoutSeconds(5).WithFailureThreshold(2))
	return appsv1ac.Deployment(WALReceiverName(t, sched.Name), opts.OperatorNamespace).
		WithLabels(labels).
		WithAnnotations(map[string]string{annotationBackupPolicy: policy.Name}).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(1).
			WithStrategy(appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)).
			WithRevisionHistoryLimit(2).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(podLabels).
				WithSpec(corev1ac.PodSpec().
					WithAutomountServiceAccountToken(false).
					WithEnableServiceLinks(false).
					WithTerminationGracePeriodSeconds(30).
					WithSecurityContext(RestrictedPodSecurityContext(agentUID)).
					WithContainers(receiver).
					WithVolumes(volumes...)))), nil
}

// ManifestKeySecretName holds a tenant's manifest key in the operator's namespace: an age
// identity that reads the backup_manifest of its physical backups (which files, their sizes and
// checksums; no data), for the next incremental backup. Only physical backup jobs mount it.
func ManifestKeySecretName(t *v1alpha1.Tenant) string {
	return boundedName("tenant-"+t.Name+"-manifest-key-"+string(t.UID), 253)
}

// ManifestKeySecret holds a tenant's manifest key; the identity comes from the caller
// (age.GenerateX25519Identity, with crypto/rand): builders make no randomness.
func ManifestKeySecret(t *v1alpha1.Tenant, identity string, opts Options) *corev1ac.SecretApplyConfiguration {
	opts = opts.withDefaults()
	return corev1ac.Secret(ManifestKeySecretName(t), opts.OperatorNamespace).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: ComponentManifestKey, LabelTenantUID: string(t.UID)})).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{ManifestKeySecretKey: []byte(identity + "\n")})
}

// NeedsManifestKey says whether a policy takes incremental backups, whose jobs need the key.
func NeedsManifestKey(policy *v1alpha1.BackupPolicy) bool {
	return policy != nil && slices.ContainsFunc(policy.Spec.Schedules, func(s v1alpha1.BackupSchedule) bool {
		return s.IsPhysical() && s.FullEvery != ""
	})
}

// fullEvery is a schedule's fullEvery as the agent's --full-every takes it.
func fullEvery(s v1alpha1.BackupSchedule) (time.Duration, error) {
	p, err := schedule.ParsePeriod(s.FullEvery)
	if err != nil {
		return 0, fmt.Errorf("schedule %s: fullEvery: %w", s.Name, err)
	}
	return p.Approximate(), nil
}
