package evidence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Sources are where the evidence is read.
type Sources struct {
	// Client reads the cluster: the Tenant, its policies, the objects in its namespace and the
	// records in the operator's namespace. Nothing is written.
	Client client.Reader
	// OperatorNamespace holds erasure and kept-tenant records.
	OperatorNamespace string
	// OpenStorage opens one schedule's storage for reading; nil leaves storage out, and the
	// backup sections then rest on the Tenant's status alone.
	OpenStorage func(ctx context.Context, s v1alpha1.BackupStorage) (storage.Store, error)
	// Now is the clock ages are measured with; time.Now when nil.
	Now func() time.Time
}

// Gather reads the evidence for the tenant of the given name. A Tenant that no longer exists
// still has a report: its identity is unknown, and what its erasure left is shown. Errors other
// than a missing Tenant are returned only when the Tenant itself cannot be read; every other
// failure to read becomes an unknown status with the reason.
func Gather(ctx context.Context, src Sources, tenant string) (Report, error) {
	if src.Client == nil {
		return Report{}, errors.New("evidence: no client")
	}
	now := time.Now
	if src.Now != nil {
		now = src.Now
	}
	g := &gatherer{src: src, now: now().UTC(), name: tenant}
	t := &v1alpha1.Tenant{}
	switch err := src.Client.Get(ctx, client.ObjectKey{Name: tenant}, t); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return Report{}, fmt.Errorf("get tenant %s: %w", tenant, err)
	default:
		g.t = t
	}
	g.loadPolicies(ctx)
	g.listStorage(ctx)

	r := Report{APIVersion: APIVersion, Kind: Kind, GeneratedAt: g.now, Tenant: Tenant{Name: tenant}}
	if g.t != nil {
		created := t.CreationTimestamp.UTC()
		r.Tenant = Tenant{Name: t.Name, DisplayName: t.Spec.DisplayName, UID: string(t.UID), CreatedAt: &created,
			Namespace: builders.NamespaceName(t), Exists: true}
	}
	for _, id := range SectionIDs {
		s := Section{ID: id, Title: titles[id].title, Promise: titles[id].promise, Setting: []Fact{}, Observed: []Fact{}, Proof: []Source{}}
		if g.t == nil && id != SectionIdentity && id != SectionErasureRecords {
			s.verdict(StatusUnknown, "The Tenant no longer exists, so this promise cannot be observed; see the erasure records.")
		} else {
			gatherers[id](g, ctx, &s)
		}
		r.Sections = append(r.Sections, s)
	}
	r.summarize()
	return r, nil
}

var titles = map[string]struct{ title, promise string }{
	SectionIdentity:        {"Customer", "The customer is identified by a name and a unique ID that no later customer reuses."},
	SectionEnvironment:     {"An environment of your own", "Your applications run in an isolated area of their own, under the strictest standard security rules for programs, with resource limits."},
	SectionAccess:          {"Who has access", "Only the people and programs you name get access: administrators, editors or read-only users."},
	SectionDatabase:        {"Your own database", "You get your own PostgreSQL database of the agreed version, reached only over encrypted connections."},
	SectionFirewall:        {"A firewall around your environment", "All network traffic is refused except what is listed: the agreed ports from the agreed sources, and outbound only to the agreed destinations."},
	SectionCertificate:     {"HTTPS certificate", "Your web addresses are served with a valid certificate that is renewed before it expires."},
	SectionBackups:         {"Backups", "Your database is backed up on the agreed schedules to the agreed storage, and the newest backup is never older than agreed."},
	SectionEncryption:      {"Encrypted backups", "Every backup is encrypted before it leaves the cluster, to a key of your own; the report names keys by fingerprint only."},
	SectionVerification:    {"Backups are checked", "Backups are checked regularly: their checksum, and a trial restore into a throwaway database."},
	SectionRetention:       {"Backups are kept no longer than agreed", "Old backups are deleted by the agreed retention rules."},
	SectionRegions:         {"Your data stays in the agreed regions", "Backups are stored only in the agreed regions."},
	SectionPointInTime:     {"Restore to any moment", "The database can be restored to any moment within the recovery window, not only to the moment of a backup."},
	SectionUptime:          {"Availability", "Your application is available for the agreed share of the time, measured by probes."},
	SectionErasureRequests: {"Erasure requests", "A person's data erased on request stays erased, also after a restore from backup."},
	SectionErasureRecords:  {"Erasure at contract end", "At contract end your data is erased, backups included, and the erasure is recorded."},
}

