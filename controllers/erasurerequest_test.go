package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/test/controlplane"
	"github.com/tenantops/tenant-operator/test/stack"
)

// erasureAppSQL is the tenant's application as its database would hold it: tables owned by the
// application's role and an idempotent erasure function; app.forget_loudly fails, quoting the
// subject, as a database error might.
const erasureAppSQL = `
CREATE SCHEMA app AUTHORIZATION app;
SET ROLE app;
CREATE TABLE app.customers (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE app.orders (id serial PRIMARY KEY, customer text NOT NULL REFERENCES app.customers, item text);
INSERT INTO app.customers VALUES ('alice', 'Alice A.'), ('bob', 'Bob B.');
INSERT INTO app.orders (customer, item) VALUES ('alice', 'tea'), ('bob', 'coffee');
CREATE FUNCTION app.forget(subject text) RETURNS void LANGUAGE sql AS $$
  DELETE FROM app.orders WHERE customer = subject;
  DELETE FROM app.customers WHERE id = subject;
$$;
CREATE FUNCTION app.forget_loudly(subject text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'customer % is under legal hold', subject;
END $$;
RESET ROLE;
`

// TestErasureRequestIsCarriedOutAndRecorded files ErasureRequests against a real API server and
// carries their Jobs out as their pods would, on real PostgreSQL 18 and S3 (no job controller or
// kubelet runs here: the test ends the Jobs and writes the pods' termination messages as they
// would). A request waits (Pending) for what its Job needs, then its Job in the operator's
// namespace runs `forget` with the function, the subject and the tenant's application role, as
// the agent expects: run, it deletes the subject's rows and appends a signed ledger entry to every
// storage location, whose key the request reports once the Job completes. A failing function
// makes the request Failed with the agent's reason, the subject kept out of it. Admission refuses
// malformed and changed requests by field; a request outside a tenant's namespace, or of a tenant
// without a BackupPolicy, is Failed NotPossible; a tenant's admin may file requests in their own
// namespace only, and cannot set their status.
func TestErasureRequestIsCarriedOutAndRecorded(t *testing.T) {
	ctx := context.Background()
	s3 := stack.StartS3(t)
	pg := stack.StartPostgres(t, "18")

	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, operatorNamespace, "ledger-s3", map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey})
	s3Storage := func(prefix string) v1alpha1.BackupStorage {
		return v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: s3.Endpoint, Bucket: s3.Bucket, Region: s3.Region, Prefix: prefix, Insecure: true,
			CredentialsSecretRef: v1alpha1.SecretReference{Name: "ledger-s3"}}}
	}
	policy := &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "ledger"},
		Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{
				{Name: "hot", Schedule: "0 */12 * * *", Storage: s3Storage("ledger-hot")},
				{Name: "cold", Schedule: "@daily", Storage: s3Storage("ledger-cold")},
			},
			Encryption: v1alpha1.BackupEncryption{Recipients: []string{identity.Recipient().String()}},
		},
	}

	// The tenant names its BackupPolicy before the policy exists.
	tenant := minimalTenant("forgetful")
	tenant.Spec.Access.Admins = []rbacv1.Subject{user("User", "forgetful-admin")}
	tenant.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy.Name}
	createTenant(t, tenant)
	other := minimalTenant("forgetful-other") // no BackupPolicy: no ledger
	other.Spec.Access.Admins = []rbacv1.Subject{user("User", "other-admin")}
	createTenant(t, other)
	ns := builders.NamespaceName(tenant)
	eventually(t, 20*time.Second, func() error { return k8s.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}) })

	// Admission: each malformed request is refused, naming the field.
	for _, bad := range []struct {
		spec v1alpha1.ErasureRequestSpec
		want []string
	}{
		{v1alpha1.ErasureRequestSpec{Subject: "alice", Function: "App.Forget"}, []string{"spec.function"}},
		{v1alpha1.ErasureRequestSpec{Subject: "alice", Function: "forget"}, []string{"spec.function"}},
		{v1alpha1.ErasureRequestSpec{Subject: "alice", Function: "app.forget; DROP TABLE app.customers"}, []string{"spec.function"}},
		{v1alpha1.ErasureRequestSpec{Subject: "alice", Function: `app."forget"`}, []string{"spec.function"}},
		{v1alpha1.ErasureRequestSpec{Subject: "", Function: "app.forget"}, []string{"spec.subject"}},
		{v1alpha1.ErasureRequestSpec{Subject: strings.Repeat("x", 1025), Function: "app.forget"}, []string{"spec.subject"}},
		// 600 characters, 1200 bytes: the agent (and the ledger) takes at most 1024 bytes.
		{v1alpha1.ErasureRequestSpec{Subject: strings.Repeat("ü", 600), Function: "app.forget"}, []string{"spec.subject", "1024 bytes"}},
		{v1alpha1.ErasureRequestSpec{Subject: "alice\nbob", Function: "app.forget"}, []string{"spec.subject", "control characters"}},
		{v1alpha1.ErasureRequestSpec{Subject: "alice\u0085", Function: "app.forget"}, []string{"spec.subject", "control characters"}},
	} {
		err := k8s.Create(ctx, &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: ns}, Spec: bad.spec})
		if err == nil {
			_ = k8s.Delete(ctx, &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: ns}})
		}
		for _, want := range bad.want {
			if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
				t.Errorf("create %.80q: %v, want a refusal containing %q", bad.spec, err, want)
				break
			}
		}
	}

	// A request waits for the BackupPolicy its ledger lives under.
	alice := &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "forget-alice", Namespace: ns},
		Spec: v1alpha1.ErasureRequestSpec{Subject: "alice", Function: "app.forget"}}
	if err := k8s.Create(ctx, alice); err != nil {
		t.Fatal(err)
	}
	expectErasure(t, alice, v1alpha1.ErasurePhasePending, v1alpha1.ReasonRequestPending, "Waiting for BackupPolicy ledger")
	changed := alice.DeepCopy()
	changed.Spec.Subject = "bob"
	if err := k8s.Update(ctx, changed); err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec: Invalid value") ||
		!strings.Contains(err.Error(), "an erasure request cannot be changed") {
		t.Errorf("changing a request's subject: %v, want a refusal of spec saying it cannot be changed", err)
	}

	// The policy appears; once the tenant's data key and the policy's signing key exist, the next
	// pass (the request's 30 second retry, brought forward here by touching the request) starts
	// the Job.
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			return err
		}
		if policy.Status.Signing == nil || policy.Status.Signing.PublicKey == "" {
			return fmt.Errorf("policy %s has no signing key yet", policy.Name)
		}
		return k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.DataKeySecretName(tenant)}, &corev1.Secret{})
	})
	poke(t, alice)
	expectErasure(t, alice, v1alpha1.ErasurePhaseRunning, v1alpha1.ReasonRequestRunning, "runs app.forget")

	// The Job, as designed: in the operator's namespace, named for the request and labelled with
	// it (an owner reference cannot cross namespaces), its pod through the tenant's firewall
	// without a token, as the application's role.
	job := &batchv1.Job{}
	jobName := builders.ErasureJobName(tenant, alice)
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: jobName}, job); err != nil {
		t.Fatal(err)
	}
	if alice.Status.Job != jobName || !strings.HasPrefix(jobName, "erase-forgetful-forget-alice-") {
		t.Errorf("status.job %q, job %q", alice.Status.Job, jobName)
	}
	for k, v := range map[string]string{builders.LabelManagedBy: builders.ManagedByValue, builders.LabelTenant: tenant.Name,
		builders.LabelComponent: builders.ComponentErasure, builders.LabelErasureRequestNamespace: ns, builders.LabelErasureRequestName: alice.Name} {
		if job.Labels[k] != v {
			t.Errorf("job label %s = %q, want %q (labels %v)", k, job.Labels[k], v, job.Labels)
		}
	}
	if len(job.OwnerReferences) != 0 {
		t.Errorf("job owners %v: a namespaced owner in another namespace is no owner", job.OwnerReferences)
	}
	pod := job.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken || job.Spec.Template.Labels[builders.LabelDatabaseClient] != "true" {
		t.Errorf("erasure pod: token %v, labels %v; want no token and the database-client label", pod.AutomountServiceAccountToken, job.Spec.Template.Labels)
	}
	if job.Spec.BackoffLimit == nil || job.Spec.ActiveDeadlineSeconds == nil || job.Spec.TTLSecondsAfterFinished == nil {
		t.Errorf("job spec %+v: want a backoff limit, a deadline and a TTL", job.Spec)
	}
	args := pod.Containers[0].Args
	joined := " " + strings.Join(args, " ") + " "
	for _, want := range []string{"forget", "--storage " + s3Location(s3, "ledger-hot"), "--storage " + s3Location(s3, "ledger-cold"),
		"--tenant forgetful", "--tenant-uid " + string(tenant.UID), "--call app.forget", "--subject alice",
		"--request forget-alice/" + string(alice.UID), "--termination-log /dev/termination-log", "--signing-key-file"} {
		if !strings.Contains(joined, " "+want+" ") {
			t.Errorf("erasure job args %q lack %q", args, want)
		}
	}
	if args[0] != "forget" || !strings.Contains(joined, " --dsn postgresql://app@postgres."+ns+".svc") {
		t.Errorf("erasure job args %q: want forget, as the application's role on the tenant's database", args)
	}
	appPassword := secretValue(t, ns, builders.DatabaseSecretName(tenant), builders.SecretKeyPassword)
	if got := secretValue(t, operatorNamespace, builders.ErasureJobSecretName(tenant), builders.ErasureSecretKeyPassword); got != appPassword {
		t.Fatal("the erasure Job's Secret does not carry the tenant's application password")
	}
	if env := pod.Containers[0].Env; len(env) == 0 || env[0].Name != "PGPASSWORD" || env[0].ValueFrom == nil || env[0].ValueFrom.SecretKeyRef == nil ||
		env[0].ValueFrom.SecretKeyRef.Name != builders.ErasureJobSecretName(tenant) {
		t.Errorf("erasure pod env %+v: want PGPASSWORD from %s", env, builders.ErasureJobSecretName(tenant))
	}

	// The tenant's database as its pod has it, and the Job's agent run as its pod would.
	pg.Exec(t, "postgres", fmt.Sprintf(`CREATE ROLE app LOGIN PASSWORD '%s'`, appPassword))
	pg.Exec(t, "postgres", `CREATE DATABASE app OWNER app`)
	pg.Exec(t, "app", erasureAppSQL)
	local := podArgs(t, pod, pg)
	var stdout, stderr bytes.Buffer
	if code := backup.RunCommand(ctx, local, &stdout, &stderr); code != 0 {
		t.Fatalf("erasure job's agent exited %d: %s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "not signed") {
		t.Errorf("the ledger entry is not signed: %s", stderr.String())
	}
	var customers string
	query(t, pg.DSNFor("app"), `SELECT string_agg(id, ',' ORDER BY id) FROM app.customers`, &customers)
	if customers != "bob" {
		t.Fatalf("customers after the erasure: %q, want bob alone", customers)
	}
	message, err := os.ReadFile(argValue(local, "--termination-log"))
	if err != nil {
		t.Fatal(err)
	}
	key := string(message)
	trust := catalog.Trust{}
	if pub, err := catalog.ParsePublicKey(policy.Status.Signing.PublicKey); err != nil {
		t.Fatal(err)
	} else {
		trust.Keys = append(trust.Keys, pub)
	}
	for _, prefix := range []string{"ledger-hot", "ledger-cold"} {
		entries, err := catalog.ReadLedger(ctx, openStore(t, s3, prefix), tenant.Name, string(tenant.UID), trust)
		if err != nil || len(entries) != 1 || entries[0].RequestUID != string(alice.UID) {
			t.Fatalf("ledger in %s: %+v, %v; want one entry, signed by the policy's key, of request %s", prefix, entries, err, alice.UID)
		}
		if prefix == "ledger-hot" && entries[0].Key != key {
			t.Errorf("termination message %q, want the first location's entry %q", key, entries[0].Key)
		}
	}

	// The kubelet writes the termination message into the pod's status; the job controller
	// completes the Job.
	terminatePod(t, job, 0, key+"\n")
	finishJob(t, job, true)
	expectErasure(t, alice, v1alpha1.ErasurePhaseSucceeded, v1alpha1.ReasonRequestSucceeded, "in the tenant's erasure ledger")
	expectCondition(t, alice, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonRequestSucceeded, "")
	if alice.Status.LedgerEntry != key || alice.Status.CompletionTime == nil || alice.Status.ObservedGeneration != alice.Generation {
		t.Errorf("status %+v: want ledger entry %q, a completion time and the observed generation", alice.Status, key)
	}

	// A function that fails: the Job fails, the request says why, without the subject.
	loud := &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "forget-second", Namespace: ns},
		Spec: v1alpha1.ErasureRequestSpec{Subject: "bob", Function: "app.forget_loudly"}}
	if err := k8s.Create(ctx, loud); err != nil {
		t.Fatal(err)
	}
	expectErasure(t, loud, v1alpha1.ErasurePhaseRunning, v1alpha1.ReasonRequestRunning, "runs app.forget_loudly")
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.ErasureJobName(tenant, loud)}, job); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := backup.RunCommand(ctx, podArgs(t, job.Spec.Template.Spec, pg), &stdout, &stderr); code == 0 {
		t.Fatalf("a failing function: agent exited 0: %s", stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "nothing was erased") || strings.Contains(last, "bob") {
		t.Fatalf("agent's error line %q: want nothing erased, without the subject", last)
	}
	query(t, pg.DSNFor("app"), `SELECT string_agg(id, ',' ORDER BY id) FROM app.customers`, &customers)
	if customers != "bob" {
		t.Fatalf("customers after a failed erasure: %q, want bob still", customers)
	}
	// As the kubelet reports it under FallbackToLogsOnError: the log's tail, here with the
	// subject the database quoted (a log line the agent did not scrub).
	terminatePod(t, job, 1, stderr.String()+"\nERROR: customer bob is under legal hold\n")
	finishJob(t, job, false)
	expectErasure(t, loud, v1alpha1.ErasurePhaseFailed, v1alpha1.ReasonRequestFailed, "Job "+job.Name+" failed: ")
	expectCondition(t, loud, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonRequestFailed, "app.forget_loudly failed, nothing was erased")
	if c, _ := conditionOf(ctx, loud, v1alpha1.ConditionReady); c == nil || strings.Contains(c.Message, "customer bob") || !strings.Contains(c.Message, "customer <subject> is under legal hold") {
		t.Errorf("Ready %+v: the subject is in the status", c)
	}
	if loud.Status.LedgerEntry != "" || loud.Status.CompletionTime != nil {
		t.Errorf("failed request's status %+v: want no ledger entry or completion time", loud.Status)
	}

	// Outside a tenant's namespace, or for a tenant without a ledger: Failed, NotPossible.
	for _, name := range []string{"not-a-tenant", "tenant-nobody"} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
		stray := &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "forget-alice", Namespace: name},
			Spec: v1alpha1.ErasureRequestSpec{Subject: "alice", Function: "app.forget"}}
		if err := k8s.Create(ctx, stray); err != nil {
			t.Fatal(err)
		}
		expectErasure(t, stray, v1alpha1.ErasurePhaseFailed, v1alpha1.ReasonRequestNotPossible, "Namespace "+name+" is no tenant's")
	}
	eventually(t, 20*time.Second, func() error {
		return k8s.Get(ctx, client.ObjectKey{Name: builders.NamespaceName(other)}, &corev1.Namespace{})
	})
	noLedger := &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "forget-alice", Namespace: builders.NamespaceName(other)},
		Spec: v1alpha1.ErasureRequestSpec{Subject: "alice", Function: "app.forget"}}
	if err := k8s.Create(ctx, noLedger); err != nil {
		t.Fatal(err)
	}
	expectErasure(t, noLedger, v1alpha1.ErasurePhaseFailed, v1alpha1.ReasonRequestNotPossible, "Tenant forgetful-other has no BackupPolicy")
	jobs := &batchv1.JobList{}
	if err := k8s.List(ctx, jobs, client.InNamespace(operatorNamespace), client.MatchingLabels{builders.LabelComponent: builders.ComponentErasure}); err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, j := range jobs.Items {
		if j.Labels[builders.LabelErasureRequestNamespace] != ns {
			made = append(made, j.Name)
		}
	}
	if len(made) != 0 {
		t.Errorf("requests that are not possible made Jobs %v", made)
	}

	// RBAC: the tenant's admin files requests in their namespace only, and cannot forge their
	// outcome or reach the Job.
	installErasureRequestRoles(t)
	expectCondition(t, tenant, v1alpha1.ConditionAccessReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	expectCondition(t, other, v1alpha1.ConditionAccessReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	admin := clientAs(t, "forgetful-admin")
	filed := func(namespace string) *v1alpha1.ErasureRequest {
		return &v1alpha1.ErasureRequest{ObjectMeta: metav1.ObjectMeta{Name: "filed-by-admin", Namespace: namespace},
			Spec: v1alpha1.ErasureRequestSpec{Subject: "carol", Function: "app.forget"}}
	}
	eventually(t, 20*time.Second, func() error { return admin.Create(ctx, filed(ns), client.DryRunAll) })
	if err := admin.Create(ctx, filed(builders.NamespaceName(other)), client.DryRunAll); !apierrors.IsForbidden(err) {
		t.Errorf("admin of forgetful files a request in forgetful-other's namespace: %v, want forbidden", err)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(noLedger), &v1alpha1.ErasureRequest{}); !apierrors.IsForbidden(err) {
		t.Errorf("admin of forgetful reads forgetful-other's request: %v, want forbidden", err)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(alice), &v1alpha1.ErasureRequest{}); err != nil {
		t.Errorf("admin reads their own request: %v", err)
	}
	forged := loud.DeepCopy()
	forged.Status.Phase = v1alpha1.ErasurePhaseSucceeded
	if err := admin.Status().Update(ctx, forged); !apierrors.IsForbidden(err) {
		t.Errorf("admin sets a request's status: %v, want forbidden", err)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(job), &batchv1.Job{}); !apierrors.IsForbidden(err) {
		t.Errorf("admin reads the erasure Job: %v, want forbidden", err)
	}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.ErasureJobSecretName(tenant)}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("admin reads the erasure Job's Secret: %v, want forbidden", err)
	}
}

