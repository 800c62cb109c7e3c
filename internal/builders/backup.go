package builders

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"path"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Backup jobs run in the operator's namespace, not the tenant's: the storage credentials and the
// age identity they mount never enter a tenant namespace, and tenant admins can neither read them,
// delete the jobs nor exec into their pods. The jobs reach the tenant's database through its
// firewall (their pods carry Options.OperatorPodSelector) as BackupRoleName, a read-only role.

// BackupRoleName is the PostgreSQL role backups connect as: LOGIN, BYPASSRLS and a member of
// pg_read_all_data, so pg_dump sees every row and can change nothing; REPLICATION, so that
// physical base backups and the WAL receivers can stream the cluster (which shows them every row
// too, and changes nothing either).
const BackupRoleName = "tenantops_backup"

// Labels of the backup objects.
const (
	// LabelSchedule names the BackupPolicy schedule a CronJob or Job runs.
	LabelSchedule = "tenancy.tenantops.io/schedule"
	// ComponentBackup and ComponentVerify are the LabelComponent values of backup and
	// verification CronJobs, their Jobs and pods.
	ComponentBackup = "backup"
	ComponentVerify = "verify"
	// ComponentBackupSigning is the LabelComponent value of a policy's signing key Secret.
	ComponentBackupSigning = "backup-signing"

	// annotationBackupPolicy names the BackupPolicy an object in the operator's namespace serves
	// (agentCronJob writes the same key).
	annotationBackupPolicy = "tenancy.tenantops.io/backup-policy"
)

// Keys and mount paths of the backup jobs.
const (
	// BackupSecretKeyPassword is the backup role's password, in DatabaseBackupSecretName (tenant
	// namespace, read by the database's maintenance sidecar) and BackupJobSecretName (operator
	// namespace, read by the jobs).
	BackupSecretKeyPassword = "password"
	// BackupSecretKeyCA is the database's CA certificate in BackupJobSecretName.
	BackupSecretKeyCA = DatabaseCAKey

	// BackupSigningSecretKey is the policy's Ed25519 private key (PKCS #8 PEM) in
	// BackupSigningSecretName; BackupSigningSecretKeyTrusted the public keys it trusts, one per
	// line, newest first: the current key and the ones rotated out, kept with the private key
	// so that a lost status does not lose them.
	BackupSigningSecretKey        = "signing.key"
	BackupSigningSecretKeyTrusted = "trusted-public-keys"

	agentUID          = 65532
	backupCAMountDir  = "/etc/tenantops/database-ca"
	signingMountDir   = "/etc/tenantops/signing"
	identityMountDir  = "/etc/tenantops/identity"
	identityFileName  = "identity"
	volumeStorageRoot = "/var/lib/tenantops/backups"
	scratchDir        = "/scratch"
	// maxCronJobName: a CronJob's Jobs are named <cronjob>-<11 digits>, and a Job name must be a
	// 63-character label.
	maxCronJobName = 52
)

// DatabaseBackupSecretName holds the backup role's password in the tenant namespace, for the
// database pod to create the role with. Tenant admins can read it; it gives them less than the
// owner's password they already have.
func DatabaseBackupSecretName(*v1alpha1.Tenant) string { return "postgres-backup-credentials" }

// BackupJobSecretName holds the backup role's password and the database CA in the operator's
// namespace, for the tenant's backup jobs.
func BackupJobSecretName(t *v1alpha1.Tenant) string { return "tenant-" + t.Name + "-backup" }

// BackupSigningSecretName holds the key that signs a BackupPolicy's backup manifests, in the
// operator's namespace; only the policy's backup jobs mount it.
func BackupSigningSecretName(policy *v1alpha1.BackupPolicy) string {
	return boundedName("backup-signing-"+policy.Name, 253)
}