var gatherers = map[string]func(*gatherer, context.Context, *Section){
	SectionIdentity:        (*gatherer).identity,
	SectionEnvironment:     (*gatherer).environment,
	SectionAccess:          (*gatherer).access,
	SectionDatabase:        (*gatherer).database,
	SectionFirewall:        (*gatherer).firewall,
	SectionCertificate:     (*gatherer).certificate,
	SectionBackups:         (*gatherer).backups,
	SectionEncryption:      (*gatherer).encryption,
	SectionVerification:    (*gatherer).verification,
	SectionRetention:       (*gatherer).retention,
	SectionRegions:         (*gatherer).regions,
	SectionPointInTime:     (*gatherer).pointInTime,
	SectionUptime:          (*gatherer).uptime,
	SectionErasureRequests: (*gatherer).erasureRequests,
	SectionErasureRecords:  (*gatherer).erasureRecords,
}

// gatherer holds what several sections read.
type gatherer struct {
	src  Sources
	now  time.Time
	name string
	t    *v1alpha1.Tenant // nil when the Tenant is gone

	backupPolicy       *v1alpha1.BackupPolicy
	backupPolicyErr    error
	retentionPolicy    *v1alpha1.RetentionPolicy
	retentionPolicyErr error
	// listings has one entry per schedule of the BackupPolicy, when storage was read.
	listings []listing
}

func (s *Section) set(key, label, value string) {
	s.Setting = append(s.Setting, Fact{Key: key, Label: label, Value: value})
}

func (s *Section) observe(key, label, value string) {
	s.Observed = append(s.Observed, Fact{Key: key, Label: label, Value: value})
}

func (s *Section) proof(src Source) { s.Proof = append(s.Proof, src) }

func (s *Section) verdict(status Status, reason string) { s.Status, s.Reason = status, reason }

func (s *Section) table(key, title string, columns ...Column) *Table {
	t := &Table{Key: key, Title: title, Columns: columns, Rows: []map[string]string{}}
	s.Tables = append(s.Tables, t)
	return t
}

func col(key, label string) Column { return Column{Key: key, Label: label} }

func (g *gatherer) tenantSource(field string) Source {
	return Source{Kind: "Tenant", Name: g.name, Field: field}
}

func (g *gatherer) namespace() string { return builders.NamespaceName(g.t) }

// condition describes a condition of the Tenant for people: "True (Fresh): message", or
// "not reported".
func (g *gatherer) condition(ctype string) (*metav1.Condition, string) {
	c := meta.FindStatusCondition(g.t.Status.Conditions, ctype)
	if c == nil {
		return nil, "not reported"
	}
	text := fmt.Sprintf("%s (%s)", c.Status, c.Reason)
	if c.Message != "" {
		text += ": " + c.Message
	}
	return c, text
}

func isTrue(c *metav1.Condition) bool  { return c != nil && c.Status == metav1.ConditionTrue }
func isFalse(c *metav1.Condition) bool { return c != nil && c.Status == metav1.ConditionFalse }

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func formatMetaTime(t *metav1.Time) string {
	if t == nil {
		return "never"
	}
	return formatTime(t.Time)
}

// formatAge is a duration for people: "3d 4h", "5h 12m", "40s".
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func orNone(values []string) string {
	if len(values) == 0 {
		return "none"
	}
	return strings.Join(values, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// readError says in plain words why something could not be read.
func readError(what string, err error) string {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("%s could not be read: permission refused", what)
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err) && strings.Contains(err.Error(), "the server could not find the requested resource"):
		return fmt.Sprintf("%s could not be read: the cluster does not serve that kind", what)
	}
	return fmt.Sprintf("%s could not be read: %s", what, strings.Join(strings.Fields(err.Error()), " "))
}

