package webhook_test

import (
	"fmt"
	"strings"
)

type badManifest struct {
	name     string
	manifest string
	want     string // a part of the API server's message that names the field
}

// tenantWithSpec is a Tenant manifest with the given spec, indented under spec:.
func tenantWithSpec(name, spec string) string {
	return fmt.Sprintf("apiVersion: tenancy.tenantops.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: %s\nspec:\n%s", name, indent(spec))
}

// validTenant is the smallest valid Tenant plus extra spec fields.
func validTenant(name, extra string) string {
	return tenantWithSpec(name, "hostnames: [app.example.com]\ndatabase:\n  storage:\n    size: 1Gi\n"+extra)
}

func backupPolicy(spec string) string {
	return "apiVersion: tenancy.tenantops.io/v1alpha1\nkind: BackupPolicy\nmetadata:\n  name: bad\nspec:\n" + indent(spec)
}

// validBackupSpec is a valid BackupPolicy spec with placeholders for one schedule's fields.
func backupSpec(schedule, storage, extra string) string {
	return "schedules:\n- name: hot\n  schedule: \"" + schedule + "\"\n  storage:\n" + indentBy(storage, "    ") +
		"encryption:\n  recipients: [" + demoRecipient + "]\n" + extra
}

const (
	demoRecipient = "age1qmplsxqs2smjrp0kagrvhmyzwtk0ry2v2el6zpnefqampxq6gqnqkv08lz"
	s3Storage     = "s3:\n  endpoint: s3.example.com\n  bucket: backups\n  region: eu-west-1\n  credentialsSecretRef: {name: creds}\n"
)

func retentionPolicy(spec string) string {
	return "apiVersion: tenancy.tenantops.io/v1alpha1\nkind: RetentionPolicy\nmetadata:\n  name: bad\nspec:\n" + indent(spec)
}

func indent(s string) string { return indentBy(s, "  ") }