// BackupSigningSecret holds a policy's signing key. The key comes from the caller
// (catalog.GenerateSigningKey with crypto/rand, once, kept thereafter): builders make no
// randomness. trusted are the public keys in text form, the current one first.
func BackupSigningSecret(policy *v1alpha1.BackupPolicy, privateKeyPEM []byte, trusted []string, opts Options) *corev1ac.SecretApplyConfiguration {
	opts = opts.withDefaults()
	return corev1ac.Secret(BackupSigningSecretName(policy), opts.OperatorNamespace).
		WithLabels(map[string]string{LabelManagedBy: ManagedByValue, LabelComponent: ComponentBackupSigning}).
		WithAnnotations(map[string]string{annotationBackupPolicy: policy.Name}).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{
			BackupSigningSecretKey:        privateKeyPEM,
			BackupSigningSecretKeyTrusted: []byte(strings.Join(trusted, "\n") + "\n"),
		})
}

// signsBackups says whether the operator has published the policy's signing key, which it does
// only once the key's Secret exists: until then backup jobs do not mount it, and their backups are
// unsigned.
func signsBackups(policy *v1alpha1.BackupPolicy) bool {
	return policy.Status.Signing != nil && policy.Status.Signing.PublicKey != ""
}

// SigningPublicKeys are the keys whose signatures a policy's backups are checked against: the
// operator's current and previous keys, then the spec's additional ones.
func SigningPublicKeys(policy *v1alpha1.BackupPolicy) []string {
	var keys []string
	if st := policy.Status.Signing; st != nil {
		if st.PublicKey != "" {
			keys = append(keys, st.PublicKey)
		}
		keys = append(keys, st.PreviousPublicKeys...)
	}
	if sp := policy.Spec.Signing; sp != nil {
		keys = append(keys, sp.AdditionalPublicKeys...)
	}
	return keys
}

// allowsUnsigned says whether a policy's unsigned backups are accepted: when its spec says so, or
// while the operator has published no key for it yet (every backup it has is then unsigned).
func allowsUnsigned(policy *v1alpha1.BackupPolicy) bool {
	return !signsBackups(policy) || (policy.Spec.Signing != nil && policy.Spec.Signing.AllowUnsigned)
}

// SigningTrust is what the operator checks a policy's backups against when it lists them
// (catalog.WithTrust), so that a backup made or changed without the key never counts.
func SigningTrust(policy *v1alpha1.BackupPolicy) (catalog.Trust, error) {
	t := catalog.Trust{AllowUnsigned: allowsUnsigned(policy)}
	for _, k := range SigningPublicKeys(policy) {
		pub, err := catalog.ParsePublicKey(k)
		if err != nil {
			return catalog.Trust{}, fmt.Errorf("backup policy %s: %w", policy.Name, err)
		}
		t.Keys = append(t.Keys, pub)
	}
	return t, nil
}

// VerifySigningArgs are the agent arguments that make a verification job check signatures as
// SigningTrust does. Public keys are not secret, so they go on the command line.
func VerifySigningArgs(policy *v1alpha1.BackupPolicy) []string {
	var args []string
	for _, k := range SigningPublicKeys(policy) {
		args = append(args, "--signing-public-key", k)
	}
	if allowsUnsigned(policy) {
		args = append(args, "--allow-unsigned")
	}
	return args
}

// BackupCronJobName names the CronJob of one schedule of a tenant.
func BackupCronJobName(t *v1alpha1.Tenant, schedule string) string {
	return cronJobName("backup", t, schedule)
}

// VerifyCronJobName names the verification CronJob of one schedule of a tenant.
func VerifyCronJobName(t *v1alpha1.Tenant, schedule string) string {
	return cronJobName("verify", t, schedule)
}

// cronJobName is <what>-<tenant>-<schedule>-<hash>, cut to the CronJob limit before the hash. Both
// names may hold hyphens, so without the hash tenant a-b's schedule c and tenant a's schedule b-c
// would share a CronJob; the hash of the pair, separated where no name can hold the separator,
// keeps every pair's name its own.
func cronJobName(what string, t *v1alpha1.Tenant, schedule string) string {
	sum := sha256.Sum256([]byte(t.Name + "/" + schedule))
	readable := what + "-" + t.Name + "-" + schedule
	return strings.TrimRight(readable[:min(len(readable), maxCronJobName-9)], "-") + "-" + hex.EncodeToString(sum[:])[:8]
}