// identity: who the customer is.
func (g *gatherer) identity(_ context.Context, s *Section) {
	if g.t == nil {
		s.observe("exists", "Tenant exists", "no")
		s.proof(g.tenantSource(""))
		s.verdict(StatusUnknown, fmt.Sprintf("No Tenant named %s exists now; the erasure records below name the customers of that name that were.", g.name))
		return
	}
	t := g.t
	s.set("displayName", "Customer name", t.Spec.DisplayName)
	s.set("hostnames", "Web addresses", strings.Join(t.Spec.Hostnames, ", "))
	deletion := t.Spec.DeletionPolicy
	if deletion == "" {
		deletion = v1alpha1.DeletionPolicyRetain
	}
	s.set("deletionPolicy", "At contract end", string(deletion))
	s.observe("name", "Name", t.Name)
	s.observe("uid", "Unique ID", string(t.UID))
	s.observe("createdAt", "Created", formatTime(t.CreationTimestamp.Time))
	s.observe("phase", "Overall state", string(t.Status.Phase))
	_, ready := g.condition(v1alpha1.ConditionReady)
	s.observe("ready", "Everything as asked (Ready)", ready)
	if t.Status.DeletionPolicy != "" {
		s.observe("effectiveDeletionPolicy", "Deleting the customer now would", string(t.Status.DeletionPolicy))
	}
	s.proof(g.tenantSource("metadata"))
	s.proof(g.tenantSource("status.conditions"))
	s.verdict(StatusMet, fmt.Sprintf("The Tenant %s exists with unique ID %s, created %s.", t.Name, t.UID, formatTime(t.CreationTimestamp.Time)))
}

// podSecurityEnforce is the label that makes the API server enforce a Pod Security level.
const podSecurityEnforce = "pod-security.kubernetes.io/enforce"