// expectErasure waits for an ErasureRequest's phase and its Ready condition's reason and message.
func expectErasure(t *testing.T, er *v1alpha1.ErasureRequest, phase, reason, messagePart string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(er), er); err != nil {
			return err
		}
		var ready metav1.Condition
		for _, c := range er.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady {
				ready = c
			}
		}
		if er.Status.Phase != phase || ready.Reason != reason || !strings.Contains(ready.Message, messagePart) || ready.ObservedGeneration != er.Generation {
			return fmt.Errorf("request %s/%s: phase %s, Ready %s/%s %q; want %s, %s containing %q", er.Namespace, er.Name, er.Status.Phase, ready.Status, ready.Reason, ready.Message, phase, reason, messagePart)
		}
		return nil
	})
}

// poke changes an annotation of the request, which makes the controller look at it again.
func poke(t *testing.T, er *v1alpha1.ErasureRequest) {
	t.Helper()
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"annotations":{"test/poked":%q}}}`, time.Now().Format(time.RFC3339Nano)))
	if err := k8s.Patch(context.Background(), er, patch); err != nil {
		t.Fatal(err)
	}
}

// terminatePod makes the Job's pod, ended, as the job controller and the kubelet would leave it:
// its agent container terminated with the exit code and the termination message.
func terminatePod(t *testing.T, job *batchv1.Job, exitCode int32, message string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"batch.kubernetes.io/job-name": job.Name, "job-name": job.Name}
	for k, v := range job.Spec.Template.Labels {
		labels[k] = v
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: job.Namespace, Name: job.Name + "-x7k2p", Labels: labels},
		Spec: *job.Spec.Template.Spec.DeepCopy()}
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	pod.Status.Phase = corev1.PodSucceeded
	if exitCode != 0 {
		pod.Status.Phase = corev1.PodFailed
	}
	c := pod.Spec.Containers[0]
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: c.Name, Image: c.Image, ImageID: c.Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exitCode, Message: message,
			StartedAt: metav1.NewTime(now.Add(-time.Minute)), FinishedAt: now}}}}
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// argValue is the value after flag in args.
func argValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// s3Location is the location string the operator passes the agent for an S3 storage of the
// local server.
func s3Location(s3 *stack.S3, prefix string) string {
	loc, err := builders.StorageLocation(v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{Endpoint: s3.Endpoint, Bucket: s3.Bucket,
		Region: s3.Region, Prefix: prefix, Insecure: true, CredentialsSecretRef: v1alpha1.SecretReference{Name: "ledger-s3"}}})
	if err != nil {
		panic(err)
	}
	return loc
}

var erasureRolesInstalled bool

// installErasureRequestRoles applies config/rbac/erasurerequest_roles.yaml, which the suite does
// not load, and waits for role aggregation to give the built-in admin role its rules.
func installErasureRequestRoles(t *testing.T) {
	t.Helper()
	if erasureRolesInstalled {
		return
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "erasurerequest_roles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Create(context.Background(), u); err != nil {
			t.Fatalf("install %s: %v", u.GetName(), err)
		}
	}
	erasureRolesInstalled = true
	eventually(t, 20*time.Second, func() error {
		role := &rbacv1.ClusterRole{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: "admin"}, role); err != nil {
			return err
		}
		for _, r := range role.Rules {
			if slices.Contains(r.Resources, "erasurerequests") && slices.Contains(r.Verbs, "create") {
				return nil
			}
		}
		return fmt.Errorf("the admin role does not aggregate erasurerequests yet")
	})
}