// boundedName keeps a name within limit, replacing the tail of a long one with a hash of the
// whole, so that two long names stay distinct and the same input always gives the same name.
func boundedName(name string, limit int) string {
	if len(name) <= limit {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:limit-9] + "-" + hex.EncodeToString(sum[:])[:8]
}

// DatabaseBackupSecret is the tenant-namespace copy of the backup role's password.
func DatabaseBackupSecret(t *v1alpha1.Tenant, password string) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(DatabaseBackupSecretName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{BackupSecretKeyPassword: []byte(password)})
}

// BackupJobSecret is what the backup jobs need to reach the database: the backup role's
// password and the CA that signed the database's certificate.
func BackupJobSecret(t *v1alpha1.Tenant, password, caPEM string, opts Options) *corev1ac.SecretApplyConfiguration {
	opts = opts.withDefaults()
	return corev1ac.Secret(BackupJobSecretName(t), opts.OperatorNamespace).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: ComponentBackup})).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{BackupSecretKeyPassword: []byte(password), BackupSecretKeyCA: []byte(caPEM)})
}

// identityVolume is the policy's identity (spec.encryption.identitySecretRef), which agent pods
// that read backups mount at identityMountDir.
func identityVolume(ref *v1alpha1.SecretKeyReference) *corev1ac.VolumeApplyConfiguration {
	key := ref.Key
	if key == "" {
		key = identityFileName
	}
	return corev1ac.Volume().WithName("identity").WithSecret(corev1ac.SecretVolumeSource().
		WithSecretName(ref.Name).
		WithItems(corev1ac.KeyToPath().WithKey(key).WithPath(identityFileName)).
		WithDefaultMode(0o440))
}

// agentDSN is how the operator's agent pods connect to a tenant's database: as role user, TLS
// verified against the CA mounted in caDir. The password comes from PGPASSWORD, never from the
// command line.
func agentDSN(t *v1alpha1.Tenant, user, caDir string) string {
	q := url.Values{}
	q.Set("sslmode", "verify-full")
	q.Set("sslrootcert", path.Join(caDir, BackupSecretKeyCA))
	u := url.URL{Scheme: "postgresql", User: url.User(user), Host: fmt.Sprintf("%s:%d", DatabaseHost(t), DatabasePort),
		Path: "/" + databaseName, RawQuery: q.Encode()}
	return u.String()
}

// BackupDSN is how the backup jobs connect: as the backup role, TLS verified against the mounted
// CA. The password comes from PGPASSWORD, never from the command line.
func BackupDSN(t *v1alpha1.Tenant) string { return agentDSN(t, BackupRoleName, backupCAMountDir) }

// StorageLocation is the agent's LOCATION for a schedule's storage. A volume is mounted into the
// job at a fixed path, so its location does not depend on the claim's name.
func StorageLocation(s v1alpha1.BackupStorage) (string, error) {
	switch {
	case s.S3 != nil:
		region := s.S3.Region
		if region == "" {
			region = storage.DefaultS3Region // what the agent assumes for a location without one
		}
		return storage.Location{Scheme: storage.SchemeS3, Bucket: s.S3.Bucket, Prefix: s.S3.Prefix,
			Endpoint: s.S3.Endpoint, Region: region, Insecure: s.S3.Insecure}.String(), nil
	case s.Volume != nil:
		return storage.Location{Scheme: storage.SchemeFile, Path: volumeStorageRoot}.String(), nil
	}
	return "", fmt.Errorf("storage names neither s3 nor volume")
}

// PostgresBinDir is where the agent image keeps the client programs of a PostgreSQL major
// version (Debian's layout), so pg_dump matches the tenant's server.
func PostgresBinDir(major string) string { return "/usr/lib/postgresql/" + major + "/bin" }