// environment: the namespace, its Pod Security level, quota and limits.
func (g *gatherer) environment(ctx context.Context, s *Section) {
	t, nsName := g.t, g.namespace()
	s.set("namespace", "Isolated area (namespace)", nsName)
	s.set("podSecurity", "Security standard for programs", "restricted")
	var overrides []string
	for name, q := range t.Spec.Quota {
		overrides = append(overrides, fmt.Sprintf("%s=%s", name, q.String()))
	}
	sort.Strings(overrides)
	s.set("quotaOverrides", "Resource limits asked beyond the defaults", orNone(overrides))

	ns := &corev1.Namespace{}
	if err := g.src.Client.Get(ctx, client.ObjectKey{Name: nsName}, ns); err != nil {
		s.observe("namespaceExists", "Namespace exists", "unknown")
		if apierrors.IsNotFound(err) {
			s.verdict(StatusNotMet, fmt.Sprintf("The namespace %s does not exist.", nsName))
			return
		}
		s.verdict(StatusUnknown, readError("The namespace", err))
		return
	}
	s.proof(Source{Kind: "Namespace", Name: nsName, Field: "metadata.labels"})
	s.observe("namespaceExists", "Namespace exists", "yes")
	enforce := ns.Labels[podSecurityEnforce]
	s.observe("podSecurity", "Security standard enforced", orNone(nonEmpty(enforce)))
	_, cond := g.condition(v1alpha1.ConditionNamespaceReady)
	s.observe("namespaceReady", "Operator's check (NamespaceReady)", cond)
	s.proof(g.tenantSource("status.conditions[NamespaceReady]"))

	problems := []string{}
	if enforce != "restricted" {
		problems = append(problems, fmt.Sprintf("the namespace enforces %q, not restricted", enforce))
	}
	quota := &corev1.ResourceQuota{}
	switch err := g.src.Client.Get(ctx, client.ObjectKey{Namespace: nsName, Name: builders.QuotaName}, quota); {
	case apierrors.IsNotFound(err):
		s.observe("quota", "Resource limits", "none")
		problems = append(problems, "the resource quota "+builders.QuotaName+" does not exist")
	case err != nil:
		s.observe("quota", "Resource limits", readError("The quota", err))
		s.verdict(StatusUnknown, readError("The resource quota", err))
		return
	default:
		s.proof(Source{Kind: "ResourceQuota", Namespace: nsName, Name: builders.QuotaName, Field: "spec.hard, status.used"})
		tbl := s.table("quota", "Resource limits", col("resource", "Resource"), col("limit", "Limit"), col("used", "In use"))
		names := make([]string, 0, len(quota.Spec.Hard))
		for name := range quota.Spec.Hard {
			names = append(names, string(name))
		}
		sort.Strings(names)
		for _, name := range names {
			used := "not counted yet"
			if u, ok := quota.Status.Used[corev1.ResourceName(name)]; ok {
				used = u.String()
			}
			hard := quota.Spec.Hard[corev1.ResourceName(name)]
			tbl.Rows = append(tbl.Rows, map[string]string{"resource": name, "limit": hard.String(), "used": used})
		}
		for name, want := range t.Spec.Quota {
			if got, ok := quota.Spec.Hard[name]; !ok || got.Cmp(want) != 0 {
				problems = append(problems, fmt.Sprintf("the quota's %s is not the %s asked for", name, want.String()))
			}
		}
	}
	limits := &corev1.LimitRange{}
	switch err := g.src.Client.Get(ctx, client.ObjectKey{Namespace: nsName, Name: builders.LimitRangeName}, limits); {
	case apierrors.IsNotFound(err):
		s.observe("limitRange", "Default limits per program", "none")
		problems = append(problems, "the limit range "+builders.LimitRangeName+" does not exist")
	case err != nil:
		s.observe("limitRange", "Default limits per program", readError("The limit range", err))
	default:
		s.observe("limitRange", "Default limits per program", builders.LimitRangeName)
		s.proof(Source{Kind: "LimitRange", Namespace: nsName, Name: builders.LimitRangeName})
	}
	if len(problems) > 0 {
		s.verdict(StatusNotMet, capitalize(strings.Join(problems, "; "))+".")
		return
	}
	s.verdict(StatusMet, fmt.Sprintf("The namespace %s exists, enforces the restricted security standard and has its resource limits.", nsName))
}

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// subjectText names a subject for people: "User alice", "ServiceAccount ci/deployer".
func subjectText(s rbacv1.Subject) string {
	name := s.Name
	if s.Namespace != "" {
		name = s.Namespace + "/" + s.Name
	}
	return s.Kind + " " + name
}

func subjectSet(subjects []rbacv1.Subject) []string {
	out := make([]string, 0, len(subjects))
	for _, s := range subjects {
		if s.Kind != rbacv1.ServiceAccountKind {
			s.Namespace = ""
		}
		out = append(out, subjectText(s))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// access: the role bindings against spec.access.
func (g *gatherer) access(ctx context.Context, s *Section) {
	t, ns := g.t, g.namespace()
	roles := []struct {
		key, label, binding, role string
		want                      []rbacv1.Subject
	}{
		{"admins", "Administrators", builders.RoleBindingAdmins, "admin", t.Spec.Access.Admins},
		{"editors", "Editors", builders.RoleBindingEditors, "edit", t.Spec.Access.Editors},
		{"viewers", "Read-only users", builders.RoleBindingViewers, "view", t.Spec.Access.Viewers},
	}
	tbl := s.table("roleBindings", "Access granted", col("role", "Role"), col("binding", "Granted by"), col("subjects", "Who"), col("asExpected", "As asked"))
	var problems []string
	for _, r := range roles {
		want := subjectSet(r.want)
		s.set(r.key, r.label, orNone(want))
		rb := &rbacv1.RoleBinding{}
		err := g.src.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: r.binding}, rb)
		var got []string
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			s.verdict(StatusUnknown, readError("The role binding "+r.binding, err))
			return
		default:
			s.proof(Source{Kind: "RoleBinding", Namespace: ns, Name: r.binding, Field: "roleRef, subjects"})
			got = subjectSet(rb.Subjects)
			if rb.RoleRef.Name != r.role {
				problems = append(problems, fmt.Sprintf("%s grants the role %s, not %s", r.binding, rb.RoleRef.Name, r.role))
			}
		}
		ok := slices.Equal(want, got)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: asked for %s, granted to %s", strings.ToLower(r.label), orNone(want), orNone(got)))
		}
		binding := r.binding
		if err != nil {
			binding = "none"
		}
		tbl.Rows = append(tbl.Rows, map[string]string{"role": r.label, "binding": binding, "subjects": orNone(got), "asExpected": yesNo(ok)})
		s.observe(r.key, r.label, orNone(got))
	}
	_, cond := g.condition(v1alpha1.ConditionAccessReady)
	s.observe("accessReady", "Operator's check (AccessReady)", cond)
	s.proof(g.tenantSource("spec.access"))
	if len(problems) > 0 {
		s.verdict(StatusNotMet, capitalize(strings.Join(problems, "; "))+".")
		return
	}
	s.verdict(StatusMet, "Access is granted to exactly the people and programs listed, with the roles listed.")
}

