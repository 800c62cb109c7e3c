package builders

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

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

// Keys of the probe role's Secrets.
const (
	// ProbeSecretKeyPassword is the probe role's password, in ProbeSecretName (operator namespace)
	// only.
	ProbeSecretKeyPassword = "password"
	// ProbeSecretKeyVerifier is the SCRAM-SHA-256 verifier of that password (ScramSHA256Verifier),
	// in both Secrets.
	ProbeSecretKeyVerifier = "verifier"
)

// ProbeSecretName holds the probe role's password and its verifier in the operator's namespace,
// which tenant users cannot read: the operator's uptime probes log in with it.
func ProbeSecretName(t *v1alpha1.Tenant) string { return "tenant-" + t.Name + "-probe" }

// DatabaseProbeSecretName holds the probe role's SCRAM verifier in the tenant namespace, for the
// database pod to set the role's password with. A tenant user can read it, and gains nothing: a
// verifier lets a server check a password, not a client log in, and the password behind it is
// random.
func DatabaseProbeSecretName(*v1alpha1.Tenant) string { return "postgres-probe-verifier" }

// ProbeSecret is the probe role's credentials for the operator. The controller generates the
// password (crypto/rand) and the verifier's salt once, and never regenerates them: a new salt
// would change the verifier and so every Secret derived from it.
func ProbeSecret(t *v1alpha1.Tenant, password, verifier string, opts Options) *corev1ac.SecretApplyConfiguration {
	opts = opts.withDefaults()
	return corev1ac.Secret(ProbeSecretName(t), opts.OperatorNamespace).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{ProbeSecretKeyPassword: []byte(password), ProbeSecretKeyVerifier: []byte(verifier)})
}

// DatabaseProbeSecret is the tenant-namespace copy of the probe role's verifier, and of nothing
// else.
func DatabaseProbeSecret(t *v1alpha1.Tenant, verifier string) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(DatabaseProbeSecretName(t), NamespaceName(t)).
		WithLabels(labelsWith(t, map[string]string{LabelComponent: componentDatabase})).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{ProbeSecretKeyVerifier: []byte(verifier)})
}

// ProbeDatabase is the database the probe role connects to: the tenant's application database,
// on which it has CONNECT.
const ProbeDatabase = databaseName

// scramIterations is PostgreSQL's default for the verifiers it makes itself.
const scramIterations = 4096