// BackupCronJob runs `tenant-operator backup` for one schedule of the tenant's BackupPolicy.
func BackupCronJob(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, schedule v1alpha1.BackupSchedule, expectedInterval time.Duration, opts Options) (*batchv1ac.CronJobApplyConfiguration, error) {
	opts = opts.withDefaults()
	location, err := StorageLocation(schedule.Storage)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", schedule.Name, err)
	}
	args := []string{"backup"}
	if schedule.IsPhysical() {
		args = append(args, "--method", string(v1alpha1.BackupMethodPhysical))
	}
	args = append(args,
		"--dsn", BackupDSN(t),
		"--storage", location,
		"--tenant", t.Name,
		"--schedule", schedule.Name,
		"--pg-bin-dir", PostgresBinDir(DatabaseVersion(t)),
	)
	writer, env, volumes, mounts, err := writerAgent(t, policy, schedule.Storage)
	if err != nil {
		return nil, err
	}
	args = append(args, writer...)
	if schedule.IsPhysical() && schedule.FullEvery != "" {
		full, err := fullEvery(schedule)
		if err != nil {
			return nil, err
		}
		// The next incremental backup reads the previous one's backup_manifest (which files,
		// which checksums; no data) with the tenant's manifest key, which the job holds; the
		// data stays encrypted to the data key alone.
		args = append(args, "--full-every", full.String(), "--manifest-key", path.Join(manifestKeyMountDir, ManifestKeySecretKey))
		volumes = append(volumes, corev1ac.Volume().WithName("manifest-key").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(ManifestKeySecretName(t)).
			WithItems(corev1ac.KeyToPath().WithKey(ManifestKeySecretKey).WithPath(ManifestKeySecretKey)).
			WithDefaultMode(0o440)))
		mounts = append(mounts, corev1ac.VolumeMount().WithName("manifest-key").WithMountPath(manifestKeyMountDir).WithReadOnly(true))
	}
	return agentCronJob(t, policy, schedule.Name, ComponentBackup, BackupCronJobName(t, schedule.Name), schedule.Schedule,
		expectedInterval, args, env, volumes, mounts, opts), nil
}

// writerAgent is what every agent pod that writes a tenant's backups or WAL needs, as arguments,
// environment, volumes and mounts: the backup role's password and the database's CA to connect
// with, the tenant's data key to encrypt to (its public half and its wrapped identity, which the
// agent stores beside what it writes), the policy's signing key, and the writer's storage
// credential, which may put objects under the tenant's prefix and do nothing else.
func writerAgent(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, s v1alpha1.BackupStorage) ([]string, []*corev1ac.EnvVarApplyConfiguration, []*corev1ac.VolumeApplyConfiguration, []*corev1ac.VolumeMountApplyConfiguration, error) {
	if t.UID == "" {
		// Only a Tenant not yet stored has no UID; nothing runs it.
		return nil, nil, nil, nil, fmt.Errorf("tenant %s has no UID: its data key cannot be named", t.Name)
	}
	// Encrypted to the tenant's own data key only, whose Secret the controller made before
	// this pod's owner; the agent stores the wrapped key beside the backups. A rotation changes the
	// Secret, not the pod spec: the next run (or the receiver's next start) mounts the new key.
	args := []string{"--tenant-uid", string(t.UID), "--data-key", dataKeyMountDir}
	env := []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName("PGPASSWORD").WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(BackupJobSecretName(t)).WithKey(BackupSecretKeyPassword))),
	}
	env = append(env, writerStorageEnv(t, s)...)
	volumes := []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("database-ca").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(BackupJobSecretName(t)).
			WithItems(corev1ac.KeyToPath().WithKey(BackupSecretKeyCA).WithPath(BackupSecretKeyCA)).
			WithDefaultMode(0o440)),
		corev1ac.Volume().WithName("data-key").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(DataKeySecretName(t)).
			WithItems(corev1ac.KeyToPath().WithKey(datakey.FileRecipient).WithPath(datakey.FileRecipient),
				corev1ac.KeyToPath().WithKey(datakey.FileWrapped).WithPath(datakey.FileWrapped)).
			WithDefaultMode(0o440)),
	}
	mounts := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("database-ca").WithMountPath(backupCAMountDir).WithReadOnly(true),
		corev1ac.VolumeMount().WithName("data-key").WithMountPath(dataKeyMountDir).WithReadOnly(true),
	}
	if signsBackups(policy) {
		// Only the private key, as a file: not the trusted keys beside it, and never an
		// environment variable, which /proc shows to anything running as the agent's user.
		args = append(args, "--signing-key-file", path.Join(signingMountDir, BackupSigningSecretKey))
		volumes = append(volumes, corev1ac.Volume().WithName("signing-key").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(BackupSigningSecretName(policy)).
			WithItems(corev1ac.KeyToPath().WithKey(BackupSigningSecretKey).WithPath(BackupSigningSecretKey)).
			WithDefaultMode(0o440)))
		mounts = append(mounts, corev1ac.VolumeMount().WithName("signing-key").WithMountPath(signingMountDir).WithReadOnly(true))
	}
	volumes, mounts = withStorageVolume(s, volumes, mounts)
	return args, env, volumes, mounts, nil
}