// database: version, readiness and TLS.
func (g *gatherer) database(ctx context.Context, s *Section) {
	t, ns := g.t, g.namespace()
	want := builders.DatabaseVersion(t)
	s.set("version", "PostgreSQL version", want)
	s.set("storageSize", "Disk size", t.Spec.Database.Storage.Size.String())
	s.set("tls", "Connections", "encrypted only (TLS 1.2 or newer, password by SCRAM)")
	var problems, unknowns []string
	got := ""
	if db := t.Status.Database; db != nil {
		got = db.Version
		s.observe("version", "Running version", db.Version)
		s.observe("readyReplicas", "Database servers ready", strconv.Itoa(int(db.ReadyReplicas)))
		s.observe("host", "Address inside the cluster", db.Host)
	} else {
		s.observe("version", "Running version", "not reported")
	}
	s.proof(g.tenantSource("status.database"))
	c, cond := g.condition(v1alpha1.ConditionDatabaseReady)
	s.observe("databaseReady", "Operator's check (DatabaseReady)", cond)
	s.proof(g.tenantSource("status.conditions[DatabaseReady]"))
	switch {
	case isFalse(c):
		problems = append(problems, "the database is not ready ("+c.Reason+")")
	case c == nil:
		unknowns = append(unknowns, "the operator has not reported the database's readiness")
	}
	if got != "" && got != want {
		problems = append(problems, fmt.Sprintf("version %s runs, %s was asked for", got, want))
	}

	cm := &corev1.ConfigMap{}
	switch err := g.src.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: builders.DatabaseConfigName(t)}, cm); {
	case err != nil:
		s.observe("tlsOnly", "Refuses unencrypted connections", "unknown")
		unknowns = append(unknowns, readError("The database's access rules", err))
	default:
		s.proof(Source{Kind: "ConfigMap", Namespace: ns, Name: builders.DatabaseConfigName(t), Field: "data[pg_hba.conf]"})
		ok := cm.Data["pg_hba.conf"] == builders.DatabaseHBA()
		s.observe("tlsOnly", "Refuses unencrypted connections (access rules as the operator writes them)", yesNo(ok))
		if !ok {
			problems = append(problems, "the database's access rules (pg_hba.conf) differ from the operator's TLS-only rules")
		}
	}
	cert := &cmapi.Certificate{}
	switch err := g.src.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: builders.DatabaseCertificateName(t)}, cert); {
	case err != nil:
		s.observe("serverCertificate", "Server certificate issued", "unknown")
		unknowns = append(unknowns, readError("The database's server certificate", err))
	default:
		s.proof(Source{Kind: "Certificate", Namespace: ns, Name: builders.DatabaseCertificateName(t), Field: "status"})
		ready := certificateReady(cert)
		s.observe("serverCertificate", "Server certificate issued", yesNo(ready))
		if cert.Status.NotAfter != nil {
			s.observe("serverCertificateNotAfter", "Server certificate valid until", formatMetaTime(cert.Status.NotAfter))
		}
		if !ready {
			problems = append(problems, "the database's server certificate is not issued")
		}
	}
	switch {
	case len(problems) > 0:
		s.verdict(StatusNotMet, capitalize(strings.Join(problems, "; "))+".")
	case len(unknowns) > 0:
		s.verdict(StatusUnknown, capitalize(strings.Join(unknowns, "; "))+".")
	default:
		s.verdict(StatusMet, fmt.Sprintf("PostgreSQL %s is ready, accepts encrypted connections only, and its server certificate is issued.", got))
	}
}