// ScramSHA256Verifier is the verifier PostgreSQL stores for password (RFC 5802, RFC 7677, in
// PostgreSQL's text form), given a salt: setting it as a role's password lets the password log in
// without the server, or anyone who reads the verifier, ever holding the password. The password
// must be ASCII printable (PostgreSQL would otherwise apply SASLprep); a hex string from
// crypto/rand is. Deterministic for a given salt, so that the Secrets holding it stay unchanged.
func ScramSHA256Verifier(password string, salt []byte) (string, error) {
	for _, c := range []byte(password) {
		if c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("scram verifier: the password must be printable ASCII")
		}
	}
	if len(salt) < 16 {
		return "", fmt.Errorf("scram verifier: a salt of %d bytes is too short, want 16", len(salt))
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("scram verifier: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(stored[:]), b64(server)), nil
}

// pgHBA allows only TLS connections with SCRAM passwords over the network; plaintext is refused.
// The superuser, postgres, has no password at all: it logs in only on the pod's own socket, by
// peer authentication as the operating system user of the same name (uid 999 in the official
// images), which is what the database's containers run as. Nothing in the tenant's namespace can
// therefore make it log in: no Secret holds a password for it, and the admission policy
// (config/policies) keeps tenant users from exec or attach into the database pod and from
// mounting its volume elsewhere. Every other role, the tenant's app among them, needs its password
// on the socket too. Replication connections are the backup role's alone: physical base backups
// and the WAL receivers (WALReceiverDeployment) stream the cluster as it, from the operator's
// namespace.
const pgHBA = `# Managed by tenant-operator.
local     all postgres           peer
local     all all                scram-sha-256
hostssl   all postgres 0.0.0.0/0 reject
hostssl   all postgres ::/0      reject
hostssl   all all 0.0.0.0/0      scram-sha-256
hostssl   all all ::/0           scram-sha-256
hostssl   replication ` + BackupRoleName + ` 0.0.0.0/0 scram-sha-256
hostssl   replication ` + BackupRoleName + ` ::/0      scram-sha-256
hostnossl all all 0.0.0.0/0      reject
hostnossl all all ::/0           reject
`

// DatabaseHBA is the database's pg_hba.conf, exported so that tests run a real PostgreSQL with it.
func DatabaseHBA() string { return pgHBA }

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

// Roles in the tenant's database. The tenant's app (databaseUser) owns the application database
// and nothing else; the operator's roles are the backup role (BackupRoleName), the probe role
// (ProbeRoleName) and the superuser postgres, which only the maintenance sidecar uses (see pgHBA).
const (
	// ProbeRoleName is the role uptime probes log in as: LOGIN, CONNECT on the application
	// database and nothing more, so that a probe needs none of the tenant's credentials.
	ProbeRoleName = "tenantops_probe"
	// formerSuperuser is the new name of the bootstrap superuser of a database initialized when
	// the tenant's app was that superuser. PostgreSQL 16 and later refuse to take superuser from
	// the bootstrap role, so it keeps it, but can no longer log in.
	formerSuperuser = "tenantops_former_superuser"
	// databaseReadyFile is where the maintenance sidecar marks the roles as set up; its readiness
	// probe reads it, so the pod (and with it the Service) is ready only once the tenant's user is
	// what it must be.
	databaseReadyFile = "/tmp/tenantops-database-ready"
)

// pgOptions sets PGOPTIONS for the superuser's sessions: a search path of the system catalogs only,
// no preload libraries, and (PostgreSQL 17 and later) no event triggers, so that nothing a former
// superuser may have left in the database (a function shadowing a built-in, a library to load, a
// login or DDL trigger) runs with the operator's privileges. psql's version is the server's: both
// come from the database image.
const pgOptions = `major="$(psql -V | sed -n 's/^[^0-9]*\([0-9][0-9]*\).*/\1/p')"
PGOPTIONS='-c search_path=pg_catalog,pg_temp -c session_preload_libraries= -c local_preload_libraries='
if [ "${major:-0}" -ge 17 ]; then PGOPTIONS="$PGOPTIONS -c event_triggers=off"; fi
export PGOPTIONS
`

// databaseSetupScript brings the roles to what they must be, idempotently, on every start of the
// maintenance sidecar: in a new database, in a database initialized by an older operator (whose
// superuser was the tenant's app), and in a retained namespace adopted again. It runs as postgres;
// where postgres cannot log in yet (the older layout), it first has the old superuser, app, create
// it (LEGACY_SUPERUSER_SQL). Passwords come from the environment through psql's \getenv, never a
// command line.
const databaseSetupScript = `set -eu
` + pgOptions + `if ! psql -qAtX -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
  printf '%s' "$LEGACY_SUPERUSER_SQL" | PGPASSWORD="$APP_PASSWORD" psql -qAtX -U ` + databaseUser + ` -d postgres -f -
fi
printf '%s' "$DATABASE_ROLES_SQL" | psql -qAtX -U postgres -f -
printf '%s' "$BACKUP_ROLE_SQL" | psql -qAtX -U postgres -f -
printf '%s' "$WAL_SLOTS_SQL" | psql -qAtX -U postgres -d postgres -v slots="${WAL_ARCHIVE_SLOTS:-}" -f -
`

// walSlotsSQL runs as postgres on every start of the maintenance sidecar: it creates the
// replication slot of each WAL receiver in WAL_ARCHIVE_SLOTS (space-separated), and drops the
// operator's slots no receiver uses any more. A slot makes the server keep every WAL segment
// until its receiver has stored it, from the moment the slot exists: a receiver that starts late,
// restarts or cannot reach storage loses nothing. An abandoned slot would keep WAL forever and
// fill the volume, hence the drop; a slot still in use (active) is left for the next start.
const walSlotsSQL = `\set ON_ERROR_STOP on
SET search_path = pg_catalog, pg_temp;
SELECT pg_create_physical_replication_slot(s, true) FROM unnest(string_to_array(:'slots', ' ')) AS s
  WHERE s <> '' AND NOT EXISTS (SELECT FROM pg_replication_slots r WHERE r.slot_name = s);
SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
  WHERE starts_with(slot_name, '` + walSlotPrefix + `') AND slot_type = 'physical' AND NOT active
    AND NOT (slot_name = ANY (string_to_array(:'slots', ' ')));
`

// WALSlotsSQL is what the maintenance sidecar runs for the WAL receivers' slots, exported so that
// tests run exactly that against a real PostgreSQL.
func WALSlotsSQL() string { return walSlotsSQL }

// legacySuperuserSQL runs as the tenant's app in a database where app is still the superuser (an
// older operator's layout): it creates the superuser postgres, which logs in by peer only, and
// resets what ALTER SYSTEM set, where a superuser tenant could have left a library to preload or a
// command for the server to run. Anywhere else it does nothing.
const legacySuperuserSQL = `\set ON_ERROR_STOP on
SET search_path = pg_catalog, pg_temp;
SELECT rolsuper AS legacy FROM pg_roles WHERE rolname = current_user \gset
\if :legacy
SELECT 'CREATE ROLE postgres' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'postgres') \gexec
ALTER ROLE postgres WITH SUPERUSER LOGIN PASSWORD NULL;
ALTER SYSTEM RESET ALL;
SELECT pg_reload_conf();
\endif
`

// databaseRolesSQL runs as postgres in the application database. In order:
//   - every event trigger is disabled, before any command here could fire one: app cannot create
//     them, so any there is a former superuser's;
//   - the former bootstrap superuser (an older layout's app) is renamed, loses its login and
//     password;
//   - app is created or updated: LOGIN, no superuser, no CREATEROLE, CREATEDB, REPLICATION or
//     BYPASSRLS, its password from APP_PASSWORD, a member of no role;
//   - the probe role gets LOGIN with the SCRAM verifier in PROBE_PASSWORD_VERIFIER (never a
//     password: the tenant can read that Secret, and a verifier does not log in), or no login
//     while there is none;
//   - no other role keeps a dangerous attribute, and no role but the operator's is a member of a
//     predefined role (pg_read_server_files, pg_execute_server_program, ...), of a superuser or of
//     the operator's roles; the backup role keeps pg_read_all_data;
//   - app owns the database; nobody else may create in schema public, which belongs to the
//     database owner;
//   - whatever a superuser owns in the database (an older layout's tables, functions, types...),
//     except extension members, passes to app, committing every 1000 objects.
//
// search_path: app keeps the default "$user", public. The only roles that could plant objects in
// those schemas for app to pick up are superusers (CREATE on public is the owner's alone), and the
// operator's own sessions that touch the tenant's objects (this script, pg_dump, the count of a
// backup) pin their search path to the system catalogs.
const databaseRolesSQL = `\set ON_ERROR_STOP on
\getenv app_password APP_PASSWORD
\getenv probe_verifier PROBE_PASSWORD_VERIFIER
SET search_path = pg_catalog, pg_temp;
SET default_transaction_read_only = off;
SELECT format('ALTER EVENT TRIGGER %I DISABLE', evtname) FROM pg_event_trigger WHERE evtenabled <> 'D' \gexec
BEGIN;
SELECT format('ALTER ROLE %I RENAME TO ` + formerSuperuser + `', rolname) FROM pg_roles
  WHERE oid = 10 AND rolname NOT IN ('postgres', '` + formerSuperuser + `') \gexec
SELECT format('ALTER ROLE %I WITH NOLOGIN PASSWORD NULL', rolname) FROM pg_roles WHERE oid = 10 AND rolname <> 'postgres' \gexec
ALTER ROLE postgres WITH SUPERUSER LOGIN PASSWORD NULL;
SELECT 'CREATE ROLE ` + databaseUser + `' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '` + databaseUser + `') \gexec
ALTER ROLE ` + databaseUser + ` WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD :'app_password';
SELECT 'CREATE ROLE ` + ProbeRoleName + `' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '` + ProbeRoleName + `') \gexec
ALTER ROLE ` + ProbeRoleName + ` WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT CONNECTION LIMIT 3;
ALTER ROLE ` + ProbeRoleName + ` SET default_transaction_read_only = on;
ALTER ROLE ` + ProbeRoleName + ` SET statement_timeout = '5s';
\if :{?probe_verifier}
SELECT :'probe_verifier' ~ '^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$' AS probe_verifier_ok \gset
\if :probe_verifier_ok
ALTER ROLE ` + ProbeRoleName + ` WITH LOGIN PASSWORD :'probe_verifier';
\endif
\endif
GRANT CONNECT ON DATABASE :"DBNAME" TO ` + ProbeRoleName + `;
SELECT format('ALTER ROLE %I WITH NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS', rolname) FROM pg_roles
  WHERE oid <> 10 AND rolname NOT IN ('postgres', '` + BackupRoleName + `') AND rolname !~ '^pg_'
    AND (rolsuper OR rolcreaterole OR rolreplication OR rolbypassrls) \gexec
SELECT format('REVOKE %I FROM %I%s CASCADE', g.rolname, m.rolname,
    CASE WHEN current_setting('server_version_num')::int >= 160000 THEN format(' GRANTED BY %I', gr.rolname) ELSE '' END)
  FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
    LEFT JOIN pg_roles gr ON gr.oid = a.grantor
  WHERE m.oid <> 10 AND m.rolname <> 'postgres'
    AND (g.rolname ~ '^pg_' OR g.rolsuper OR g.rolname IN ('` + BackupRoleName + `', '` + ProbeRoleName + `'))
    AND NOT (m.rolname = '` + BackupRoleName + `' AND g.rolname = 'pg_read_all_data') \gexec
SELECT format('REVOKE %I FROM ` + databaseUser + `%s CASCADE', g.rolname,
    CASE WHEN current_setting('server_version_num')::int >= 160000 THEN format(' GRANTED BY %I', gr.rolname) ELSE '' END)
  FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid LEFT JOIN pg_roles gr ON gr.oid = a.grantor
  WHERE a.member = '` + databaseUser + `'::regrole \gexec
ALTER DATABASE :"DBNAME" OWNER TO ` + databaseUser + `;
ALTER SCHEMA public OWNER TO pg_database_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
COMMIT;
DO $reown$
DECLARE
  supers oid[] := ARRAY(SELECT oid FROM pg_roles WHERE rolsuper);
  cmd text;
  n int := 0;
BEGIN
  FOR cmd IN
    SELECT format('ALTER SCHEMA %I OWNER TO ` + databaseUser + `', o.nspname) FROM pg_namespace o
      WHERE o.oid >= 16384 AND o.nspowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER %s %s OWNER TO ` + databaseUser + `', CASE o.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
        WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, o.oid::regclass) FROM pg_class o
      WHERE o.oid >= 16384 AND o.relowner = ANY (supers) AND o.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = o.oid
          AND (d.deptype = 'e' OR (o.relkind = 'S' AND d.deptype IN ('a', 'i'))))
    UNION ALL
    SELECT format('ALTER ROUTINE %s OWNER TO ` + databaseUser + `', o.oid::regprocedure) FROM pg_proc o
      WHERE o.oid >= 16384 AND o.proowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER %s %s OWNER TO ` + databaseUser + `', CASE o.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, o.oid::regtype) FROM pg_type o
      WHERE o.oid >= 16384 AND o.typowner = ANY (supers) AND o.typtype IN ('b', 'c', 'd', 'e', 'r')
        AND (o.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = o.typrelid) = 'c')
        AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = o.oid)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER OPERATOR %s OWNER TO ` + databaseUser + `', o.oid::regoperator) FROM pg_operator o
      WHERE o.oid >= 16384 AND o.oprowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_operator'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER OPERATOR FAMILY %I.%I USING %I OWNER TO ` + databaseUser + `', n.nspname, o.opfname, am.amname)
      FROM pg_opfamily o JOIN pg_namespace n ON n.oid = o.opfnamespace JOIN pg_am am ON am.oid = o.opfmethod
      WHERE o.oid >= 16384 AND o.opfowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_opfamily'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER OPERATOR CLASS %I.%I USING %I OWNER TO ` + databaseUser + `', n.nspname, o.opcname, am.amname)
      FROM pg_opclass o JOIN pg_namespace n ON n.oid = o.opcnamespace JOIN pg_am am ON am.oid = o.opcmethod
      WHERE o.oid >= 16384 AND o.opcowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_opclass'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER COLLATION %I.%I OWNER TO ` + databaseUser + `', n.nspname, o.collname)
      FROM pg_collation o JOIN pg_namespace n ON n.oid = o.collnamespace
      WHERE o.oid >= 16384 AND o.collowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_collation'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER CONVERSION %I.%I OWNER TO ` + databaseUser + `', n.nspname, o.conname)
      FROM pg_conversion o JOIN pg_namespace n ON n.oid = o.connamespace
      WHERE o.oid >= 16384 AND o.conowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_conversion'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER TEXT SEARCH DICTIONARY %I.%I OWNER TO ` + databaseUser + `', n.nspname, o.dictname)
      FROM pg_ts_dict o JOIN pg_namespace n ON n.oid = o.dictnamespace
      WHERE o.oid >= 16384 AND o.dictowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_ts_dict'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER TEXT SEARCH CONFIGURATION %I.%I OWNER TO ` + databaseUser + `', n.nspname, o.cfgname)
      FROM pg_ts_config o JOIN pg_namespace n ON n.oid = o.cfgnamespace
      WHERE o.oid >= 16384 AND o.cfgowner = ANY (supers)
        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_ts_config'::regclass AND d.objid = o.oid AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER STATISTICS %I.%I OWNER TO ` + databaseUser + `', n.nspname, o.stxname)
      FROM pg_statistic_ext o JOIN pg_namespace n ON n.oid = o.stxnamespace
      WHERE o.stxowner = ANY (supers)
    UNION ALL
    SELECT format('ALTER LARGE OBJECT %s OWNER TO ` + databaseUser + `', o.oid) FROM pg_largeobject_metadata o
      WHERE o.lomowner = ANY (supers)
  LOOP
    BEGIN
      EXECUTE cmd;
    EXCEPTION WHEN others THEN
      RAISE WARNING 'tenant-operator: % failed: %', cmd, SQLERRM;
    END;
    n := n + 1;
    IF n % 1000 = 0 THEN
      COMMIT;
    END IF;
  END LOOP;
END
$reown$;
`

// maintenanceScript runs beside PostgreSQL. It brings the roles to what they must be
// (DATABASE_SETUP, databaseSetupScript) until that succeeds, then marks the pod ready. And it has
// PostgreSQL reload its configuration whenever the mounted certificate, key or pg_hba.conf
// changes: PostgreSQL reads them only at start and on reload, and would otherwise serve the old
// certificate until it expires. Sleeping in the background keeps SIGTERM prompt: a shell running as
// PID 1 would otherwise ignore it until the grace period ends.
const maintenanceScript = `trap 'exit 0' TERM INT
` + pgOptions + `seen=""
ready=""
while :; do
  if [ -z "$ready" ] && sh -c "$DATABASE_SETUP"; then
    ready="yes"
    : > ` + databaseReadyFile + `
  fi
  now="$(cat ` + tlsMount + `/tls.crt ` + tlsMount + `/tls.key ` + configMount + `/pg_hba.conf 2>/dev/null | md5sum)"
  if [ -n "$ready" ] && [ "$now" != "$seen" ] && psql -qAtX -U postgres -d postgres -c 'SELECT pg_reload_conf()' >/dev/null; then
    seen="$now"
  fi
  if [ -n "$ready" ]; then sleep 60 & else sleep 5 & fi
  wait $!
done
`

// DatabaseSetupScript, DatabaseRolesSQL and LegacySuperuserSQL are what the maintenance sidecar
// runs, exported so that tests run exactly that against a real PostgreSQL.
func DatabaseSetupScript() string { return databaseSetupScript }

// DatabaseRolesSQL: see databaseRolesSQL.
func DatabaseRolesSQL() string { return databaseRolesSQL }

// LegacySuperuserSQL: see legacySuperuserSQL.
func LegacySuperuserSQL() string { return legacySuperuserSQL }

// DatabaseStatefulSet runs PostgreSQL with one replica on its own volume, TLS only, under Pod
// Security restricted, with no service account token.
func DatabaseStatefulSet(t *v1alpha1.Tenant, opts Options) *appsv1ac.StatefulSetApplyConfiguration {
	return DatabaseStatefulSetArchiving(t, WALArchive{}, opts)
}

// DatabaseStatefulSetArchiving is DatabaseStatefulSet for a tenant whose WAL streams to
// receivers (WALArchiveOf its BackupPolicy). Turning archiving on or off restarts the database,
// as archive_mode can only change at a start.
func DatabaseStatefulSetArchiving(t *v1alpha1.Tenant, archive WALArchive, opts Options) *appsv1ac.StatefulSetApplyConfiguration {
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
		WithArgs(archive.serverArgs(t)...).
		WithPorts(corev1ac.ContainerPort().WithName(postgresPort).WithContainerPort(DatabasePort).WithProtocol(corev1.ProtocolTCP)).
		// The image's superuser is postgres (POSTGRES_USER unset), not the tenant's app: the
		// maintenance sidecar creates app (databaseSetupScript). The image insists on a superuser
		// password when it initializes a database; it reads POSTGRES_PASSWORD_FILE, and the
		// kernel's random UUID gives it one that is stored nowhere, which the setup then removes:
		// postgres logs in by peer only (pgHBA).
		WithEnv(
			secretEnv("POSTGRES_DB", SecretKeyDatabase),
			corev1ac.EnvVar().WithName("POSTGRES_PASSWORD_FILE").WithValue("/proc/sys/kernel/random/uuid"),
			corev1ac.EnvVar().WithName("PGDATA").WithValue(pgData),
			// Only for the pg_hba.conf initdb leaves in the data directory, which the server
			// never reads (hba_file above).
			corev1ac.EnvVar().WithName("POSTGRES_INITDB_ARGS").WithValue("--auth-local=peer --auth-host=scram-sha-256"),
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
		// postgres by peer on the socket; the passwords are those the roles get, and the probe's
		// is only its SCRAM verifier. The probe's Secret is optional, so that a database whose
		// operator has not made one yet still starts (its probe role then cannot log in).
		WithEnv(
			corev1ac.EnvVar().WithName("PGHOST").WithValue(socketDir),
			corev1ac.EnvVar().WithName("PGPORT").WithValue(strconv.Itoa(DatabasePort)),
			corev1ac.EnvVar().WithName("PGUSER").WithValue("postgres"),
			secretEnv("PGDATABASE", SecretKeyDatabase),
			secretEnv("APP_PASSWORD", SecretKeyPassword),
			corev1ac.EnvVar().WithName("BACKUP_PASSWORD").WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(DatabaseBackupSecretName(t)).WithKey(BackupSecretKeyPassword))),
			corev1ac.EnvVar().WithName("PROBE_PASSWORD_VERIFIER").WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(DatabaseProbeSecretName(t)).WithKey(ProbeSecretKeyVerifier).WithOptional(true))),
			corev1ac.EnvVar().WithName("DATABASE_SETUP").WithValue(databaseSetupScript),
			corev1ac.EnvVar().WithName("LEGACY_SUPERUSER_SQL").WithValue(legacySuperuserSQL),
			corev1ac.EnvVar().WithName("DATABASE_ROLES_SQL").WithValue(databaseRolesSQL),
			corev1ac.EnvVar().WithName("BACKUP_ROLE_SQL").WithValue(backupRoleScript),
			corev1ac.EnvVar().WithName("WAL_SLOTS_SQL").WithValue(walSlotsSQL),
			corev1ac.EnvVar().WithName("WAL_ARCHIVE_SLOTS").WithValue(strings.Join(archive.Slots, " ")),
		).
		WithReadinessProbe(corev1ac.Probe().WithExec(corev1ac.ExecAction().WithCommand("test", "-f", databaseReadyFile)).
			WithPeriodSeconds(5).WithTimeoutSeconds(5)).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}).
			WithLimits(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")})).
		WithSecurityContext(RestrictedContainerSecurityContext()).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("tls").WithMountPath(tlsMount).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("config").WithMountPath(configMount).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("run").WithMountPath(socketDir),
			corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		)
	sts := appsv1ac.StatefulSet(DatabaseName(t), NamespaceName(t)).
		WithLabels(labels)
	if a := archive.annotations(); a != nil {
		sts.WithAnnotations(a)
	}
	return sts.
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
