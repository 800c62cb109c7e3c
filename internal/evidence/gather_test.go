package evidence_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/evidence"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

// The envtest runs on a real API server with the CRDs; it lays out a tenant as the operator
// would (its builders, applied as the operator applies them, and the status the operator writes)
// and its backups in storage as the agent does, then checks each section of the report against
// what it set up.
var k8s client.Client

const operatorNamespace = "tenant-operator-system"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s, err = client.New(env.Config, client.Options{Scheme: evidence.Scheme()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		return 1
	}
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		return 1
	}
	return m.Run()
}

var opts = builders.Options{OperatorNamespace: operatorNamespace, DefaultIssuer: v1alpha1.IssuerReference{Name: "selfsigned", Kind: "ClusterIssuer"}}

func apply(t *testing.T, ac runtime.ApplyConfiguration) {
	t.Helper()
	if err := k8s.Apply(context.Background(), ac, client.FieldOwner("tenant-operator"), client.ForceOwnership); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func recipient(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	must(t, err)
	return id.Recipient().String()
}

func condition(ctype string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: ctype, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.Now()}
}

// setUp makes the tenant acme: its policies, its owned objects and status as the operator
// leaves them, and two schedules' backups in storage (hot fresh, cold stale).
func setUp(t *testing.T, ctx context.Context, now time.Time) (*v1alpha1.Tenant, map[string]storage.Store, map[string]catalog.Manifest) {
	t.Helper()
	must(t, k8s.Create(ctx, &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "standard"}, Spec: v1alpha1.BackupPolicySpec{
		Schedules: []v1alpha1.BackupSchedule{
			{Name: "hot", Schedule: "0 */12 * * *", Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: "s3.eu-west-1.example.com", Bucket: "hot-bucket", Region: "eu-west-1", CredentialsSecretRef: v1alpha1.SecretReference{Name: "s3"}}}},
			{Name: "cold", Schedule: "@daily", MaxAge: "26h", Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: "s3.eu-central-1.example.com", Bucket: "cold-bucket", Region: "eu-central-1", CredentialsSecretRef: v1alpha1.SecretReference{Name: "s3"}}}},
		},
		Encryption:     v1alpha1.BackupEncryption{Recipients: []string{recipient(t)}, IdentitySecretRef: &v1alpha1.SecretKeyReference{Name: "drill-identity", Key: "identity"}},
		Verification:   &v1alpha1.BackupVerification{Schedule: "@weekly"},
		AllowedRegions: []string{"eu-west-1", "eu-central-1"},
		Signing:        &v1alpha1.BackupSigning{AllowUnsigned: true},
	}}))
	must(t, k8s.Create(ctx, &v1alpha1.RetentionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "keep-two"}, Spec: v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2), MinKeep: ptr.To[int32](1)}}))

	tn := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.TenantSpec{
		DisplayName: "Acme Corp",
		Hostnames:   []string{"acme.example.com", "www.acme.example.com"},
		Database:    v1alpha1.DatabaseSpec{Version: "17", Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("5Gi")}},
		Firewall: v1alpha1.FirewallSpec{IngressPorts: []int32{443}, IngressNamespaces: []string{"ingress-nginx"}, AllowedCIDRs: []string{"203.0.113.0/24"},
			Egress: []v1alpha1.EgressRule{{ToCIDRs: []string{"198.51.100.0/24"}, Ports: []int32{443}}}},
		Access: v1alpha1.AccessSpec{Admins: []rbacv1.Subject{{Kind: "User", Name: "alice", APIGroup: rbacv1.GroupName}},
			Viewers: []rbacv1.Subject{{Kind: "Group", Name: "auditors", APIGroup: rbacv1.GroupName}}},
		BackupPolicyRef:    &v1alpha1.LocalObjectReference{Name: "standard"},
		RetentionPolicyRef: &v1alpha1.LocalObjectReference{Name: "keep-two"},
		Monitoring:         &v1alpha1.MonitoringSpec{Objective: "99.9"},
	}}
	must(t, k8s.Create(ctx, tn))

	// What the operator builds.
	apply(t, builders.Namespace(tn))
	apply(t, builders.ResourceQuota(tn))
	apply(t, builders.LimitRange(tn))
	for _, rb := range builders.RoleBindings(tn) {
		apply(t, rb)
	}
	for _, np := range builders.NetworkPolicies(tn, opts) {
		apply(t, np)
	}
	apply(t, builders.DatabaseConfigMap(tn))
	apply(t, builders.TenantCertificate(tn, opts))
	apply(t, builders.DatabaseCertificate(tn, opts))
	notAfter := metav1.NewTime(now.Add(60 * 24 * time.Hour).Truncate(time.Second))
	for _, name := range []string{builders.TenantCertificateName(tn), builders.DatabaseCertificateName(tn)} {
		cert := &cmapi.Certificate{}
		must(t, k8s.Get(ctx, client.ObjectKey{Namespace: builders.NamespaceName(tn), Name: name}, cert))
		cert.Status.NotAfter = &notAfter
		cert.Status.Conditions = []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready"}}
		must(t, k8s.Status().Update(ctx, cert))
	}

	// Backups in storage, as the agent lays them out; each bucket is a directory here.
	stores := map[string]storage.Store{}
	for _, bucket := range []string{"hot-bucket", "cold-bucket"} {
		s, err := storage.OpenVolume(t.TempDir())
		must(t, err)
		stores[bucket] = s
	}
	const keyID = "00112233445566778899aabbccddeeff"
	uid := string(tn.UID)
	manifests := map[string]catalog.Manifest{}
	for i, age := range []time.Duration{time.Hour, 13 * time.Hour, 25 * time.Hour} {
		id := fmt.Sprintf("hot-%d", i)
		manifests[id] = catalogtest.Write(t, stores["hot-bucket"], catalogtest.Backup{Tenant: "acme", TenantUID: uid, Schedule: "hot", ID: id, StartedAt: now.Add(-age), DataKeyID: keyID})
	}
	must(t, catalog.WriteVerification(ctx, stores["hot-bucket"], "acme", "hot", catalog.Verification{FormatVersion: 1, BackupID: "hot-0",
		CheckedAt: now.Add(-30 * time.Minute), Kind: catalog.KindRestoreDrill, OK: true, ObjectSHA256: manifests["hot-0"].Object.SHA256}))
	manifests["cold-0"] = catalogtest.Write(t, stores["cold-bucket"], catalogtest.Backup{Tenant: "acme", TenantUID: uid, Schedule: "cold", ID: "cold-0", StartedAt: now.Add(-72 * time.Hour), DataKeyID: keyID})

	// The status the operator writes.
	hotAt, coldAt := metav1.NewTime(now.Add(-time.Hour+time.Minute)), metav1.NewTime(now.Add(-72*time.Hour+time.Minute))
	verified := metav1.NewTime(now.Add(-30 * time.Minute))
	tn.Status = v1alpha1.TenantStatus{
		Phase: v1alpha1.TenantPhaseDegraded, Namespace: builders.NamespaceName(tn), DeletionPolicy: v1alpha1.DeletionPolicyRetain,
		Conditions: []metav1.Condition{
			condition(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonStale, "Backups of schedule cold are stale"),
			condition(v1alpha1.ConditionNamespaceReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Namespace ready"),
			condition(v1alpha1.ConditionAccessReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Role bindings exist"),
			condition(v1alpha1.ConditionDatabaseReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "PostgreSQL 17 is ready"),
			condition(v1alpha1.ConditionFirewallReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Network policies exist"),
			condition(v1alpha1.ConditionCertificateReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Certificate issued"),
			condition(v1alpha1.ConditionPoliciesResolved, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Policies resolved"),
			condition(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonStale, "Schedule cold: newest backup is 72h old"),
			condition(v1alpha1.ConditionBackupVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified, "Restore drill of hot-0 passed"),
			condition(v1alpha1.ConditionUptimeObjectiveMet, metav1.ConditionTrue, v1alpha1.ReasonObjectiveMet, "99.95% over 30 days"),
			condition(v1alpha1.ConditionAvailable, metav1.ConditionTrue, v1alpha1.ReasonProbeSucceeded, "Answering"),
		},
		Database:    &v1alpha1.DatabaseStatus{Version: "17", Host: builders.DatabaseHost(tn), SecretName: builders.DatabaseSecretName(tn), ReadyReplicas: 1},
		Certificate: &v1alpha1.CertificateStatus{SecretName: "tenant-tls", NotAfter: &notAfter},
		Backups: &v1alpha1.BackupsStatus{LastSuccessTime: &hotAt, LastVerificationTime: &verified, Schedules: []v1alpha1.ScheduleBackupStatus{
			{Name: "hot", LastSuccessTime: &hotAt, LastBackupID: "hot-0", LastBackupSizeBytes: 20, ExpectedInterval: &metav1.Duration{Duration: 13 * time.Hour}, Count: 3, NextPrune: []string{"hot-2"}, LastVerificationTime: &verified},
			{Name: "cold", LastSuccessTime: &coldAt, LastBackupID: "cold-0", LastBackupSizeBytes: 21, ExpectedInterval: &metav1.Duration{Duration: 26 * time.Hour}, Count: 1},
		}},
		Uptime:  &v1alpha1.UptimeStatus{Ratio24h: "100", Ratio7d: "99.98", Ratio30d: "99.95", ErrorBudgetRemaining: "50", DetectionSeconds: 100},
		DataKey: &v1alpha1.DataKeyStatus{ID: keyID, SecretName: builders.DataKeySecretName(tn), CreatedAt: &metav1.Time{Time: now.Add(-90 * 24 * time.Hour)}},
	}
	must(t, k8s.Status().Update(ctx, tn))

	// An erasure request carried out, as the operator records it.
	er := &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "forget-42", Namespace: builders.NamespaceName(tn)},
		Spec: v1alpha1.ErasureRequestSpec{Subject: "customer-42@example.com", Function: "app.forget"}}
	must(t, k8s.Create(ctx, er))
	completed := metav1.NewTime(now.Add(-2 * time.Hour))
	er.Status = v1alpha1.ErasureRequestStatus{Phase: v1alpha1.ErasurePhaseSucceeded, CompletionTime: &completed, LedgerEntry: "acme/.ledger/uid/entry.json"}
	must(t, k8s.Status().Update(ctx, er))
	// A restore of hot-2 an hour later, which replayed that request, as the agent records it.
	_, err := catalog.WriteRestoreRecord(ctx, stores["hot-bucket"], catalog.RestoreRecord{Tenant: "acme", TenantUID: uid, RestoredAt: now.Add(-time.Hour),
		Method: catalog.MethodLogical, Schedule: "hot", BackupIDs: []string{"hot-2"}, BackupStartedAt: manifests["hot-2"].StartedAt, Database: "app",
		LedgerReplayed: []string{string(er.UID)}})
	must(t, err)

	// What the operator's pruning recorded in storage: two runs on hot, one on cold, each
	// beside the backups of its schedule.
	keepTwo := v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](2), MinKeep: ptr.To[int32](1)}
	for _, r := range []catalog.PruneRecord{
		{Schedule: "hot", PrunedAt: now.Add(-10 * time.Minute), Pruned: []catalog.PrunedBackup{{ID: "hot-old", StartedAt: now.Add(-37 * time.Hour), Why: []string{"keepLast 2: 3 newer backups"}}}},
		{Schedule: "hot", PrunedAt: now.Add(-40 * 24 * time.Hour), Pruned: []catalog.PrunedBackup{
			{ID: "hot-older", StartedAt: now.Add(-41 * 24 * time.Hour), Why: []string{"keepLast 2: 4 newer backups"}},
			{ID: "hot-oldest", StartedAt: now.Add(-42 * 24 * time.Hour), Why: []string{"keepLast 2: 5 newer backups"}}}},
	} {
		r.Tenant, r.TenantUID, r.RetentionPolicy, r.RetentionPolicyGeneration, r.Rules, r.TimeZone, r.DecidedAt = "acme", uid, "keep-two", 1, keepTwo, "UTC", r.PrunedAt
		r.Due = len(r.Pruned)
		// The older pruning's manager was killed before its record: a later look completed it.
		r.Interrupted = len(r.Pruned) == 2
		_, err := catalog.WritePruneRecord(ctx, stores["hot-bucket"], r)
		must(t, err)
	}
	_, err = catalog.WritePruneRecord(ctx, stores["cold-bucket"], catalog.PruneRecord{Tenant: "acme", TenantUID: uid, Schedule: "cold", RetentionPolicy: "keep-two",
		RetentionPolicyGeneration: 1, Rules: keepTwo, TimeZone: "UTC", DecidedAt: now.Add(-5 * 24 * time.Hour), PrunedAt: now.Add(-5 * 24 * time.Hour), Due: 1,
		Pruned: []catalog.PrunedBackup{{ID: "cold-old", StartedAt: now.Add(-9 * 24 * time.Hour), Why: []string{"keepLast 2: 2 newer backups"}}}})
	must(t, err)
	// An earlier customer's record under its own UID is not this customer's.
	_, err = catalog.WritePruneRecord(ctx, stores["hot-bucket"], catalog.PruneRecord{Tenant: "acme", TenantUID: "old-uid", Schedule: "hot", PrunedAt: now.AddDate(-1, 0, 0),
		Pruned: []catalog.PrunedBackup{{ID: "someone-elses"}}})
	must(t, err)

	// An earlier customer of the same name, erased.
	record, err := builders.ErasureRecordConfigMap(builders.ErasureRecord{Tenant: "acme", TenantUIDs: []string{"old-uid"}, Reason: builders.ErasureTenantDeleted,
		ErasedAt: now.Add(-400 * 24 * time.Hour).Truncate(time.Second), DataKeys: []string{"ffeeddccbbaa99887766554433221100"},
		Locations: []builders.ErasedLocation{{Location: "s3://hot-bucket", BackupsUnreadableCount: 7}}}, opts)
	must(t, err)
	apply(t, record)

	// What the operator's pruning said.
	must(t, k8s.Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "acme.pruned", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Tenant", Name: "acme", APIVersion: v1alpha1.GroupVersion.String(), UID: tn.UID},
		Reason:         "BackupsPruned", Message: "Pruned 1 backups of schedule hot by RetentionPolicy keep-two: hot-old", Type: corev1.EventTypeNormal,
		LastTimestamp: metav1.NewTime(now.Add(-10 * time.Minute)), FirstTimestamp: metav1.NewTime(now.Add(-10 * time.Minute))}))
	return tn, stores, manifests
}