// VerifyCronJob runs `tenant-operator verify` on the newest backup of one schedule: a restore
// drill when the policy names an identity, else a check of the stored object against its manifest.
//
// A drill restores tenant-controlled SQL, so its pod has two containers that share only a socket
// (see internal/backup/drill.go):
//   - "agent" holds the identity and the storage credentials; it fetches, checks, decrypts and
//     streams the plain archive to the socket, and records the result.
//   - "scratch", a sidecar (an init container that keeps running), is the restorer: its own uid, no
//     Secret volume, no credential in its environment, and the scratch volume mounted in it
//     alone. It restores as a role without privileges.
//
// The scratch volume is a generic ephemeral volume of the tenant database's storage class, so that
// the drill's plaintext lives where the tenant's data already does, and is deleted with the pod.
// It is sized for the database (ScratchSize): the restored database cannot be larger than the
// volume its source lives on.
//
// Verify pods carry the tenant's labels, LabelComponent verify and LabelSchedule, and not
// Options.OperatorPodSelector: they need no way through the tenant's firewall.
func VerifyCronJob(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, schedule v1alpha1.BackupSchedule, expectedInterval time.Duration, opts Options) (*batchv1ac.CronJobApplyConfiguration, error) {
	opts = opts.withDefaults()
	ref := policy.Spec.Encryption.IdentitySecretRef
	switch {
	case policy.Spec.Verification == nil:
		return nil, fmt.Errorf("policy %s asks for no verification", policy.Name)
	case ref == nil:
		// Validation refuses this: a drill cannot decrypt without an identity.
		return nil, fmt.Errorf("policy %s asks for verification without spec.encryption.identitySecretRef", policy.Name)
	}
	location, err := StorageLocation(schedule.Storage)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", schedule.Name, err)
	}
	if schedule.IsPhysical() {
		return verifyChecksumCronJob(t, policy, schedule, location, expectedInterval, opts), nil
	}
	args := append([]string{"verify",
		"--storage", location,
		"--tenant", t.Name,
		"--schedule", schedule.Name,
		"--backup", "latest",
		"--identity-file", path.Join(identityMountDir, identityFileName),
		"--drill-socket", path.Join(drillSocketDir, drillSocketName), "--drill-role", databaseUser, "-v",
	}, VerifySigningArgs(policy)...)
	for _, uid := range TenantUIDs(t) {
		args = append(args, "--tenant-uid", uid)
	}
	volumes := []*corev1ac.VolumeApplyConfiguration{
		identityVolume(ref),
		corev1ac.Volume().WithName("drill").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("1Mi"))),
		corev1ac.Volume().WithName("scratch").WithEphemeral(corev1ac.EphemeralVolumeSource().WithVolumeClaimTemplate(
			corev1ac.PersistentVolumeClaimTemplate().
				WithLabels(labelsWith(t, map[string]string{LabelComponent: ComponentVerify, LabelSchedule: schedule.Name})).
				WithSpec(scratchClaim(t)))),
		corev1ac.Volume().WithName("scratch-tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("64Mi"))),
	}
	mounts := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("identity").WithMountPath(identityMountDir).WithReadOnly(true),
		corev1ac.VolumeMount().WithName("drill").WithMountPath(drillSocketDir),
	}
	volumes, mounts = withStorageVolume(schedule.Storage, volumes, mounts)
	cj := agentCronJob(t, policy, schedule.Name, ComponentVerify, VerifyCronJobName(t, schedule.Name), policy.Spec.Verification.Schedule,
		expectedInterval, args, readerStorageEnv(t, schedule.Storage), volumes, mounts, opts)
	cj.Spec.JobTemplate.Spec.Template.Spec.WithInitContainers(scratchContainer(t, opts))
	return cj, nil
}

