package builders

import (
	"strconv"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmv1ac "github.com/cert-manager/cert-manager/pkg/client/applyconfigurations/certmanager/v1"
	cmmetaac "github.com/cert-manager/cert-manager/pkg/client/applyconfigurations/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

const (
	// postgresUID is the postgres user and group of the official images (Debian and Alpine).
	postgresUID  = 999
	databaseUser = "app"
	databaseName = "app"
	dataMount    = "/var/lib/postgresql/data"
	// pgData is a subdirectory of the volume: a fresh volume's root may hold lost+found, which
	// initdb refuses. Setting PGDATA also keeps the 18+ images' default-layout check from firing
	// on a volume mounted at the pre-18 path, so one layout serves every version.
	pgData       = dataMount + "/pgdata"
	socketDir    = "/var/run/postgresql"
	tlsMount     = "/etc/postgresql/tls"
	configMount  = "/etc/postgresql/config"
	postgresPort = "postgres"
	// maintenanceName is the sidecar that runs maintenanceScript.
	maintenanceName = "maintenance"
)

// DatabaseSecret holds the database credentials. The controller creates it once with a password
// from crypto/rand and never regenerates it; the builder only shapes it. The values are bytes
// (data, not stringData): stringData is write-only, so server-side apply could never see it
// unchanged.
func DatabaseSecret(t *v1alpha1.Tenant, password string) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(DatabaseSecretName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{
			SecretKeyUsername:    []byte(databaseUser),
			SecretKeyPassword:    []byte(password),
			SecretKeyDatabase:    []byte(databaseName),
			SecretKeyHost:        []byte(DatabaseHost(t)),
			SecretKeyPort:        []byte(strconv.Itoa(DatabasePort)),
			SecretKeySSLMode:     []byte("verify-full"),
			SecretKeySSLRootCert: []byte(DatabaseCAMountPath),
			SecretKeyURI:         []byte(DatabaseURIFor(t, databaseUser, password, databaseName)),
		})
}

// pgHBA allows only TLS connections with SCRAM passwords over the network; plaintext is refused.
// The local socket, used by the image's init scripts, pg_isready and the maintenance sidecar,
// stays inside the pod and still needs the password.
const pgHBA = `# Managed by tenant-operator.
local     all all                scram-sha-256
hostssl   all all 0.0.0.0/0      scram-sha-256
hostssl   all all ::/0           scram-sha-256
hostnossl all all 0.0.0.0/0      reject
hostnossl all all ::/0           reject
`

// DatabaseConfigMap holds pg_hba.conf.
func DatabaseConfigMap(t *v1alpha1.Tenant) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(DatabaseConfigName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithData(map[string]string{"pg_hba.conf": pgHBA})
}

// DatabaseCAConfigMap carries the CA certificate of the database (the ca.crt cert-manager wrote
// to DatabaseTLSSecretName) for clients to mount at DatabaseCAMountPath, so that verifying the
// server does not mean mounting the Secret that also holds its private key.
func DatabaseCAConfigMap(t *v1alpha1.Tenant, caPEM string) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(DatabaseCAConfigMapName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithData(map[string]string{DatabaseCAKey: caPEM})
}

func databaseSelector(t *v1alpha1.Tenant) map[string]string {
	return map[string]string{LabelTenant: t.Name, LabelComponent: componentDatabase}
}

func databaseServicePort() *corev1ac.ServicePortApplyConfiguration {
	return corev1ac.ServicePort().WithName(postgresPort).WithProtocol(corev1.ProtocolTCP).
		WithPort(DatabasePort).WithTargetPort(intstr.FromString(postgresPort))
}

// DatabaseService is the database's client endpoint.
func DatabaseService(t *v1alpha1.Tenant) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(DatabaseName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(databaseSelector(t)).
			WithPorts(databaseServicePort()))
}

// DatabaseHeadlessService governs the StatefulSet's pod DNS names.
func DatabaseHeadlessService(t *v1alpha1.Tenant) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(DatabaseHeadlessName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithSpec(corev1ac.ServiceSpec().
			WithClusterIP(corev1.ClusterIPNone).
			WithSelector(databaseSelector(t)).
			WithPorts(databaseServicePort()))
}

