package builders

import (
	"fmt"
	"net/url"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmv1ac "github.com/cert-manager/cert-manager/pkg/client/applyconfigurations/certmanager/v1"
	cmmetaac "github.com/cert-manager/cert-manager/pkg/client/applyconfigurations/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

const (
	databasePort = 5432
	// postgresUID is the postgres user of the official images.
	postgresUID  = 999
	databaseUser = "app"
	databaseName = "app"
	dataMount    = "/var/lib/postgresql/data"
	tlsMount     = "/etc/postgresql/tls"
	configMount  = "/etc/postgresql/config"
)

// DatabaseSecret holds the database credentials. The controller creates it once with a password
// from crypto/rand and never regenerates it; the builder only shapes it.
func DatabaseSecret(t *v1alpha1.Tenant, password string) *corev1ac.SecretApplyConfiguration {
	host := fmt.Sprintf("%s.%s.svc", DatabaseName(t), NamespaceName(t))
	uri := url.URL{
		Scheme:   "postgresql",
		User:     url.UserPassword(databaseUser, password),
		Host:     fmt.Sprintf("%s:%d", host, databasePort),
		Path:     "/" + databaseName,
		RawQuery: "sslmode=verify-full",
	}
	return corev1ac.Secret(DatabaseSecretName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithType(corev1.SecretTypeOpaque).
		WithStringData(map[string]string{
			"username": databaseUser,
			"password": password,
			"database": databaseName,
			"host":     host,
			"port":     fmt.Sprint(databasePort),
			"uri":      uri.String(),
		})
}

// pgHBA allows only TLS connections with SCRAM passwords over the network; plaintext is refused.
// The local socket, used by the image's init scripts and pg_isready, stays inside the pod.
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

func databaseSelector(t *v1alpha1.Tenant) map[string]string {
	return map[string]string{LabelTenant: t.Name, LabelComponent: componentDatabase}
}

// DatabaseService is the database's client endpoint.
func DatabaseService(t *v1alpha1.Tenant) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(DatabaseName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(databaseSelector(t)).
			WithPorts(corev1ac.ServicePort().WithName("postgres").WithPort(databasePort).WithTargetPort(intstr.FromString("postgres"))))
}

// DatabaseHeadlessService governs the StatefulSet's pod DNS names.
func DatabaseHeadlessService(t *v1alpha1.Tenant) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(DatabaseHeadlessName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithSpec(corev1ac.ServiceSpec().
			WithClusterIP(corev1.ClusterIPNone).
			WithSelector(databaseSelector(t)).
			WithPorts(corev1ac.ServicePort().WithName("postgres").WithPort(databasePort).WithTargetPort(intstr.FromString("postgres"))))
}

// DatabaseDNSNames are the names clients reach the database by, for its server certificate.
func DatabaseDNSNames(t *v1alpha1.Tenant, opts Options) []string {
	svc, ns := DatabaseName(t), NamespaceName(t)
	return []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc." + opts.ClusterDomain}
}

// DatabaseCertificate is the database's server certificate, from the tenant's issuer.
func DatabaseCertificate(t *v1alpha1.Tenant, opts Options) *cmv1ac.CertificateApplyConfiguration {
	issuer := IssuerFor(t, opts)
	return cmv1ac.Certificate(DatabaseCertificateName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithSpec(cmv1ac.CertificateSpec().
			WithSecretName(DatabaseTLSSecretName(t)).
			WithCommonName(DatabaseDNSNames(t, opts)[2]).
			WithDNSNames(DatabaseDNSNames(t, opts)...).
			WithUsages(cmapi.UsageServerAuth, cmapi.UsageDigitalSignature, cmapi.UsageKeyEncipherment).
			WithPrivateKey(cmv1ac.CertificatePrivateKey().WithAlgorithm(cmapi.ECDSAKeyAlgorithm).WithSize(256).WithRotationPolicy(cmapi.RotationPolicyAlways)).
			WithSecretTemplate(cmv1ac.CertificateSecretTemplate().WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase}))).
			WithIssuerRef(cmmetaac.IssuerReference().WithName(issuer.Name).WithKind(issuer.Kind).WithGroup("cert-manager.io")))
}