// verifyChecksumCronJob verifies a physical schedule's newest base backup by its checksums and
// signature: the whole stored object and its backup_manifest read back and compared with the
// signed manifest. A base backup cannot be drilled as a dump is; a point-in-time restore
// (TenantRestore, or restore --to-time) is its drill. It needs no identity and no scratch volume.
func verifyChecksumCronJob(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, schedule v1alpha1.BackupSchedule, location string, expectedInterval time.Duration, opts Options) *batchv1ac.CronJobApplyConfiguration {
	args := append([]string{"verify",
		"--storage", location,
		"--tenant", t.Name,
		"--schedule", schedule.Name,
		"--backup", "latest",
		"-v",
	}, VerifySigningArgs(policy)...)
	for _, uid := range TenantUIDs(t) {
		args = append(args, "--tenant-uid", uid)
	}
	volumes, mounts := withStorageVolume(schedule.Storage, nil, nil)
	return agentCronJob(t, policy, schedule.Name, ComponentVerify, VerifyCronJobName(t, schedule.Name), policy.Spec.Verification.Schedule,
		expectedInterval, args, readerStorageEnv(t, schedule.Storage), volumes, mounts, opts)
}

// The verify pod's drill: where the restorer listens, and who it runs as.
const (
	drillSocketDir  = "/run/tenantops-drill"
	drillSocketName = "drill.sock"
	// scratchUID runs the restorer: not the agent's uid, so that nothing of the agent's is its
	// own. The agent image has a user for it (initdb looks its user up).
	scratchUID = 65533
)

// scratchContainer is the restorer: `verify --serve-drills` as a sidecar, which the kubelet stops
// once the agent has finished. Its environment is HOME alone; its volumes are the socket's, the
// scratch volume and its own /tmp. PostgreSQL runs here, hence the memory.
func scratchContainer(t *v1alpha1.Tenant, opts Options) *corev1ac.ContainerApplyConfiguration {
	return corev1ac.Container().
		WithName("scratch").
		WithImage(opts.AgentImage).
		WithArgs("verify", "--serve-drills", path.Join(drillSocketDir, drillSocketName),
			"--scratch-dir", scratchDir, "--pg-bin-dir", PostgresBinDir(DatabaseVersion(t)), "-v").
		WithRestartPolicy(corev1.ContainerRestartPolicyAlways).
		WithEnv(corev1ac.EnvVar().WithName("HOME").WithValue("/tmp")).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")})).
		WithSecurityContext(RestrictedContainerSecurityContext().WithRunAsUser(scratchUID)).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("drill").WithMountPath(drillSocketDir),
			corev1ac.VolumeMount().WithName("scratch").WithMountPath(scratchDir),
			corev1ac.VolumeMount().WithName("scratch-tmp").WithMountPath("/tmp"))
}

// ScratchSize is the size of a drill's scratch volume: the tenant database's volume and a quarter
// more, at least 1 GiB more, for what a fresh restore adds beside the data (the scratch server's
// own files and WAL, minimal as it is) and rounded up to whole MiB. A restore holds no more than the
// volume the source database lives on, minus its bloat and old WAL.
func ScratchSize(t *v1alpha1.Tenant) resource.Quantity {
	const mib = 1 << 20
	db := t.Spec.Database.Storage.Size.Value()
	size := db + max(db/4, 1<<30)
	return *resource.NewQuantity((size+mib-1)/mib*mib, resource.BinarySI)
}

func scratchClaim(t *v1alpha1.Tenant) *corev1ac.PersistentVolumeClaimSpecApplyConfiguration {
	claim := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: ScratchSize(t)}))
	if t.Spec.Database.Storage.StorageClassName != nil {
		claim.WithStorageClassName(*t.Spec.Database.Storage.StorageClassName)
	}
	return claim
}