func certificateReady(c *cmapi.Certificate) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == cmapi.CertificateConditionReady {
			return cond.Status == cmmeta.ConditionTrue
		}
	}
	return false
}

// certificate: the tenant's certificate for its hostnames.
func (g *gatherer) certificate(ctx context.Context, s *Section) {
	t, ns := g.t, g.namespace()
	s.set("hostnames", "Web addresses", strings.Join(t.Spec.Hostnames, ", "))
	issuer := "the operator's default issuer"
	if t.Spec.TLS != nil && t.Spec.TLS.IssuerRef != nil {
		issuer = t.Spec.TLS.IssuerRef.Name
	}
	s.set("issuer", "Certificate authority (issuer)", issuer)
	c, cond := g.condition(v1alpha1.ConditionCertificateReady)
	s.observe("certificateReady", "Operator's check (CertificateReady)", cond)
	s.proof(g.tenantSource("status.conditions[CertificateReady]"))
	if cs := t.Status.Certificate; cs != nil {
		s.observe("statusNotAfter", "Valid until (as the Tenant reports)", formatMetaTime(cs.NotAfter))
		s.proof(g.tenantSource("status.certificate"))
	}
	cert := &cmapi.Certificate{}
	name := builders.TenantCertificateName(t)
	if err := g.src.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cert); err != nil {
		if apierrors.IsNotFound(err) {
			s.observe("exists", "Certificate exists", "no")
			s.verdict(StatusNotMet, fmt.Sprintf("There is no certificate %s for the web addresses.", name))
			return
		}
		s.verdict(StatusUnknown, readError("The certificate", err))
		return
	}
	s.proof(Source{Kind: "Certificate", Namespace: ns, Name: name, Field: "spec.dnsNames, status"})
	s.observe("dnsNames", "Names on the certificate", strings.Join(cert.Spec.DNSNames, ", "))
	ready := certificateReady(cert)
	s.observe("issued", "Issued and valid", yesNo(ready))
	s.observe("notAfter", "Valid until", formatMetaTime(cert.Status.NotAfter))
	if cert.Status.RenewalTime != nil {
		s.observe("renewalTime", "Renewal planned", formatMetaTime(cert.Status.RenewalTime))
	}
	var problems []string
	for _, h := range t.Spec.Hostnames {
		if !slices.Contains(cert.Spec.DNSNames, h) {
			problems = append(problems, fmt.Sprintf("%s is not on the certificate", h))
		}
	}
	if !ready {
		problems = append(problems, "the certificate is not issued")
	}
	if na := cert.Status.NotAfter; na != nil && !na.After(g.now) {
		problems = append(problems, "the certificate expired "+formatMetaTime(na))
	}
	if isFalse(c) {
		problems = append(problems, "the operator reports it not ready ("+c.Reason+")")
	}
	if len(problems) > 0 {
		s.verdict(StatusNotMet, capitalize(strings.Join(problems, "; "))+".")
		return
	}
	s.verdict(StatusMet, fmt.Sprintf("The certificate covers every web address and is valid until %s.", formatMetaTime(cert.Status.NotAfter)))
}