// DatabaseStatefulSet runs PostgreSQL with one replica on its own volume, TLS only, under Pod
// Security restricted.
func DatabaseStatefulSet(t *v1alpha1.Tenant, opts Options) *appsv1ac.StatefulSetApplyConfiguration {
	version := t.Spec.Database.Version
	if version == "" {
		version = "17"
	}
	image := opts.PostgresImages[version]
	podLabels := labelsWith(t, map[string]string{LabelComponent: componentDatabase})
	templateLabels := labelsWith(t, map[string]string{LabelComponent: componentDatabase, LabelDatabasePod: "true"})
	secretEnv := func(name, key string) *corev1ac.EnvVarApplyConfiguration {
		return corev1ac.EnvVar().WithName(name).WithValueFrom(corev1ac.EnvVarSource().
			WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(DatabaseSecretName(t)).WithKey(key)))
	}
	isReady := corev1ac.ExecAction().WithCommand("pg_isready", "-h", "/var/run/postgresql", "-p", fmt.Sprint(databasePort), "-U", databaseUser, "-d", databaseName)
	claim := corev1ac.PersistentVolumeClaimSpec().
		WithAccessModes(corev1.ReadWriteOnce).
		WithResources(corev1ac.VolumeResourceRequirements().WithRequests(corev1.ResourceList{corev1.ResourceStorage: t.Spec.Database.Storage.Size}))
	if t.Spec.Database.Storage.StorageClassName != nil {
		claim.WithStorageClassName(*t.Spec.Database.Storage.StorageClassName)
	}
	container := corev1ac.Container().
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
		WithPorts(corev1ac.ContainerPort().WithName("postgres").WithContainerPort(databasePort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(
			secretEnv("POSTGRES_USER", "username"),
			secretEnv("POSTGRES_PASSWORD", "password"),
			secretEnv("POSTGRES_DB", "database"),
			corev1ac.EnvVar().WithName("PGDATA").WithValue(dataMount+"/pgdata"),
			corev1ac.EnvVar().WithName("POSTGRES_INITDB_ARGS").WithValue("--auth-local=scram-sha-256 --auth-host=scram-sha-256"),
		).
		WithSecurityContext(RestrictedContainerSecurityContext()).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("data").WithMountPath(dataMount),
			corev1ac.VolumeMount().WithName("tls").WithMountPath(tlsMount).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("config").WithMountPath(configMount).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("run").WithMountPath("/var/run/postgresql"),
			corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		).
		WithStartupProbe(corev1ac.Probe().WithExec(isReady).WithPeriodSeconds(5).WithFailureThreshold(60)).
		WithReadinessProbe(corev1ac.Probe().WithExec(isReady).WithPeriodSeconds(10).WithTimeoutSeconds(5)).
		WithLivenessProbe(corev1ac.Probe().WithExec(isReady).WithPeriodSeconds(20).WithTimeoutSeconds(5).WithFailureThreshold(6))
	if r := t.Spec.Database.Resources; len(r.Requests) > 0 || len(r.Limits) > 0 {
		res := corev1ac.ResourceRequirements()
		if len(r.Requests) > 0 {
			res.WithRequests(r.Requests)
		}
		if len(r.Limits) > 0 {
			res.WithLimits(r.Limits)
		}
		container.WithResources(res)
	}
	return appsv1ac.StatefulSet(DatabaseName(t), NamespaceName(t)).
		WithLabels(podLabels).
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
				WithLabels(podLabels).
				WithSpec(claim)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(templateLabels).
				WithSpec(corev1ac.PodSpec().
					WithAutomountServiceAccountToken(false).
					WithEnableServiceLinks(false).
					WithTerminationGracePeriodSeconds(60).
					WithSecurityContext(RestrictedPodSecurityContext(postgresUID)).
					WithContainers(container).
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