func indentBy(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

var badManifests = []badManifest{
	// Tenant: names and hostnames.
	{"tenant name too long for its namespace", validTenant(strings.Repeat("a", 57), ""), "metadata.name must be at most 56 characters"},
	{"tenant name with a dot", validTenant("acme.corp", ""), "metadata.name must be a DNS label"},
	{"no hostnames", tenantWithSpec("t1", "hostnames: []\ndatabase:\n  storage:\n    size: 1Gi\n"), "spec.hostnames"},
	{"hostnames missing", tenantWithSpec("t2", "database:\n  storage:\n    size: 1Gi\n"), "spec.hostnames: Required value"},
	{"eleven hostnames", tenantWithSpec("t3", "hostnames: [a.example.com, b.example.com, c.example.com, d.example.com, e.example.com, f.example.com, g.example.com, h.example.com, i.example.com, j.example.com, k.example.com]\ndatabase:\n  storage:\n    size: 1Gi\n"), "spec.hostnames: Too many"},
	{"duplicate hostname", tenantWithSpec("t4", "hostnames: [app.example.com, app.example.com]\ndatabase:\n  storage:\n    size: 1Gi\n"), "spec.hostnames[1]: Duplicate value"},
	{"hostname with uppercase", tenantWithSpec("t5", "hostnames: [App.Example.com]\ndatabase:\n  storage:\n    size: 1Gi\n"), "spec.hostnames[0]"},
	{"hostname without a domain", tenantWithSpec("t6", "hostnames: [localhost]\ndatabase:\n  storage:\n    size: 1Gi\n"), "spec.hostnames[0]"},
	{"hostname with a scheme", tenantWithSpec("t7", "hostnames: [\"https://app.example.com\"]\ndatabase:\n  storage:\n    size: 1Gi\n"), "spec.hostnames[0]"},
	// Tenant: database.
	{"database missing", tenantWithSpec("t8", "hostnames: [app.example.com]\n"), "spec.database: Required value"},
	{"database size missing", tenantWithSpec("t9", "hostnames: [app.example.com]\ndatabase:\n  storage: {}\n"), "spec.database.storage.size: Required value"},
	{"database version 14", strings.Replace(validTenant("t10", ""), "database:\n", "database:\n    version: \"14\"\n", 1), "spec.database.version: Unsupported value: \"14\""},
	{"database size zero", tenantWithSpec("t11", "hostnames: [app.example.com]\ndatabase:\n  storage:\n    size: \"0\"\n"), "spec.database.storage.size must be greater than zero"},
	{"database size not a quantity", tenantWithSpec("t12", "hostnames: [app.example.com]\ndatabase:\n  storage:\n    size: lots\n"), "spec.database.storage.size"},
	// Tenant: TLS.
	{"issuer kind unknown", validTenant("t13", "tls:\n  issuerRef: {name: x, kind: CertificateAuthority}\n"), "spec.tls.issuerRef.kind: Unsupported value"},
	{"issuer without name", validTenant("t14", "tls:\n  issuerRef: {kind: Issuer}\n"), "spec.tls.issuerRef.name: Required value"},
	// Tenant: firewall.
	{"ingress port zero", validTenant("t15", "firewall:\n  ingressPorts: [0]\n"), "spec.firewall.ingressPorts[0]"},
	{"ingress port too high", validTenant("t16", "firewall:\n  ingressPorts: [70000]\n"), "spec.firewall.ingressPorts[0]"},
	{"allowed CIDR not a CIDR", validTenant("t17", "firewall:\n  allowedCIDRs: [10.0.0.300/8]\n"), "spec.firewall.allowedCIDRs must contain CIDRs"},
	{"ingress namespace not a name", validTenant("t18", "firewall:\n  ingressNamespaces: [Ingress_NGINX]\n"), "spec.firewall.ingressNamespaces[0]"},
	{"egress without CIDRs", validTenant("t19", "firewall:\n  egress:\n  - ports: [443]\n"), "spec.firewall.egress[0].toCIDRs: Required value"},
	{"egress CIDR invalid", validTenant("t20", "firewall:\n  egress:\n  - toCIDRs: [example.com]\n"), "spec.firewall.egress[].toCIDRs must contain CIDRs"},
	{"egress port invalid", validTenant("t21", "firewall:\n  egress:\n  - toCIDRs: [10.0.0.0/8]\n    ports: [-1]\n"), "spec.firewall.egress[0].ports[0]"},
	// The cluster's own ranges: link-local by CEL, the rest by the webhook against the operator's
	// options (the defaults here: every private range is a pod or Service range).
	{"allowed CIDR in the metadata range", validTenant("t38", "firewall:\n  allowedCIDRs: [169.254.169.254/32]\n"), "spec.firewall.allowedCIDRs must not lie inside the link-local ranges"},
	{"egress to the metadata service", validTenant("t39", "firewall:\n  egress:\n  - toCIDRs: [169.254.169.254/32]\n"), "spec.firewall.egress[].toCIDRs must not lie inside the link-local ranges"},
	{"egress to the IPv6 metadata service", validTenant("t40", "firewall:\n  egress:\n  - toCIDRs: [\"fd00:ec2::254/128\"]\n"), "spec.firewall.egress[].toCIDRs must not lie inside the link-local ranges"},
	{"egress into the pod range", validTenant("t41", "firewall:\n  egress:\n  - toCIDRs: [198.51.100.0/24, 10.1.0.0/16]\n"), "spec.firewall.egress[0].toCIDRs[1]: Invalid value: \"10.1.0.0/16\": lies inside the cluster's pod range 10.0.0.0/8"},
	{"allowed CIDR equal to a private range", validTenant("t42", "firewall:\n  allowedCIDRs: [192.168.0.0/16]\n"), "spec.firewall.allowedCIDRs[0]: Invalid value: \"192.168.0.0/16\": lies inside the cluster's pod range 192.168.0.0/16"},
	{"service type ClusterIP cannot be allowed", validTenant("t43", "firewall:\n  allowedServiceTypes: [ExternalName]\n"), "spec.firewall.allowedServiceTypes[0]: Unsupported value: \"ExternalName\""},
	// Tenant: route.
	{"route HTTPRoute without a gateway", validTenant("t44", "route:\n  kind: HTTPRoute\n"), "spec.route.gatewayRef is required when spec.route.kind is HTTPRoute"},
	{"route Ingress with a gateway", validTenant("t45", "route:\n  gatewayRef: {name: public, namespace: gateways}\n"), "spec.route.gatewayRef is required when spec.route.kind is HTTPRoute, and allowed only then"},
	{"route kind unknown", validTenant("t46", "route:\n  kind: LoadBalancer\n"), "spec.route.kind: Unsupported value: \"LoadBalancer\""},
	{"route service name invalid", validTenant("t47", "route:\n  serviceName: Web_App\n"), "spec.route.serviceName"},
	{"route port zero", validTenant("t48", "route:\n  port: 0\n"), "spec.route.port"},
	{"route gateway without namespace", validTenant("t49", "route:\n  kind: HTTPRoute\n  gatewayRef: {name: public}\n"), "spec.route.gatewayRef.namespace: Required value"},
	// Tenant: access.
	{"subject of unknown kind", validTenant("t22", "access:\n  admins:\n  - {kind: Robot, name: r2d2}\n"), "spec.access.admins[].kind must be User, Group or ServiceAccount"},
	{"service account without namespace", validTenant("t23", "access:\n  viewers:\n  - {kind: ServiceAccount, name: ci}\n"), "spec.access.viewers: a ServiceAccount subject needs a namespace"},
	{"subject without name", validTenant("t24", "access:\n  editors:\n  - {kind: User}\n"), "spec.access.editors[0].name: Required value"},
	// Tenant: quota, policies, monitoring, deletion.
	{"quota not a quantity", validTenant("t25", "quota:\n  requests.cpu: two\n"), "spec.quota"},
	{"backup policy ref without name", validTenant("t26", "backupPolicyRef: {}\n"), "spec.backupPolicyRef.name: Required value"},
	{"monitoring url plain http", validTenant("t27", "monitoring:\n  url: http://app.example.com/\n"), "spec.monitoring.url must be an https URL"},
	{"monitoring url not a url", validTenant("t28", "monitoring:\n  url: not a url\n"), "spec.monitoring.url must be an https URL"},
	{"monitoring interval too short", validTenant("t29", "monitoring:\n  interval: 1s\n"), "spec.monitoring.interval must be at least 5s"},
	{"monitoring interval not a duration", validTenant("t30", "monitoring:\n  interval: often\n"), "spec.monitoring.interval"},
	{"objective above 100", validTenant("t31", "monitoring:\n  objective: \"100.5\"\n"), "spec.monitoring.objective must be a percentage above 0 and at most 100"},
	{"objective not a number", validTenant("t32", "monitoring:\n  objective: high\n"), "spec.monitoring.objective"},
	{"business hours unknown time zone", validTenant("t33", "monitoring:\n  businessHours: {timeZone: Europe/Atlantis, start: \"08:00\", end: \"18:00\"}\n"), "spec.monitoring.businessHours.timeZone: Invalid value: \"Europe/Atlantis\": must be an IANA time zone name"},
	{"business hours end before start", validTenant("t34", "monitoring:\n  businessHours: {timeZone: Europe/Amsterdam, start: \"18:00\", end: \"08:00\"}\n"), "spec.monitoring.businessHours.start must be before end"},
	{"business hours bad time", validTenant("t35", "monitoring:\n  businessHours: {timeZone: Europe/Amsterdam, start: \"8am\", end: \"18:00\"}\n"), "spec.monitoring.businessHours.start"},
	{"business hours unknown day", validTenant("t36", "monitoring:\n  businessHours: {timeZone: Europe/Amsterdam, days: [Funday], start: \"08:00\", end: \"18:00\"}\n"), "spec.monitoring.businessHours.days[0]: Unsupported value: \"Funday\""},
	{"deletion policy unknown", validTenant("t37", "deletionPolicy: Archive\n"), "spec.deletionPolicy: Unsupported value: \"Archive\""},

	// BackupPolicy.
	{"backup policy without schedules", backupPolicy("schedules: []\nencryption:\n  recipients: [" + demoRecipient + "]\n"), "spec.schedules"},
	{"backup cron invalid", backupPolicy(backupSpec("every night", s3Storage, "")), "spec.schedules[0].schedule: Invalid value: \"every night\""},
	{"backup cron with @every", backupPolicy(backupSpec("@every 1h", s3Storage, "")), "spec.schedules[0].schedule: Invalid value: \"@every 1h\": @every is not supported"},
	{"backup cron with a time zone", backupPolicy(backupSpec("TZ=UTC 0 * * * *", s3Storage, "")), "spec.schedules[0].schedule"},
	{"backup schedule name invalid", backupPolicy(strings.Replace(backupSpec("@daily", s3Storage, ""), "name: hot", "name: Hot_Copy", 1)), "spec.schedules[0].name"},
	{"backup schedule names duplicate", backupPolicy("schedules:\n- name: hot\n  schedule: \"@daily\"\n  storage:\n" + indentBy(s3Storage, "    ") + "- name: hot\n  schedule: \"@hourly\"\n  storage:\n" + indentBy(s3Storage, "    ") + "encryption:\n  recipients: [" + demoRecipient + "]\n"), "spec.schedules[1]: Duplicate value"},
	{"backup storage both s3 and volume", backupPolicy(backupSpec("@daily", s3Storage+"volume: {claimName: backups}\n", "")), "spec.schedules[].storage must set exactly one of s3 or volume"},
	{"backup storage neither", backupPolicy(backupSpec("@daily", "{}\n", "")), "spec.schedules[].storage must set exactly one of s3 or volume"},
	{"backup bucket invalid", backupPolicy(backupSpec("@daily", strings.Replace(s3Storage, "bucket: backups", "bucket: B", 1), "")), "spec.schedules[0].storage.s3.bucket"},
	{"backup s3 without credentials", backupPolicy(backupSpec("@daily", strings.Replace(s3Storage, "  credentialsSecretRef: {name: creds}\n", "", 1), "")), "spec.schedules[0].storage.s3.credentialsSecretRef: Required value"},
	{"backup prefix escapes", backupPolicy(backupSpec("@daily", s3Storage+"  prefix: ../other\n", "")), "spec.schedules[].storage.s3.prefix must be relative"},
	{"backup maxAge invalid", backupPolicy(strings.Replace(backupSpec("@daily", s3Storage, ""), "  storage:", "  maxAge: soon\n  storage:", 1)), "spec.schedules[0].maxAge: Invalid value: \"soon\""},
	{"backup without recipients", backupPolicy("schedules:\n- name: hot\n  schedule: \"@daily\"\n  storage:\n" + indentBy(s3Storage, "    ") + "encryption:\n  recipients: []\n"), "spec.encryption.recipients"},
	{"backup without encryption", backupPolicy("schedules:\n- name: hot\n  schedule: \"@daily\"\n  storage:\n" + indentBy(s3Storage, "    ")), "spec.encryption: Required value"},
	{"backup recipient invalid", backupPolicy(strings.Replace(backupSpec("@daily", s3Storage, ""), demoRecipient, "age1notakey", 1)), "spec.encryption.recipients[0]: Invalid value: \"age1notakey\": must be an age public key"},
	{"backup recipient is a private key", backupPolicy(strings.Replace(backupSpec("@daily", s3Storage, ""), demoRecipient, "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ", 1)), "spec.encryption.recipients[0]: Invalid value: is an age private key"},
	{"backup region not allowed", backupPolicy(backupSpec("@daily", s3Storage, "allowedRegions: [eu-central-1]\n")), "spec.schedules[].storage.s3.region must be one of spec.allowedRegions"},
	{"backup verification cron invalid", backupPolicy(backupSpec("@daily", s3Storage, "verification: {schedule: \"sometimes\"}\n")), "spec.verification.schedule: Invalid value: \"sometimes\""},
	{"backup verification without identity", backupPolicy(backupSpec("@daily", s3Storage, "verification: {schedule: \"@weekly\"}\n")), "spec.encryption.identitySecretRef: Required value"},

	// RetentionPolicy.
	{"retention without rules", retentionPolicy("minKeep: 3\n"), "spec must set at least one rule"},
	{"retention negative keepDaily", retentionPolicy("keepDaily: -1\n"), "spec.keepDaily"},
	{"retention minKeep zero", retentionPolicy("keepLast: 3\nminKeep: 0\n"), "spec.minKeep"},
	{"retention maxAge invalid", retentionPolicy("maxAge: 5 days\n"), "spec.maxAge: Invalid value: \"5 days\""},
	{"retention maxAge zero", retentionPolicy("maxAge: 0d\n"), "spec.maxAge: Invalid value: \"0d\": \"0d\" is not a period: it must be longer than zero"},
}