// firewall: the NetworkPolicies as the objects say.
func (g *gatherer) firewall(ctx context.Context, s *Section) {
	t, ns := g.t, g.namespace()
	fw := t.Spec.Firewall
	ports := fw.IngressPorts
	if len(ports) == 0 {
		ports = []int32{80, 443}
	}
	s.set("ingressPorts", "Ports open to the listed sources", joinPorts(ports))
	s.set("ingressNamespaces", "Cluster namespaces allowed in", orNone(fw.IngressNamespaces))
	s.set("allowedCIDRs", "Outside networks allowed in", orNone(fw.AllowedCIDRs))
	var egress []string
	for _, e := range fw.Egress {
		egress = append(egress, fmt.Sprintf("%s on %s", strings.Join(e.ToCIDRs, " "), egressPorts(e)))
	}
	s.set("egress", "Outbound destinations allowed", orNone(egress))

	list := &networkingv1.NetworkPolicyList{}
	if err := g.src.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
		s.verdict(StatusUnknown, readError("The network policies", err))
		return
	}
	s.proof(Source{Kind: "NetworkPolicy", Namespace: ns, Field: "spec"})
	_, cond := g.condition(v1alpha1.ConditionFirewallReady)
	s.observe("firewallReady", "Operator's check (FirewallReady)", cond)
	byName := map[string]*networkingv1.NetworkPolicy{}
	tbl := s.table("rules", "Network rules in force", col("policy", "Rule set"), col("appliesTo", "Applies to"),
		col("direction", "Direction"), col("peers", "From or to"), col("ports", "Ports"))
	for i := range list.Items {
		np := &list.Items[i]
		byName[np.Name] = np
		for _, row := range describePolicy(np) {
			tbl.Rows = append(tbl.Rows, row)
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	s.observe("policies", "Rule sets present", orNone(names))

	var problems []string
	deny := byName[builders.PolicyDefaultDeny]
	denyOK := deny != nil && len(deny.Spec.PodSelector.MatchLabels) == 0 && len(deny.Spec.PodSelector.MatchExpressions) == 0 &&
		len(deny.Spec.Ingress) == 0 && len(deny.Spec.Egress) == 0 &&
		slices.Contains(deny.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(deny.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	s.observe("defaultDeny", "Everything refused unless allowed (default deny, both directions)", yesNo(denyOK))
	if !denyOK {
		problems = append(problems, "no default-deny rule refuses all traffic in both directions")
	}
	for _, n := range []string{builders.PolicyAllowDNS, builders.PolicySameNamespace, builders.PolicyIngress, builders.PolicyDatabaseClients} {
		if byName[n] == nil {
			problems = append(problems, "the rule set "+n+" is missing")
		}
	}
	if in := byName[builders.PolicyIngress]; in != nil {
		var open []int32
		var nss, cidrs []string
		for _, rule := range in.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil {
					open = append(open, p.Port.IntVal)
				}
			}
			for _, peer := range rule.From {
				if peer.NamespaceSelector != nil {
					nss = append(nss, peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
				}
				if peer.IPBlock != nil {
					cidrs = append(cidrs, peer.IPBlock.CIDR)
				}
			}
		}
		slices.Sort(open)
		open = slices.Compact(open)
		s.observe("openPorts", "Ports open", joinPorts(open))
		s.observe("allowedNamespaces", "Namespaces allowed in", orNone(nss))
		s.observe("allowedCIDRs", "Outside networks allowed in", orNone(cidrs))
		want := slices.Clone(ports)
		slices.Sort(want)
		if !slices.Equal(open, slices.Compact(want)) {
			problems = append(problems, fmt.Sprintf("the ports open are %s, not %s", joinPorts(open), joinPorts(want)))
		}
		for _, n := range fw.IngressNamespaces {
			if !slices.Contains(nss, n) {
				problems = append(problems, "the namespace "+n+" is not allowed in")
			}
		}
		for _, c := range fw.AllowedCIDRs {
			if !slices.Contains(cidrs, c) {
				problems = append(problems, "the network "+c+" is not allowed in")
			}
		}
	}
	if len(fw.Egress) > 0 && byName[builders.PolicyEgress] == nil {
		problems = append(problems, "outbound destinations are listed but the rule set "+builders.PolicyEgress+" is missing")
	}
	s.observe("enforcement", "Enforced by the network", "only where the cluster's network plugin enforces network policies, which the operator does not check")
	if len(problems) > 0 {
		s.verdict(StatusNotMet, capitalize(strings.Join(problems, "; "))+".")
		return
	}
	s.verdict(StatusMet, fmt.Sprintf("All traffic is refused by default; ports %s are open to the listed sources only.", joinPorts(ports)))
}

func joinPorts(ports []int32) string {
	if len(ports) == 0 {
		return "none"
	}
	out := make([]string, len(ports))
	for i, p := range ports {
		out[i] = strconv.Itoa(int(p))
	}
	return strings.Join(out, ", ")
}

func egressPorts(e v1alpha1.EgressRule) string {
	if len(e.Ports) == 0 {
		return "all ports"
	}
	return "TCP " + joinPorts(e.Ports)
}

// describePolicy turns one NetworkPolicy into rows: one per rule, or one "refuse all" row for a
// direction it covers without rules.
func describePolicy(np *networkingv1.NetworkPolicy) []map[string]string {
	applies := describeSelector(np.Spec.PodSelector)
	var rows []map[string]string
	for _, pt := range np.Spec.PolicyTypes {
		switch pt {
		case networkingv1.PolicyTypeIngress:
			if len(np.Spec.Ingress) == 0 {
				rows = append(rows, map[string]string{"policy": np.Name, "appliesTo": applies, "direction": "in", "peers": "nothing (refused)", "ports": "none"})
			}
			for _, r := range np.Spec.Ingress {
				rows = append(rows, map[string]string{"policy": np.Name, "appliesTo": applies, "direction": "in", "peers": describePeers(r.From), "ports": describePorts(r.Ports)})
			}
		case networkingv1.PolicyTypeEgress:
			if len(np.Spec.Egress) == 0 {
				rows = append(rows, map[string]string{"policy": np.Name, "appliesTo": applies, "direction": "out", "peers": "nothing (refused)", "ports": "none"})
			}
			for _, r := range np.Spec.Egress {
				rows = append(rows, map[string]string{"policy": np.Name, "appliesTo": applies, "direction": "out", "peers": describePeers(r.To), "ports": describePorts(r.Ports)})
			}
		}
	}
	return rows
}

func describeSelector(sel metav1.LabelSelector) string {
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return "every program"
	}
	var parts []string
	for _, e := range sel.MatchExpressions {
		switch {
		case e.Key == builders.LabelDatabasePod && e.Operator == metav1.LabelSelectorOpExists:
			parts = append(parts, "the database")
		case e.Key == builders.LabelDatabasePod && e.Operator == metav1.LabelSelectorOpDoesNotExist:
			parts = append(parts, "every program but the database")
		default:
			parts = append(parts, fmt.Sprintf("%s %s %s", e.Key, e.Operator, strings.Join(e.Values, ",")))
		}
	}
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+sel.MatchLabels[k])
	}
	return strings.Join(parts, "; ")
}