// writerStorageEnv passes the S3 credentials of a tenant's backup jobs
// (S3Storage.WriterSecretName): put new objects under the tenant's prefix and nothing more.
func writerStorageEnv(t *v1alpha1.Tenant, s v1alpha1.BackupStorage) []*corev1ac.EnvVarApplyConfiguration {
	if s.S3 == nil {
		return nil
	}
	return s3CredentialsEnv(s.S3.WriterSecretName(t.Name))
}

// readerStorageEnv passes the S3 credentials of a tenant's verification jobs
// (S3Storage.ReaderSecretName): list and read the tenant's prefix and record verifications there,
// never delete.
func readerStorageEnv(t *v1alpha1.Tenant, s v1alpha1.BackupStorage) []*corev1ac.EnvVarApplyConfiguration {
	if s.S3 == nil {
		return nil
	}
	return s3CredentialsEnv(s.S3.ReaderSecretName(t.Name))
}

func s3CredentialsEnv(secret string) []*corev1ac.EnvVarApplyConfiguration {
	var env []*corev1ac.EnvVarApplyConfiguration
	for _, key := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		env = append(env, corev1ac.EnvVar().WithName(key).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
			corev1ac.SecretKeySelector().WithName(secret).WithKey(key))))
	}
	return env
}

func withStorageVolume(s v1alpha1.BackupStorage, volumes []*corev1ac.VolumeApplyConfiguration, mounts []*corev1ac.VolumeMountApplyConfiguration) ([]*corev1ac.VolumeApplyConfiguration, []*corev1ac.VolumeMountApplyConfiguration) {
	if s.Volume == nil {
		return volumes, mounts
	}
	return append(volumes, corev1ac.Volume().WithName("backup-volume").WithPersistentVolumeClaim(
			corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(s.Volume.ClaimName))),
		append(mounts, corev1ac.VolumeMount().WithName("backup-volume").WithMountPath(volumeStorageRoot))
}

// agentCronJob is the CronJob shape backup and verification share: one pod at a time, a deadline
// so a stuck run fails instead of blocking the next, a short history, and a pod that passes Pod
// Security restricted with no service account token (the agent never calls the API server).
func agentCronJob(t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, schedule, component, name, cron string, expectedInterval time.Duration,
	args []string, env []*corev1ac.EnvVarApplyConfiguration, volumes []*corev1ac.VolumeApplyConfiguration, mounts []*corev1ac.VolumeMountApplyConfiguration, opts Options) *batchv1ac.CronJobApplyConfiguration {
	labels := labelsWith(t, map[string]string{LabelComponent: component, LabelSchedule: schedule})
	podLabels := labelsWith(t, map[string]string{LabelComponent: component, LabelSchedule: schedule})
	if component == ComponentBackup {
		// Only backups connect to the database; a verification drill restores into its own
		// scratch server and needs no way through the tenant's firewall.
		maps.Copy(podLabels, opts.OperatorPodSelector)
	}
	volumes = append(volumes, corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource()))
	mounts = append(mounts, corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"))
	env = append(env, corev1ac.EnvVar().WithName("HOME").WithValue("/tmp"))
	agent := corev1ac.Container().
		WithName("agent").
		WithImage(opts.AgentImage).
		WithArgs(args...).
		WithEnv(env...).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("128Mi")}).
			// The agent's memory does not grow with the database (fixed buffers, measured by
			// make bench-backup); a drill's PostgreSQL runs in the scratch container.
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(agentMemoryLimit(component))})).
		WithSecurityContext(RestrictedContainerSecurityContext()).
		WithVolumeMounts(mounts...)
	activeDeadline := activeDeadlineFor(expectedInterval)
	return batchv1ac.CronJob(name, opts.OperatorNamespace).
		WithLabels(labels).
		WithAnnotations(map[string]string{"tenancy.tenantops.io/backup-policy": policy.Name}).
		WithSpec(batchv1ac.CronJobSpec().
			WithSchedule(cron).
			WithTimeZone("Etc/UTC").
			WithSuspend(policy.Spec.Suspend).
			WithConcurrencyPolicy(batchv1.ForbidConcurrent).
			// A run missed by more than this (the controller was down) is skipped, not started late
			// in a burst; freshness checks report the gap.
			WithStartingDeadlineSeconds(int64(startingDeadlineFor(expectedInterval).Seconds())).
			WithSuccessfulJobsHistoryLimit(3).
			WithFailedJobsHistoryLimit(3).
			WithJobTemplate(batchv1ac.JobTemplateSpec().
				WithLabels(labels).
				WithSpec(batchv1ac.JobSpec().
					WithBackoffLimit(2).
					WithActiveDeadlineSeconds(int64(activeDeadline.Seconds())).
					WithTTLSecondsAfterFinished(int32((7 * 24 * time.Hour).Seconds())).
					WithTemplate(corev1ac.PodTemplateSpec().
						WithLabels(podLabels).
						WithSpec(agentPodSpec(agent, volumes))))))
}