func openFrom(stores map[string]storage.Store) func(context.Context, v1alpha1.BackupStorage) (storage.Store, error) {
	return func(_ context.Context, s v1alpha1.BackupStorage) (storage.Store, error) {
		if store, ok := stores[s.S3.Bucket]; ok {
			return store, nil
		}
		return nil, &storage.UnreachableError{Location: s.S3.Bucket, Err: fmt.Errorf("no such bucket")}
	}
}

func TestGatherReportsEachPromiseAsSetUp(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	tn, stores, manifests := setUp(t, ctx, now)
	src := evidence.Sources{Client: k8s, OperatorNamespace: operatorNamespace, OpenStorage: openFrom(stores), Now: func() time.Time { return now }}
	r, err := evidence.Gather(ctx, src, "acme")
	must(t, err)

	if r.APIVersion != evidence.APIVersion || r.Tenant.UID != string(tn.UID) || !r.Tenant.Exists || r.Tenant.Namespace != "tenant-acme" {
		t.Errorf("tenant = %+v", r.Tenant)
	}
	if len(r.Sections) != len(evidence.SectionIDs) {
		t.Fatalf("%d sections, want %d", len(r.Sections), len(evidence.SectionIDs))
	}
	wantStatus := map[string]evidence.Status{
		evidence.SectionIdentity: evidence.StatusMet, evidence.SectionEnvironment: evidence.StatusMet, evidence.SectionAccess: evidence.StatusMet,
		evidence.SectionDatabase: evidence.StatusMet, evidence.SectionFirewall: evidence.StatusMet, evidence.SectionCertificate: evidence.StatusMet,
		// cold's newest backup is 72h old, 26h allowed.
		evidence.SectionBackups: evidence.StatusNotMet, evidence.SectionEncryption: evidence.StatusMet, evidence.SectionVerification: evidence.StatusMet,
		evidence.SectionRetention: evidence.StatusMet, evidence.SectionRegions: evidence.StatusMet,
		// No physical schedule: restores go to a backup's moment only.
		evidence.SectionPointInTime: evidence.StatusNotMet, evidence.SectionUptime: evidence.StatusMet,
		evidence.SectionErasureRequests: evidence.StatusMet, evidence.SectionErasureRecords: evidence.StatusMet,
	}
	for i, id := range evidence.SectionIDs {
		s := r.Sections[i]
		if s.ID != id {
			t.Errorf("section %d is %s, want %s", i, s.ID, id)
		}
		if s.Status != wantStatus[id] {
			t.Errorf("section %s: status %s (%s), want %s", id, s.Status, s.Reason, wantStatus[id])
		}
		if s.Reason == "" || len(s.Proof) == 0 {
			t.Errorf("section %s has no reason or no proof: %+v", id, s)
		}
	}
	if r.Summary != (evidence.Summary{Met: 13, NotMet: 2}) {
		t.Errorf("summary = %+v", r.Summary)
	}

	fact := func(section, key, want string) {
		t.Helper()
		got, ok := r.Section(section).Fact(key)
		if !ok || got != want {
			t.Errorf("%s.%s = %q (found %v), want %q", section, key, got, ok, want)
		}
	}
	fact(evidence.SectionIdentity, "uid", string(tn.UID))
	fact(evidence.SectionIdentity, "createdAt", tn.CreationTimestamp.UTC().Format(time.RFC3339))
	fact(evidence.SectionEnvironment, "podSecurity", "restricted")
	fact(evidence.SectionAccess, "admins", "User alice")
	fact(evidence.SectionAccess, "viewers", "Group auditors")
	fact(evidence.SectionAccess, "editors", "none")
	fact(evidence.SectionDatabase, "version", "17")
	fact(evidence.SectionDatabase, "tlsOnly", "yes")
	fact(evidence.SectionFirewall, "defaultDeny", "yes")
	fact(evidence.SectionFirewall, "openPorts", "443")
	fact(evidence.SectionFirewall, "allowedCIDRs", "203.0.113.0/24")
	fact(evidence.SectionCertificate, "dnsNames", "acme.example.com, www.acme.example.com")
	fact(evidence.SectionCertificate, "issued", "yes")
	fact(evidence.SectionEncryption, "dataKeyID", "00112233445566778899aabbccddeeff")
	fact(evidence.SectionRegions, "allowedRegions", "eu-west-1, eu-central-1")
	fact(evidence.SectionUptime, "objective", "99.9")
	fact(evidence.SectionErasureRequests, "succeeded", "1")
	fact(evidence.SectionErasureRecords, "erasures", "1")
	if ns, _ := r.Section(evidence.SectionFirewall).Fact("allowedNamespaces"); !strings.Contains(ns, "ingress-nginx") {
		t.Errorf("firewall namespaces = %q, want ingress-nginx among them", ns)
	}
	if rules := r.Section(evidence.SectionFirewall).Table("rules"); rules == nil || !hasRow(rules, map[string]string{"policy": "allow-egress", "direction": "out", "ports": "443/TCP"}) {
		t.Errorf("firewall rules lack the egress rule: %+v", rules)
	}

	// Backups: every stored backup with its checksum and size, the verification, freshness.
	stored := r.Section(evidence.SectionBackups).Table("stored")
	if stored == nil || len(stored.Rows) != 4 {
		t.Fatalf("stored backups = %+v, want 4", stored)
	}
	for id, m := range manifests {
		if !hasRow(stored, map[string]string{"id": id, "sha256": m.Object.SHA256, "sizeBytes": fmt.Sprint(m.Object.Size)}) {
			t.Errorf("stored backups lack %s with sha256 %s", id, m.Object.SHA256)
		}
	}
	if !hasRow(stored, map[string]string{"id": "hot-0", "signature": "unsigned, accepted by policy"}) || !strings.HasPrefix(rowOf(stored, "id", "hot-0")["verified"], "trial restore passed") {
		t.Errorf("hot-0's verification or signature not shown: %+v", rowOf(stored, "id", "hot-0"))
	}
	fresh := r.Section(evidence.SectionBackups).Table("freshness")
	if !hasRow(fresh, map[string]string{"schedule": "hot", "fresh": "yes", "lastBackupID": "hot-0", "source": "storage listing"}) ||
		!hasRow(fresh, map[string]string{"schedule": "cold", "fresh": "no", "lastBackupID": "cold-0"}) {
		t.Errorf("freshness = %+v", fresh.Rows)
	}
	if reason := r.Section(evidence.SectionBackups).Reason; !strings.Contains(reason, "cold") || strings.Contains(reason, "hot") {
		t.Errorf("backups reason = %q, want cold named as stale and hot not", reason)
	}
	if keys := r.Section(evidence.SectionEncryption).Table("keys"); !hasRow(keys, map[string]string{"schedule": "hot", "key": "tenant key 00112233445566778899aabbccddeeff", "backups": "3", "encryption": "age"}) {
		t.Errorf("keys = %+v", keys.Rows)
	}
	if checks := r.Section(evidence.SectionVerification).Table("checks"); !hasRow(checks, map[string]string{"schedule": "hot", "backupID": "hot-0", "kind": "trial restore", "result": "passed"}) ||
		!hasRow(checks, map[string]string{"schedule": "cold", "result": "never checked"}) {
		t.Errorf("checks = %+v", checks.Rows)
	}
	// Retention: keepLast 2 keeps hot-0 and hot-1 and would delete hot-2; the status says so too.
	decisions := r.Section(evidence.SectionRetention).Table("decisions")
	if !hasRow(decisions, map[string]string{"id": "hot-2", "decision": "delete at the next pruning"}) || !hasRow(decisions, map[string]string{"id": "hot-1", "decision": "keep"}) {
		t.Errorf("retention decisions = %+v", decisions.Rows)
	}
	if !hasRow(r.Section(evidence.SectionRetention).Table("nextPrune"), map[string]string{"schedule": "hot", "nextPrune": "hot-2"}) {
		t.Errorf("nextPrune = %+v", r.Section(evidence.SectionRetention).Table("nextPrune").Rows)
	}
	if pruned := r.Section(evidence.SectionRetention).Table("pruned"); pruned == nil || len(pruned.Rows) != 1 || !strings.Contains(pruned.Rows[0]["message"], "hot-old") {
		t.Errorf("pruned events = %+v", pruned)
	}
	if why := rowOf(decisions, "id", "hot-2")["reasons"]; why != "no rule keeps it: keepLast 2: 2 newer backups" {
		t.Errorf("why hot-2 is deleted next: %q", why)
	}
	// What was pruned, read from the records in both buckets, newest first; not the earlier
	// customer's.
	records := r.Section(evidence.SectionRetention).Table("pruneRecords")
	var deletedIDs []string
	for _, row := range records.Rows {
		deletedIDs = append(deletedIDs, row["id"])
	}
	if strings.Join(deletedIDs, ",") != "hot-old,cold-old,hot-older,hot-oldest" {
		t.Errorf("deleted backups recorded: %v, want hot-old, cold-old, hot-older, hot-oldest", deletedIDs)
	}
	if !hasRow(records, map[string]string{"id": "hot-old", "schedule": "hot", "prunedAt": now.Add(-10 * time.Minute).Format(time.RFC3339),
		"startedAt": now.Add(-37 * time.Hour).Format(time.RFC3339), "why": "keepLast 2: 3 newer backups",
		"policy": "RetentionPolicy keep-two, generation 1, days cut in UTC", "storage": "s3://hot-bucket?endpoint=s3.eu-west-1.example.com&region=eu-west-1"}) {
		t.Errorf("the record of hot-old: %+v", rowOf(records, "id", "hot-old"))
	}
	if got := rowOf(records, "id", "hot-oldest")["prunedAt"]; got != now.Add(-40*24*time.Hour).Format(time.RFC3339)+" at the latest (the pruner was stopped before it recorded them)" {
		t.Errorf("an interrupted pruning's time: %q, want it said to be when a later look found them gone", got)
	}
	fact(evidence.SectionRetention, "pruneRecords", "3 prunings, 4 backups deleted in those read")
	if kept, _ := r.Section(evidence.SectionRetention).Fact("recordsKept"); !strings.Contains(kept, now.AddDate(1, 0, 31).Format("2006-01-02")) {
		t.Errorf("records kept: %q, want until a year and 31 days from now", kept)
	}
	// The restore and the request it replayed.
	restores := r.Section(evidence.SectionErasureRequests).Table("restores")
	if restores == nil || len(restores.Rows) != 1 {
		t.Fatalf("restores = %+v, want the one recorded", restores)
	}
	if row := restores.Rows[0]; row["database"] != "app" || row["replayed"] != "1" || !strings.HasPrefix(row["requests"], "forget-42 (") ||
		row["ledger"] != "replayed before the restore committed" || !strings.Contains(row["restored"], "backup hot-2 of schedule hot") {
		t.Errorf("restore row = %+v", row)
	}
	fact(evidence.SectionErasureRequests, "restoresWithoutReplay", "0")
	if regions := r.Section(evidence.SectionRegions).Table("locations"); !hasRow(regions, map[string]string{"schedule": "cold", "region": "eu-central-1", "allowed": "yes"}) {
		t.Errorf("regions = %+v", regions.Rows)
	}
	if windows := r.Section(evidence.SectionUptime).Table("windows"); !hasRow(windows, map[string]string{"window": "last 30 days", "measured": "99.95", "objective": "99.9"}) {
		t.Errorf("uptime windows = %+v", windows.Rows)
	}
	// Erasure requests show the subject as a fingerprint, never the subject.
	requests := r.Section(evidence.SectionErasureRequests).Table("requests")
	if !hasRow(requests, map[string]string{"name": "forget-42", "phase": "Succeeded", "subject": evidence.SubjectFingerprint("customer-42@example.com"), "replays": "1"}) {
		t.Errorf("erasure requests = %+v", requests.Rows)
	}
	if !hasRow(r.Section(evidence.SectionErasureRecords).Table("erasures"), map[string]string{"tenantUID": "old-uid", "unreadable": "7", "dataKeys": "ffeeddccbbaa99887766554433221100"}) {
		t.Errorf("erasure records = %+v", r.Section(evidence.SectionErasureRecords).Table("erasures").Rows)
	}

	var js, md bytes.Buffer
	must(t, evidence.JSON(&js, r))
	must(t, evidence.Markdown(&md, r))
	for _, out := range []string{js.String(), md.String()} {
		if strings.Contains(out, "customer-42@example.com") {
			t.Error("the report spells out an erasure request's subject")
		}
	}
	if err := evidence.ValidateJSON(t, js.Bytes()); err != nil {
		t.Errorf("the gathered report does not match docs/evidence.schema.json: %v", err)
	}
	var back map[string]any
	must(t, json.Unmarshal(js.Bytes(), &back))
	if back["apiVersion"] != evidence.APIVersion {
		t.Errorf("apiVersion = %v", back["apiVersion"])
	}
	var page bytes.Buffer
	must(t, evidence.HTML(&page, r))
	if dir := os.Getenv("EVIDENCE_SAMPLE_DIR"); dir != "" {
		// For people reviewing the format: the demo tenant's report in every format.
		must(t, os.WriteFile(dir+"/acme.md", md.Bytes(), 0o644))
		must(t, os.WriteFile(dir+"/acme.html", page.Bytes(), 0o644))
		must(t, os.WriteFile(dir+"/acme.json", js.Bytes(), 0o644))
	}
	if !strings.Contains(md.String(), "## 7. Backups: NOT MET") {
		t.Errorf("markdown lacks the backups verdict:\n%s", md.String())
	}
	for _, want := range []string{"### Backups deleted by the retention rules (records in the backup storage)", "| hot-old |", "keepLast 2: 3 newer backups",
		"### Restores and the erasure requests each replayed before it committed", "forget-42 ("} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}

	// A restore made with --ignore-ledger: the promise that erasure survives a restore is not met,
	// and the report says which restore and why.
	_, err = catalog.WriteRestoreRecord(ctx, stores["cold-bucket"], catalog.RestoreRecord{Tenant: "acme", TenantUID: string(tn.UID), RestoredAt: now.Add(-time.Minute),
		Method: catalog.MethodLogical, Schedule: "cold", BackupIDs: []string{"cold-0"}, BackupStartedAt: now.Add(-72 * time.Hour), Database: "scratch",
		IgnoreLedger: true, LedgerNotReplayed: "the erasure ledger of tenant acme cannot be read (entry x is refused: it is not signed)"})
	must(t, err)
	r, err = evidence.Gather(ctx, src, "acme")
	must(t, err)
	erasure := r.Section(evidence.SectionErasureRequests)
	if erasure.Status != evidence.StatusNotMet || !strings.Contains(erasure.Reason, "1 restores did not replay the erasure ledger") || !strings.Contains(erasure.Reason, "scratch") {
		t.Errorf("erasure requests after a restore with --ignore-ledger: %s (%s)", erasure.Status, erasure.Reason)
	}
	if row := rowOf(erasure.Table("restores"), "database", "scratch"); row == nil || !strings.HasPrefix(row["ledger"], "NOT REPLAYED (--ignore-ledger): ") || row["replayed"] != "0" {
		t.Errorf("the restore with --ignore-ledger: %+v", row)
	}
	page.Reset()
	must(t, evidence.HTML(&page, r))
	if !strings.Contains(page.String(), "NOT REPLAYED (--ignore-ledger)") {
		t.Error("the HTML page does not flag the restore made with --ignore-ledger")
	}

	// Without storage, the backup sections rest on the status: the stale cold schedule still
	// shows, and what only storage proves is unknown.
	src.OpenStorage = nil
	r, err = evidence.Gather(ctx, src, "acme")
	must(t, err)
	if s := r.Section(evidence.SectionBackups); s.Status != evidence.StatusNotMet || len(s.Table("stored").Rows) != 0 {
		t.Errorf("backups without storage: %s (%s), %d stored rows", s.Status, s.Reason, len(s.Table("stored").Rows))
	}
	if s := r.Section(evidence.SectionEncryption); s.Status != evidence.StatusUnknown {
		t.Errorf("encryption without storage: %s (%s), want unknown", s.Status, s.Reason)
	}

	// A firewall without its default deny is reported as not met.
	must(t, k8s.Delete(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-acme", Name: builders.PolicyDefaultDeny}}))
	r, err = evidence.Gather(ctx, src, "acme")
	must(t, err)
	if s := r.Section(evidence.SectionFirewall); s.Status != evidence.StatusNotMet || !strings.Contains(s.Reason, "default-deny") {
		t.Errorf("firewall without default deny: %s (%s)", s.Status, s.Reason)
	}
	if v, _ := r.Section(evidence.SectionFirewall).Fact("defaultDeny"); v != "no" {
		t.Errorf("defaultDeny = %q after deleting it", v)
	}
}

// A Tenant that is gone leaves only its records: the report says so and shows the erasure.
func TestGatherDeletedTenantShowsItsErasure(t *testing.T) {
	ctx := context.Background()
	erasedAt := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	record, err := builders.ErasureRecordConfigMap(builders.ErasureRecord{Tenant: "gone", TenantUIDs: []string{"gone-uid"}, Reason: builders.ErasureTenantDeleted,
		ErasedAt: erasedAt, DataKeys: []string{"0123456789abcdef0123456789abcdef"}, Locations: []builders.ErasedLocation{{Location: "s3://b", BackupsUnreadableCount: 3, BackupsDeletedCount: 1}}}, opts)
	must(t, err)
	apply(t, record)
	r, err := evidence.Gather(ctx, evidence.Sources{Client: k8s, OperatorNamespace: operatorNamespace}, "gone")
	must(t, err)
	if r.Tenant.Exists || r.Tenant.UID != "" {
		t.Errorf("tenant = %+v, want one that does not exist", r.Tenant)
	}
	for _, s := range r.Sections {
		want := evidence.StatusUnknown
		if s.ID == evidence.SectionErasureRecords {
			want = evidence.StatusMet
		}
		if s.Status != want {
			t.Errorf("section %s: %s (%s), want %s", s.ID, s.Status, s.Reason, want)
		}
	}
	if !hasRow(r.Section(evidence.SectionErasureRecords).Table("erasures"), map[string]string{"tenantUID": "gone-uid", "erasedAt": "2026-03-01T10:00:00Z", "unreadable": "3", "deleted": "1"}) {
		t.Errorf("erasures = %+v", r.Section(evidence.SectionErasureRecords).Table("erasures").Rows)
	}
	var js bytes.Buffer
	must(t, evidence.JSON(&js, r))
	if err := evidence.ValidateJSON(t, js.Bytes()); err != nil {
		t.Errorf("report of a deleted tenant does not match the schema: %v", err)
	}
}

func hasRow(tbl *evidence.Table, want map[string]string) bool {
	if tbl == nil {
		return false
	}
	for _, row := range tbl.Rows {
		match := true
		for k, v := range want {
			if row[k] != v {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func rowOf(tbl *evidence.Table, key, value string) map[string]string {
	for _, row := range tbl.Rows {
		if row[key] == value {
			return row
		}
	}
	return nil
}