func describePeers(peers []networkingv1.NetworkPolicyPeer) string {
	if len(peers) == 0 {
		return "anywhere"
	}
	var out []string
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			text := "network " + p.IPBlock.CIDR
			if len(p.IPBlock.Except) > 0 {
				text += " except " + strings.Join(p.IPBlock.Except, " ")
			}
			out = append(out, text)
		case p.NamespaceSelector != nil:
			ns := "namespaces " + describeSelector(*p.NamespaceSelector)
			if n, ok := p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]; ok && len(p.NamespaceSelector.MatchLabels) == 1 {
				ns = "namespace " + n
			}
			if p.PodSelector != nil {
				ns += " (" + describeSelector(*p.PodSelector) + ")"
			}
			out = append(out, ns)
		case p.PodSelector != nil:
			out = append(out, "this environment: "+describeSelector(*p.PodSelector))
		}
	}
	return strings.Join(out, "; ")
}

func describePorts(ports []networkingv1.NetworkPolicyPort) string {
	if len(ports) == 0 {
		return "all"
	}
	var out []string
	for _, p := range ports {
		proto := "TCP"
		if p.Protocol != nil {
			proto = string(*p.Protocol)
		}
		port := "all"
		if p.Port != nil {
			port = p.Port.String()
		}
		if p.EndPort != nil {
			port += "-" + strconv.Itoa(int(*p.EndPort))
		}
		out = append(out, port+"/"+proto)
	}
	return strings.Join(out, ", ")
}