// DatabaseDNSNames are the names clients reach the database by, for its server certificate.
func DatabaseDNSNames(t *v1alpha1.Tenant, opts Options) []string {
	opts = opts.withDefaults()
	svc, ns := DatabaseName(t), NamespaceName(t)
	return []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc." + opts.ClusterDomain}
}

// DatabaseCertificate is the database's server certificate, from DatabaseIssuerFor. It has no
// common name: clients verify the DNS names, and a common name is limited to 64 characters,
// which postgres.tenant-<56 characters>.svc exceeds.
func DatabaseCertificate(t *v1alpha1.Tenant, opts Options) *cmv1ac.CertificateApplyConfiguration {
	issuer := DatabaseIssuerFor(t, opts)
	labels := labelsWith(t, map[string]string{LabelComponent: componentDatabase})
	return cmv1ac.Certificate(DatabaseCertificateName(t), NamespaceName(t)).
		WithLabels(labels).
		WithSpec(cmv1ac.CertificateSpec().
			WithSecretName(DatabaseTLSSecretName(t)).
			WithDNSNames(DatabaseDNSNames(t, opts)...).
			WithUsages(cmapi.UsageServerAuth, cmapi.UsageDigitalSignature).
			WithPrivateKey(ecdsaKey()).
			WithSecretTemplate(cmv1ac.CertificateSecretTemplate().WithLabels(labels)).
			WithIssuerRef(cmmetaac.IssuerReference().WithName(issuer.Name).WithKind(issuer.Kind).WithGroup(cmapi.SchemeGroupVersion.Group)))
}

// ecdsaKey is a P-256 key, replaced at each renewal so a leaked key expires with its certificate.
func ecdsaKey() *cmv1ac.CertificatePrivateKeyApplyConfiguration {
	return cmv1ac.CertificatePrivateKey().WithAlgorithm(cmapi.ECDSAKeyAlgorithm).WithSize(256).WithRotationPolicy(cmapi.RotationPolicyAlways)
}

// DatabaseVersion is the tenant's PostgreSQL major version, DefaultDatabaseVersion when unset.
func DatabaseVersion(t *v1alpha1.Tenant) string {
	if t.Spec.Database.Version == "" {
		return DefaultDatabaseVersion
	}
	return t.Spec.Database.Version
}

// DatabaseImage is the image of the tenant's PostgreSQL version: from Options.PostgresImages,
// else DefaultOptions', else the official image tagged with the major version.
func DatabaseImage(t *v1alpha1.Tenant, opts Options) string {
	version := DatabaseVersion(t)
	if image := opts.withDefaults().PostgresImages[version]; image != "" {
		return image
	}
	return "docker.io/library/postgres:" + version
}

// Resources of the database container where spec.database.resources names none.
var (
	defaultDatabaseRequests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")}
	defaultDatabaseLimits   = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
)

// DatabaseResources are the database container's requests and limits: spec.database.resources
// over defaults (requests cpu 250m, memory 512Mi; limits cpu 1, memory 1Gi), per resource. Both
// are always set, so the pod fits a quota on requests and limits without relying on the
// LimitRange. Where the spec sets only one side, the other follows so that request <= limit.
func DatabaseResources(t *v1alpha1.Tenant) corev1.ResourceRequirements {
	spec := t.Spec.Database.Resources
	requests, limits := defaultDatabaseRequests.DeepCopy(), defaultDatabaseLimits.DeepCopy()
	for name, q := range spec.Requests {
		requests[name] = q.DeepCopy()
	}
	for name, q := range spec.Limits {
		limits[name] = q.DeepCopy()
	}
	for name, req := range requests {
		limit, ok := limits[name]
		if !ok || req.Cmp(limit) <= 0 {
			continue
		}
		if _, userLimit := spec.Limits[name]; userLimit {
			if _, userRequest := spec.Requests[name]; !userRequest {
				requests[name] = limit.DeepCopy()
				continue
			}
		}
		limits[name] = req.DeepCopy()
	}
	return corev1.ResourceRequirements{Requests: requests, Limits: limits}
}