// agentContainer is the agent's container in the pods of one-shot agent Jobs: its image, Pod
// Security restricted, a CPU and memory request and a memory limit.
func agentContainer(opts Options, args []string, env []*corev1ac.EnvVarApplyConfiguration, mounts []*corev1ac.VolumeMountApplyConfiguration, cpu, memory, memoryLimit string) *corev1ac.ContainerApplyConfiguration {
	return corev1ac.Container().
		WithName("agent").
		WithImage(opts.AgentImage).
		WithArgs(args...).
		WithEnv(env...).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memoryLimit)})).
		WithSecurityContext(RestrictedContainerSecurityContext()).
		WithVolumeMounts(mounts...)
}

// oneShotJobSpec runs an agent pod to the end: retried backoff times, stopped after deadline, and
// kept a week for its status and log.
func oneShotJobSpec(backoff int32, deadline time.Duration, podLabels map[string]string, pod *corev1ac.PodSpecApplyConfiguration) *batchv1ac.JobSpecApplyConfiguration {
	return batchv1ac.JobSpec().
		WithBackoffLimit(backoff).
		WithActiveDeadlineSeconds(int64(deadline.Seconds())).
		WithTTLSecondsAfterFinished(int32((7 * 24 * time.Hour).Seconds())).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(podLabels).WithSpec(pod))
}

// agentPodSpec is the pod of every agent Job (backup, verification, export): run once, no token
// for the API, no Service environment, Pod Security restricted as the agent's user.
func agentPodSpec(agent *corev1ac.ContainerApplyConfiguration, volumes []*corev1ac.VolumeApplyConfiguration) *corev1ac.PodSpecApplyConfiguration {
	return corev1ac.PodSpec().
		WithRestartPolicy(corev1.RestartPolicyNever).
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithSecurityContext(RestrictedPodSecurityContext(agentUID)).
		WithContainers(agent).
		WithVolumes(volumes...)
}

func agentMemoryLimit(component string) string {
	if component == ComponentVerify {
		// A verify agent holds a manifest and the restorer's report, each a table list;
		// PostgreSQL runs in the scratch container (VerifyCronJob).
		return "512Mi"
	}
	return "256Mi"
}

// activeDeadlineFor bounds one run: half the schedule's interval, between 1 and 12 hours, so a
// hung dump fails (and is reported as JobFailing) well before the next run is due.
func activeDeadlineFor(interval time.Duration) time.Duration {
	return min(max(interval/2, time.Hour), 12*time.Hour)
}

// startingDeadlineFor is how late a missed run may still start: a tenth of the interval, at most
// an hour.
func startingDeadlineFor(interval time.Duration) time.Duration {
	return min(max(interval/10, time.Minute), time.Hour)
}

// backupRoleScript has the database's maintenance sidecar create or update the backup role from
// the password in BACKUP_PASSWORD. psql's \getenv keeps the password off every command line.
const backupRoleScript = `\set ON_ERROR_STOP on
\getenv backup_password BACKUP_PASSWORD
SELECT 'CREATE ROLE ` + BackupRoleName + `' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '` + BackupRoleName + `') \gexec
ALTER ROLE ` + BackupRoleName + ` WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS REPLICATION PASSWORD :'backup_password';
GRANT pg_read_all_data TO ` + BackupRoleName + `;
`

// BackupRoleSQL is the psql script that creates the backup role, exported so tests run exactly
// what the database pod runs against a real PostgreSQL.
func BackupRoleSQL() string { return backupRoleScript }