// maintenanceScript runs beside PostgreSQL. It has PostgreSQL reload its configuration, and with
// it the certificate, whenever the mounted certificate or key changes: PostgreSQL reads them only
// at start and on reload, and would otherwise serve the old certificate until it expires. And it
// creates the backup role (BACKUP_ROLE_SQL) once the server answers, also in a database initialized
// before backups existed, where the image's init scripts will never run again. Sleeping in the
// background keeps SIGTERM prompt: a shell running as PID 1 would otherwise ignore it until the
// grace period ends.
const maintenanceScript = `trap 'exit 0' TERM INT
seen=""
role=""
while :; do
  now="$(cat ` + tlsMount + `/tls.crt ` + tlsMount + `/tls.key 2>/dev/null | md5sum)"
  if [ "$now" != "$seen" ] && psql -qAtX -c 'SELECT pg_reload_conf()' >/dev/null; then
    seen="$now"
  fi
  if [ -z "$role" ] && printf '%s' "$BACKUP_ROLE_SQL" | psql -qAtX -f - >/dev/null; then
    role="created"
  fi
  if [ -n "$role" ]; then sleep 60 & else sleep 5 & fi
  wait $!
done
`

// DatabaseStatefulSet runs PostgreSQL with one replica on its own volume, TLS only, under Pod
// Security restricted, with no service account token.
func DatabaseStatefulSet(t *v1alpha1.Tenant, opts Options) *appsv1ac.StatefulSetApplyConfiguration {
	image := DatabaseImage(t, opts)
	labels := labelsWith(t, map[string]string{LabelComponent: componentDatabase})
	templateLabels := labelsWith(t, map[string]string{LabelComponent: componentDatabase, LabelDatabasePod: "true"})
	secretEnv := func(name, key string) *corev1ac.EnvVarApplyConfiguration {
		return corev1ac.EnvVar().WithName(name).WithValueFrom(corev1ac.EnvVarSource().
			WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(DatabaseSecretName(t)).WithKey(key)))
	}
	isReady := func() *corev1ac.ExecActionApplyConfiguration {
		return corev1ac.ExecAction().WithCommand("pg_isready", "-h", socketDir, "-p", strconv.Itoa(DatabasePort), "-U", databaseUser, "-d", databaseName)
	}
	claim := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: t.Spec.Database.Storage.Size.DeepCopy()}))
	if t.Spec.Database.Storage.StorageClassName != nil {
		claim.WithStorageClassName(*t.Spec.Database.Storage.StorageClassName)
	}
	res := DatabaseResources(t)
	postgres := corev1ac.Container().
		WithName("postgres").
		WithImage(image).
		WithArgs(
			"-c", "ssl=on",
			"-c", "ssl_cert_file="+tlsMount+"/tls.crt",
			"-c", "ssl_key_file="+tlsMount+"/tls.key",
			"-c", "ssl_min_protocol_version=TLSv1.2",
			"-c", "hba_file="+configMount+"/pg_hba.conf",
			"-c", "password_encryption=scram-sha-256",
		).
		WithPorts(corev1ac.ContainerPort().WithName(postgresPort).WithContainerPort(DatabasePort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(
			secretEnv("POSTGRES_USER", SecretKeyUsername),
			secretEnv("POSTGRES_PASSWORD", SecretKeyPassword),
			secretEnv("POSTGRES_DB", SecretKeyDatabase),
			corev1ac.EnvVar().WithName("PGDATA").WithValue(pgData),
			corev1ac.EnvVar().WithName("POSTGRES_INITDB_ARGS").WithValue("--auth-local=scram-sha-256 --auth-host=scram-sha-256"),
		).
		WithResources(corev1ac.ResourceRequirements().WithRequests(res.Requests).WithLimits(res.Limits)).
		WithSecurityContext(RestrictedContainerSecurityContext()).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("data").WithMountPath(dataMount),
			corev1ac.VolumeMount().WithName("tls").WithMountPath(tlsMount).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("config").WithMountPath(configMount).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("run").WithMountPath(socketDir),
			corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		).
		// Up to 10 minutes to start: initdb on a slow volume, or crash recovery of a large one.
		WithStartupProbe(corev1ac.Probe().WithExec(isReady()).WithPeriodSeconds(5).WithTimeoutSeconds(5).WithFailureThreshold(120)).
		WithReadinessProbe(corev1ac.Probe().WithExec(isReady()).WithPeriodSeconds(10).WithTimeoutSeconds(5)).
		WithLivenessProbe(corev1ac.Probe().WithExec(isReady()).WithPeriodSeconds(20).WithTimeoutSeconds(5).WithFailureThreshold(6))
	maintenance := corev1ac.Container().
		WithName(maintenanceName).
		WithImage(image).
		WithCommand("/bin/sh", "-c", maintenanceScript).
		WithEnv(
			corev1ac.EnvVar().WithName("PGHOST").WithValue(socketDir),
			corev1ac.EnvVar().WithName("PGPORT").WithValue(strconv.Itoa(DatabasePort)),
			secretEnv("PGUSER", SecretKeyUsername),
			secretEnv("PGPASSWORD", SecretKeyPassword),
			secretEnv("PGDATABASE", SecretKeyDatabase),
			corev1ac.EnvVar().WithName("BACKUP_PASSWORD").WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(DatabaseBackupSecretName(t)).WithKey(BackupSecretKeyPassword))),
			corev1ac.EnvVar().WithName("BACKUP_ROLE_SQL").WithValue(backupRoleScript),
		).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")})).
		WithSecurityContext(RestrictedContainerSecurityContext()).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("tls").WithMountPath(tlsMount).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("run").WithMountPath(socketDir),
			corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		)
	return appsv1ac.StatefulSet(DatabaseName(t), NamespaceName(t)).
		WithLabels(labels).
		WithSpec(appsv1ac.StatefulSetSpec().
			WithReplicas(1).
			WithServiceName(DatabaseHeadlessName(t)).
			WithPodManagementPolicy(appsv1.OrderedReadyPodManagement).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(databaseSelector(t))).
			// The volume outlives the StatefulSet: deleting the Tenant never deletes data unless
			// its deletion policy deletes the namespace.
			WithPersistentVolumeClaimRetentionPolicy(appsv1ac.StatefulSetPersistentVolumeClaimRetentionPolicy().
				WithWhenDeleted(appsv1.RetainPersistentVolumeClaimRetentionPolicyType).
				WithWhenScaled(appsv1.RetainPersistentVolumeClaimRetentionPolicyType)).
			WithVolumeClaimTemplates(corev1ac.PersistentVolumeClaim("data", "").
				WithLabels(labels).
				WithSpec(claim)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(templateLabels).
				WithAnnotations(map[string]string{"kubectl.kubernetes.io/default-container": "postgres"}).
				WithSpec(corev1ac.PodSpec().
					WithAutomountServiceAccountToken(false).
					WithEnableServiceLinks(false).
					WithTerminationGracePeriodSeconds(60).
					// OnRootMismatch: a large volume is not walked again on every restart.
					WithSecurityContext(RestrictedPodSecurityContext(postgresUID).
						WithFSGroupChangePolicy(corev1.FSGroupChangeOnRootMismatch)).
					WithContainers(postgres, maintenance).
					WithVolumes(
						// 0640 and root-owned with the fsGroup: PostgreSQL accepts a key it can
						// read through its group when root owns it.
						corev1ac.Volume().WithName("tls").WithSecret(corev1ac.SecretVolumeSource().
							WithSecretName(DatabaseTLSSecretName(t)).WithDefaultMode(0o640)),
						corev1ac.Volume().WithName("config").WithConfigMap(corev1ac.ConfigMapVolumeSource().
							WithName(DatabaseConfigName(t))),
						corev1ac.Volume().WithName("run").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
						corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
					))))
}
