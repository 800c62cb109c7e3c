package chart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// The tests in this file act as the operator's ServiceAccount, through impersonation, on the real
// API server with the chart's RBAC (the ClusterRole generated from the +kubebuilder:rbac markers,
// its binding, the leader-election Role) and the chart's ValidatingAdmissionPolicies installed.
// The operator's code does not run: each request it makes is replayed with the builders' objects,
// the way the controllers send it (server-side apply under the field owner tenant-operator with
// force, merge patches, deletes), and then what a stolen token would try is refused.

const (
	confinePolicy = "tenant-operator-confine-operator"
	// fieldOwner is the operator's field manager (controllers.FieldOwner).
	fieldOwner = client.FieldOwner("tenant-operator")
)

// operatorGroups are the groups the API server gives the operator's ServiceAccount.
var operatorGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNamespace}

// installOperator installs what the chart gives the operator (its ServiceAccount, ClusterRole and
// binding, leader-election Role and binding) and every admission policy of the chart, labels the
// operator's namespace to enforce Pod Security restricted as install.md says, and returns a
// client acting as the operator once the API server enforces the confining policy.
func installOperator(t *testing.T, c client.Client) client.Client {
	t.Helper()
	createOrUpdate(t, c, object(t, &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
		}},
	}))
	for _, obj := range render(t, valueSets[0]) {
		switch obj.GetKind() {
		case "ServiceAccount", "ClusterRoleBinding", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			createOrUpdate(t, c, obj)
		case "ClusterRole":
			if obj.GetName() == releaseName {
				createOrUpdate(t, c, obj)
			}
		}
	}
	op := clientAs(t, operatorSA, operatorGroups...)
	// RBAC and the policies load asynchronously: wait until a Secret in kube-system, which RBAC
	// lets the operator create, is refused by the policy.
	eventually(t, 30*time.Second, func() error {
		err := op.Create(context.Background(), labelledSecret("kube-system", "probe"), client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+confinePolicy+"'") {
			return nil
		}
		return fmt.Errorf("the confining policy is not enforced yet: %v", err)
	})
	return op
}

// labelledSecret is a Secret carrying the operator's label.
func labelledSecret(namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Secret")
	u.SetNamespace(namespace)
	u.SetName(name)
	u.SetLabels(map[string]string{builders.LabelManagedBy: builders.ManagedByValue})
	_ = unstructured.SetNestedStringMap(u.Object, map[string]string{"k": "djE="}, "data")
	return u
}

// operatorOptions are the builders' options of the operator installed by the chart's defaults.
func operatorOptions() builders.Options {
	opts := builders.DefaultOptions()
	opts.OperatorNamespace = releaseNamespace
	opts.DefaultIssuer = v1alpha1.IssuerReference{Name: "shared-ca", Kind: "ClusterIssuer"}
	return opts
}

// confinedTenant is a Tenant with users of every kind and a backup policy, so that every part
// the operator makes for a tenant is made.
func confinedTenant(name, policy string) *v1alpha1.Tenant {
	tenant := tenantFor(name, []string{name + ".example.com"}, name+"-admin")
	// The API server gives a created Tenant its own UID; the builders need one before.
	sum := sha256.Sum256([]byte(name))
	tenant.UID = types.UID("00000000-0000-4000-8000-" + hex.EncodeToString(sum[:6]))
	tenant.Spec.Access.Editors = []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name + "-editor"}}
	tenant.Spec.Access.Viewers = []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name + "-viewers"}}
	tenant.Spec.Firewall.Egress = []v1alpha1.EgressRule{{ToCIDRs: []string{"203.0.113.0/24"}, Ports: []int32{443}}}
	tenant.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy}
	return tenant
}

// samplePolicy is config/samples' BackupPolicy (two schedules, weekly drills) under another name.
func samplePolicy(t *testing.T, name string) *v1alpha1.BackupPolicy {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "samples", "tenancy_v1alpha1_backuppolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	policy := &v1alpha1.BackupPolicy{}
	if err := yaml.UnmarshalStrict(data, policy); err != nil {
		t.Fatal(err)
	}
	policy.Name = name
	return policy
}

// tenancyObject is a Tenant or BackupPolicy as the platform operator writes it: no status.
func tenancyObject(t *testing.T, obj any) *unstructured.Unstructured {
	t.Helper()
	switch o := obj.(type) {
	case *v1alpha1.Tenant:
		o = o.DeepCopy()
		o.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Tenant"}
		obj = o
	case *v1alpha1.BackupPolicy:
		o = o.DeepCopy()
		o.TypeMeta = metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "BackupPolicy"}
		obj = o
	}
	u := object(t, obj)
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u
}

// operatorRequests sends requests as the operator and collects the refused ones.
type operatorRequests struct {
	t      *testing.T
	op     client.Client
	failed []string
}

func (r *operatorRequests) check(what string, err error) {
	r.t.Helper()
	if err != nil {
		r.failed = append(r.failed, fmt.Sprintf("%s: %v", what, err))
	}
}

// apply sends an apply configuration as the operator's ssa.Applier does: a server-side apply
// patch under the operator's field owner, with force.
func (r *operatorRequests) apply(ac any) {
	r.t.Helper()
	u := object(r.t, ac)
	data, err := json.Marshal(u)
	if err != nil {
		r.t.Fatal(err)
	}
	r.check("apply "+key(u), r.op.Patch(context.Background(), u, client.RawPatch(types.ApplyPatchType, data), fieldOwner, client.ForceOwnership))
}

// mergePatch sends a JSON merge patch, as client.MergeFrom does, to the object or its status.
func (r *operatorRequests) mergePatch(gvk, namespace, name, patch string, status bool) {
	r.t.Helper()
	u := &unstructured.Unstructured{}
	apiVersion, kind, _ := strings.Cut(gvk, " ")
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	p := client.RawPatch(types.MergePatchType, []byte(patch))
	var err error
	if status {
		err = r.op.Status().Patch(context.Background(), u, p, fieldOwner)
	} else {
		err = r.op.Patch(context.Background(), u, p, fieldOwner)
	}
	r.check(fmt.Sprintf("merge patch %s %s/%s %s", kind, namespace, name, patch), err)
}

func (r *operatorRequests) delete(gvk, namespace, name string, opts ...client.DeleteOption) {
	r.t.Helper()
	u := &unstructured.Unstructured{}
	apiVersion, kind, _ := strings.Cut(gvk, " ")
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	r.check(fmt.Sprintf("delete %s %s/%s", kind, namespace, name), client.IgnoreNotFound(r.op.Delete(context.Background(), u, opts...)))
}

func (r *operatorRequests) create(obj any) {
	r.t.Helper()
	u := object(r.t, obj)
	r.check("create "+key(u), r.op.Create(context.Background(), u))
}

// replay makes, as the operator, everything it makes for tenant and policy, in the controllers'
// order, then deletes it as a Retain and a Delete deletion do; it fails the test for each request
// refused. admin is the cluster administrator, who makes the platform operator's objects.
func replay(t *testing.T, admin, op client.Client, tenant *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy) {
	t.Helper()
	ctx := context.Background()
	r := &operatorRequests{t: t, op: op}
	opts := operatorOptions()
	ns := builders.NamespaceName(tenant)
	const tenantGVK, nsGVK = "tenancy.tenantops.io/v1alpha1 Tenant", "v1 Namespace"

	// What the platform operator made: the Tenant and its policy (controllers' tests make them
	// the same way), and an uptime history in the layout before the shards.
	createOrUpdate(t, admin, tenancyObject(t, tenant))
	createOrUpdate(t, admin, tenancyObject(t, policy))
	createOrUpdate(t, admin, object(t, builders.UptimeHistory(tenant, opts, []byte{1})))
	// And a shard of another count, which the first save replaces.
	createOrUpdate(t, admin, object(t, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: uptime-history-4-0\n  namespace: %s\n"+
		"  labels: {app.kubernetes.io/name: tenant-operator, app.kubernetes.io/component: uptime-history}\n", releaseNamespace)))

	// Tenant controller: the finalizer first.
	r.mergePatch(tenantGVK, "", tenant.Name, `{"metadata":{"finalizers":["`+v1alpha1.TenantFinalizer+`"]}}`, false)

	// reconcileNamespace: the namespace, then its quota and limits; a second apply after a
	// change of hostnames updates it.
	r.apply(builders.Namespace(tenant))
	changed := tenant.DeepCopy()
	changed.Spec.Hostnames = append(changed.Spec.Hostnames, "www."+tenant.Name+".example.com")
	r.apply(builders.Namespace(changed))
	r.apply(builders.ResourceQuota(tenant))
	r.apply(builders.LimitRange(tenant))

	// reconcileAccess: bindings to admin, edit and view (bind), the reader role and its binding.
	for _, b := range builders.RoleBindings(tenant) {
		r.apply(b)
	}
	r.apply(builders.TenantReaderClusterRole(tenant))
	r.apply(builders.TenantReaderClusterRoleBinding(tenant))

	// reconcileDatabase: configuration, services, credentials (the probe role's password in the
	// operator's namespace, its verifier in the tenant's), certificates, the CA, the StatefulSet.
	verifier, err := builders.ScramSHA256Verifier("probe-password", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ac := range []any{
		builders.DatabaseConfigMap(tenant), builders.DatabaseService(tenant), builders.DatabaseHeadlessService(tenant),
		builders.DatabaseSecret(tenant, "password"), builders.DatabaseBackupSecret(tenant, "backup-password"),
		builders.ProbeSecret(tenant, "probe-password", verifier, opts), builders.DatabaseProbeSecret(tenant, verifier),
		builders.DatabaseCAConfigMap(tenant, "-----BEGIN CERTIFICATE-----"),
		builders.DatabaseCertificate(tenant, opts), builders.TenantCertificate(tenant, opts),
		builders.DatabaseStatefulSet(tenant, opts),
	} {
		r.apply(ac)
	}

	// reconcileFirewall.
	for _, p := range builders.NetworkPolicies(tenant, opts) {
		r.apply(p)
	}

	// BackupPolicy controller: the signing key, then the policy's status.
	privatePEM, publicKey, err := catalog.GenerateSigningKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r.apply(builders.BackupSigningSecret(policy, privatePEM, []string{publicKey}, opts))
	// A rotation rewrites it.
	r.apply(builders.BackupSigningSecret(policy, privatePEM, []string{publicKey, publicKey}, opts))
	r.mergePatch("tenancy.tenantops.io/v1alpha1 BackupPolicy", "", policy.Name, `{"status":{"tenants":1}}`, true)

	// reconcileBackups: the jobs' Secret, the tenant's data key (made, then rotated over the
	// version read) and a backup and a verification CronJob per schedule, in the operator's
	// namespace.
	r.apply(builders.BackupJobSecret(tenant, "backup-password", "-----BEGIN CERTIFICATE-----", opts))
	dataKey, err := datakey.Generate(policy.Spec.Encryption.Recipients)
	if err != nil {
		t.Fatal(err)
	}
	r.apply(builders.DataKeySecret(tenant, policy, dataKey, nil, time.Now(), opts))
	r.apply(builders.DataKeySecret(tenant, policy, dataKey, []string{dataKey.ID}, time.Now(), opts))
	var cronJobs []string
	for _, s := range policy.Spec.Schedules {
		backup, err := builders.BackupCronJob(tenant, policy, s, 12*time.Hour, opts)
		if err != nil {
			t.Fatal(err)
		}
		verify, err := builders.VerifyCronJob(tenant, policy, s, 7*24*time.Hour, opts)
		if err != nil {
			t.Fatal(err)
		}
		r.apply(backup)
		r.apply(verify)
		cronJobs = append(cronJobs, builders.BackupCronJobName(tenant, s.Name), builders.VerifyCronJobName(tenant, s.Name))
	}

	// The uptime Monitor's store, the operator's own code: it reads the shards and the earlier
	// layout's ConfigMaps, writes the shards, and deletes the earlier ones.
	store := &uptime.ConfigMapStore{Client: op, Reader: op, Namespace: releaseNamespace, Owner: fieldOwner}
	histories, err := store.Load(ctx)
	r.check("load the uptime histories", err)
	if histories == nil {
		histories = map[string][]byte{}
	}
	histories[tenant.Name] = []byte{1, 2, 3}
	r.check("save the uptime histories", store.Save(ctx, histories))
	histories[tenant.Name] = []byte{1, 2, 3, 4}
	r.check("save the uptime histories again", store.Save(ctx, histories))
	for _, name := range []string{builders.UptimeHistoryName(tenant), "uptime-history-4-0"} {
		if err := admin.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: name}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
			r.check("delete the uptime history "+name+" the shards replace", fmt.Errorf("still there: %v", err))
		}
	}

	// Events: about the Tenant (cluster-scoped, so in default) through events.k8s.io, a series
	// patched; leader election's core Event about its Lease; the Lease itself.
	event := eventV1("default", fmt.Sprintf("%s.%d", tenant.Name, time.Now().UnixNano()), v1alpha1.GroupVersion.String(), "Tenant", tenant.Name)
	r.create(event)
	r.mergePatch("events.k8s.io/v1 Event", "default", object(t, event).GetName(),
		`{"series":{"count":2,"lastObservedTime":"`+metav1.NowMicro().Format(metav1.RFC3339Micro)+`"}}`, false)
	// client-go's LeaseLock: get, create, then update to renew and to release.
	lease := "confine-" + tenant.Name
	r.create(fmt.Sprintf(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":%q,"namespace":%q},
		"spec":{"holderIdentity":"tenant-operator-0","leaseDurationSeconds":15}}`, lease, releaseNamespace))
	held := &unstructured.Unstructured{}
	held.SetAPIVersion("coordination.k8s.io/v1")
	held.SetKind("Lease")
	r.check("get Lease "+lease, op.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: lease}, held))
	_ = unstructured.SetNestedField(held.Object, "", "spec", "holderIdentity")
	r.check("update Lease "+lease, op.Update(ctx, held))
	r.create(fmt.Sprintf(`{"apiVersion":"v1","kind":"Event","metadata":{"name":"%s.%d","namespace":%q},
		"involvedObject":{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","name":%q,"namespace":%q},
		"reason":"LeaderElection","message":"tenant-operator-1 became leader","type":"Normal","source":{"component":"tenant-operator"}}`,
		lease, time.Now().UnixNano(), releaseNamespace, lease, releaseNamespace))

	// The status, once per pass.
	r.mergePatch(tenantGVK, "", tenant.Name, `{"status":{"namespace":"`+ns+`"}}`, true)

	// Metrics: each scrape is authorized with a TokenReview and a SubjectAccessReview.
	r.create(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"not-a-token"}}`)
	r.create(`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"prometheus","nonResourceAttributes":{"path":"/metrics","verb":"get"}}}`)

	// A firewall rule no longer asked for goes.
	r.delete("networking.k8s.io/v1 NetworkPolicy", ns, builders.PolicyEgress)

	// Deletion with Retain: the namespace marked, the users' bindings gone, the database stopped,
	// the cluster-scoped role and binding, the CronJobs and the operator-namespace Secrets
	// removed. A Tenant of the same name adopts the namespace again.
	r.mergePatch(nsGVK, "", ns, `{"metadata":{"labels":{"`+builders.LabelRetained+`":"true"}}}`, false)
	for _, name := range builders.RoleBindingNames() {
		r.delete("rbac.authorization.k8s.io/v1 RoleBinding", ns, name)
	}
	r.mergePatch("apps/v1 StatefulSet", ns, builders.DatabaseName(tenant), `{"spec":{"replicas":0}}`, false)
	r.delete("rbac.authorization.k8s.io/v1 ClusterRoleBinding", "", builders.TenantReaderName(tenant))
	r.delete("rbac.authorization.k8s.io/v1 ClusterRole", "", builders.TenantReaderName(tenant))
	for _, name := range cronJobs {
		r.delete("batch/v1 CronJob", releaseNamespace, name, client.PropagationPolicy(metav1.DeletePropagationBackground))
	}
	r.delete("v1 Secret", releaseNamespace, builders.BackupJobSecretName(tenant))
	r.delete("v1 Secret", releaseNamespace, builders.ProbeSecretName(tenant))
	r.mergePatch(nsGVK, "", ns, `{"metadata":{"labels":{"`+builders.LabelRetained+`":null}}}`, false)

	// Deletion with Delete, an erasure: the namespace goes, a backup Job still running is
	// deleted, the erasure is recorded, the data key's Secret goes, then the finalizer.
	r.delete(nsGVK, "", ns)
	createOrUpdate(t, admin, object(t, fmt.Sprintf(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"backup-%s-run","namespace":%q,"labels":{"app.kubernetes.io/managed-by":"tenant-operator","tenancy.tenantops.io/tenant":%q}},
		"spec":{"template":{"spec":{"restartPolicy":"Never","automountServiceAccountToken":false,"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},
		"containers":[{"name":"agent","image":"agent","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}}}`, tenant.Name, releaseNamespace, tenant.Name)))
	r.delete("batch/v1 Job", releaseNamespace, "backup-"+tenant.Name+"-run", client.PropagationPolicy(metav1.DeletePropagationForeground))
	record, err := builders.ErasureRecordConfigMap(builders.ErasureRecord{Tenant: tenant.Name, TenantUIDs: []string{string(tenant.UID)}, Reason: builders.ErasureTenantDeleted}, opts)
	if err != nil {
		t.Fatal(err)
	}
	r.apply(record)
	r.delete("v1 Secret", releaseNamespace, builders.DataKeySecretName(tenant))
	r.mergePatch(tenantGVK, "", tenant.Name, `{"metadata":{"finalizers":null}}`, false)

	for _, f := range r.failed {
		t.Errorf("the operator is refused what reconciling a tenant needs: %s", f)
	}
	// The platform operator deletes the Tenant, which the finalizer no longer holds.
	if err := admin.Delete(ctx, tenancyObject(t, tenant)); err != nil {
		t.Errorf("delete Tenant %s: %v", tenant.Name, err)
	}
}

// refusal is the component expected to refuse a request, and a part of its message.
type refusal struct {
	by   string // "policy", "RBAC" or "RBAC escalation"
	want string
}

func byPolicy(want string) refusal { return refusal{"policy", want} }

// assertRefused checks that err is the refusal r describes.
func assertRefused(t *testing.T, err error, r refusal) {
	t.Helper()
	if err == nil {
		t.Fatalf("allowed; want refused by %s with %q", r.by, r.want)
	}
	msg := err.Error()
	switch r.by {
	case "policy":
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(msg, "ValidatingAdmissionPolicy '"+confinePolicy+"'") {
			t.Fatalf("refused by something else than %s: %v", confinePolicy, err)
		}
	case "RBAC":
		if !apierrors.IsForbidden(err) || !strings.Contains(msg, `User "`+operatorSA+`" cannot`) {
			t.Fatalf("refused by something else than RBAC: %v", err)
		}
	case "RBAC escalation":
		if !apierrors.IsForbidden(err) || !strings.Contains(msg, "is attempting to grant RBAC permissions not currently held") {
			t.Fatalf("refused by something else than RBAC's escalation check: %v", err)
		}
	}
	if !strings.Contains(msg, r.want) {
		t.Fatalf("the refusal does not say %q:\n%v", r.want, err)
	}
}

// TestOperatorConfinedToItsObjects acts as the operator's ServiceAccount, with the ClusterRole
// the chart binds today and the chart's admission policies: every request that reconciling and
// deleting a tenant makes passes; what a stolen token would do next is refused, each by the
// component named; with more rights bound by mistake, the policy still holds; and what neither
// RBAC nor admission can narrow (reads) is shown as it is, for the threat table.
func TestOperatorConfinedToItsObjects(t *testing.T) {
	setLoggerOnce()
	c := apiServer(t)
	op := installOperator(t, c)
	ctx := context.Background()
	opts := operatorOptions()

	t.Run("reconciling and deleting a tenant passes", func(t *testing.T) {
		replay(t, c, op, confinedTenant("confined", "confined-backups"), samplePolicy(t, "confined-backups"))
	})

	// What the refusals aim at: a live tenant, the platform's storage credentials in the
	// operator's namespace, and objects nobody labelled.
	victim := confinedTenant("victim", "victim-backups")
	victimNS := setUpTenant(t, c, victim)
	createOrUpdate(t, c, tenancyObject(t, victim))
	createOrUpdate(t, c, object(t, builders.DatabaseStatefulSet(victim, opts)))
	for _, obj := range []string{
		fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: backup-storage-hot, namespace: %s}\nstringData: {AWS_ACCESS_KEY_ID: k, AWS_SECRET_ACCESS_KEY: s}\n", releaseNamespace),
		"apiVersion: v1\nkind: Secret\nmetadata: {name: app-secret, namespace: default}\nstringData: {k: v}\n",
		fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config, namespace: %s}\ndata: {k: v}\n", victimNS),
		fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tenant-operator-dashboard, namespace: %s}\ndata: {k: v}\n", releaseNamespace),
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: test-unlabelled}\nrules: []\n",
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: test-unlabelled}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{kind: User, name: auditor, apiGroup: rbac.authorization.k8s.io}]\n",
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: team-payments}\n",
	} {
		createOrUpdate(t, c, object(t, obj))
	}

	labelled := func(manifest string) *unstructured.Unstructured {
		u := object(t, manifest)
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[builders.LabelManagedBy] = builders.ManagedByValue
		u.SetLabels(labels)
		return u
	}
	existing := func(manifest string) *unstructured.Unstructured {
		u := object(t, manifest)
		if err := c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			t.Fatalf("get %s: %v", key(u), err)
		}
		return u
	}
	statefulSetIn := func(namespace string) *unstructured.Unstructured {
		u := object(t, builders.DatabaseStatefulSet(victim, opts))
		u.SetNamespace(namespace)
		return u
	}
	cronJob := func(mutate func(spec map[string]any)) *unstructured.Unstructured {
		ac, err := builders.BackupCronJob(victim, samplePolicy(t, "victim-backups"), samplePolicy(t, "victim-backups").Spec.Schedules[0], time.Hour, opts)
		if err != nil {
			t.Fatal(err)
		}
		u := object(t, ac)
		if mutate != nil {
			spec, _, _ := unstructured.NestedMap(u.Object, "spec", "jobTemplate", "spec", "template", "spec")
			mutate(spec)
			_ = unstructured.SetNestedMap(u.Object, spec, "spec", "jobTemplate", "spec", "template", "spec")
		}
		return u
	}
	binding := func(kind, namespace, name, roleRef string) *unstructured.Unstructured {
		meta := "{name: " + name + "}"
		if namespace != "" {
			meta = "{name: " + name + ", namespace: " + namespace + "}"
		}
		return labelled(fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: %s\nmetadata: %s\n"+
			"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %q}\n"+
			"subjects: [{kind: User, name: mallory, apiGroup: rbac.authorization.k8s.io}]\n", kind, meta, roleRef))
	}
	readerRole := func(name, rules string, labels map[string]string) *unstructured.Unstructured {
		u := labelled(fmt.Sprintf("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: %q}\nrules: %s\n", name, rules))
		l := u.GetLabels()
		for k, v := range labels {
			l[k] = v
		}
		u.SetLabels(l)
		return u
	}
	ns := func(name string, labels map[string]string) *unstructured.Unstructured {
		u := labelled(fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", name))
		l := u.GetLabels()
		for k, v := range labels {
			l[k] = v
		}
		u.SetLabels(l)
		return u
	}
	restricted := map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}

	type attempt struct {
		name string
		do   func() error
		want refusal
	}
	dry := client.DryRunAll
	create := func(u *unstructured.Unstructured) func() error {
		return func() error { return op.Create(ctx, u, dry) }
	}
	// A change sent as a merge patch, as the operator sends its changes (it has no update verb
	// once the proposed markers are in), without a resourceVersion: controllers (the
	// StatefulSet's status) may write meanwhile.
	update := func(u *unstructured.Unstructured, mutate func(*unstructured.Unstructured)) func() error {
		return func() error {
			changed := u.DeepCopy()
			mutate(changed)
			return op.Patch(ctx, changed, client.MergeFrom(u), dry)
		}
	}
	annotate := func(u *unstructured.Unstructured) { u.SetAnnotations(map[string]string{"touched": "by the operator"}) }
	del := func(u *unstructured.Unstructured) func() error {
		return func() error { return op.Delete(ctx, u, dry) }
	}
	attempts := []attempt{
		// Secrets outside tenant namespaces and its own, and tokens.
		{"create a Secret in kube-system", create(labelledSecret("kube-system", "stolen")),
			byPolicy("secrets kube-system/stolen: namespace kube-system is neither a tenant's nor tenant-operator's own (tenant-operator-system)")},
		{"patch a Secret in default", func() error {
			u := existing("apiVersion: v1\nkind: Secret\nmetadata: {name: app-secret, namespace: default}\n")
			return op.Patch(ctx, u, client.RawPatch(types.MergePatchType, []byte(`{"stringData":{"k":"overwritten"}}`)), dry)
		}, byPolicy("secrets default/app-secret: namespace default is neither a tenant's nor tenant-operator's own")},
		{"create a service-account-token Secret in its own namespace", create(func() *unstructured.Unstructured {
			u := labelledSecret(releaseNamespace, "token")
			u.Object["type"] = "kubernetes.io/service-account-token"
			u.SetAnnotations(map[string]string{"kubernetes.io/service-account.name": releaseName})
			return u
		}()), byPolicy("a Secret of type kubernetes.io/service-account-token is refused")},
		{"create a service-account-token Secret in a tenant namespace", create(func() *unstructured.Unstructured {
			u := labelledSecret(victimNS, "token")
			u.Object["type"] = "kubernetes.io/service-account-token"
			u.SetAnnotations(map[string]string{"kubernetes.io/service-account.name": "default"})
			return u
		}()), byPolicy("a Secret of type kubernetes.io/service-account-token is refused")},
		{"create a Secret without its label in its own namespace", create(func() *unstructured.Unstructured {
			u := labelledSecret(releaseNamespace, "unlabelled")
			u.SetLabels(nil)
			return u
		}()), byPolicy("secrets tenant-operator-system/unlabelled: tenant-operator writes only objects labelled app.kubernetes.io/managed-by=tenant-operator")},

		// Objects it did not create: the storage credentials beside it, a tenant's own ConfigMap,
		// cluster roles, bindings and namespaces.
		{"delete the platform's storage credentials", del(existing("apiVersion: v1\nkind: Secret\nmetadata: {name: backup-storage-hot, namespace: " + releaseNamespace + "}\n")),
			byPolicy("secrets tenant-operator-system/backup-storage-hot is not tenant-operator's (it has no label app.kubernetes.io/managed-by=tenant-operator)")},
		{"overwrite the platform's storage credentials, adding its label", func() error {
			u := existing("apiVersion: v1\nkind: Secret\nmetadata: {name: backup-storage-hot, namespace: " + releaseNamespace + "}\n")
			patch := `{"metadata":{"labels":{"` + builders.LabelManagedBy + `":"` + builders.ManagedByValue + `"}},"stringData":{"AWS_ACCESS_KEY_ID":"mine"}}`
			return op.Patch(ctx, u, client.RawPatch(types.MergePatchType, []byte(patch)), dry)
		}, byPolicy("secrets tenant-operator-system/backup-storage-hot is not tenant-operator's")},
		{"update a tenant's own ConfigMap", update(existing("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config, namespace: "+victimNS+"}\n"), annotate),
			byPolicy("configmaps " + victimNS + "/app-config is not tenant-operator's")},
		{"delete a tenant's own ConfigMap", del(existing("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config, namespace: " + victimNS + "}\n")),
			byPolicy("configmaps " + victimNS + "/app-config is not tenant-operator's")},
		{"update a ConfigMap of its namespace that is not an uptime history", update(existing("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tenant-operator-dashboard, namespace: "+releaseNamespace+"}\n"), annotate),
			byPolicy("configmaps tenant-operator-system/tenant-operator-dashboard is not tenant-operator's")},
		{"write an uptime history shard without its label", create(object(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: uptime-history-8-9, namespace: "+releaseNamespace+"}\n")),
			byPolicy("tenant-operator writes ConfigMaps without its managed-by label only for the uptime histories")},
		{"delete an unlabelled ClusterRole", del(existing("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: test-unlabelled}\n")),
			byPolicy("clusterroles test-unlabelled is not tenant-operator's")},
		{"delete cluster-admin", del(existing("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: cluster-admin}\n")),
			byPolicy("clusterroles cluster-admin is not tenant-operator's")},
		{"update an unlabelled ClusterRoleBinding", update(existing("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: test-unlabelled}\n"), annotate),
			byPolicy("clusterrolebindings test-unlabelled is not tenant-operator's")},
		{"delete the cluster-admin binding", del(existing("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: cluster-admin}\n")),
			byPolicy("clusterrolebindings cluster-admin is not tenant-operator's")},
		{"delete an unlabelled Namespace", del(existing("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-payments}\n")),
			byPolicy("namespaces team-payments is not tenant-operator's")},
		{"label kube-system a tenant namespace", update(existing("apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n"), func(u *unstructured.Unstructured) {
			u.SetLabels(map[string]string{builders.LabelManagedBy: builders.ManagedByValue, builders.LabelTenant: "system"})
		}), byPolicy("namespaces kube-system is not tenant-operator's")},

		// Bindings: to cluster-admin RBAC refuses already; to roles the operator holds (its own)
		// or may bind (admin), the policy does.
		{"bind cluster-admin in a tenant namespace", create(binding("RoleBinding", victimNS, "tenant-admin-2", "cluster-admin")),
			refusal{"RBAC escalation", `{APIGroups:["*"], Resources:["*"], Verbs:["*"]}`}},
		{"bind its own ClusterRole in a tenant namespace", create(binding("RoleBinding", victimNS, "tenant-admin-2", releaseName)),
			byPolicy("tenant-operator binds tenant users to the ClusterRoles admin, edit and view only, not ClusterRole tenant-operator")},
		{"bind its own ClusterRole cluster-wide", create(binding("ClusterRoleBinding", "", "tenancy:tenant-reader:victim-2", releaseName)),
			byPolicy("tenant-operator binds cluster-wide only the ClusterRole tenancy:tenant-reader:<tenant> of the same name, not ClusterRole tenant-operator")},
		{"bind admin in kube-system", create(binding("RoleBinding", "kube-system", "tenant-admin", "admin")),
			byPolicy("namespace kube-system is neither a tenant's")},
		{"bind admin in its own namespace (its storage credentials)", create(binding("RoleBinding", releaseNamespace, "tenant-admin", "admin")),
			byPolicy("tenant-operator writes rolebindings in tenant namespaces only")},
		{"a reader ClusterRole that reads Secrets", create(readerRole("tenancy:tenant-reader:victim-2", "[{apiGroups: [''], resources: [secrets], verbs: [get, list]}]", nil)),
			byPolicy("grants get on named Tenants and nothing else")},
		{"a reader ClusterRole that aggregates into admin", create(readerRole("tenancy:tenant-reader:victim-2",
			"[{apiGroups: [tenancy.tenantops.io], resources: [tenants], resourceNames: [victim], verbs: [get]}]",
			map[string]string{"rbac.authorization.k8s.io/aggregate-to-admin": "true"})),
			byPolicy("and aggregates into no other role")},
		{"a ClusterRole of another name", create(readerRole("secret-reader", "[{apiGroups: [tenancy.tenantops.io], resources: [tenants], resourceNames: [victim], verbs: [get]}]", nil)),
			byPolicy("a ClusterRole tenant-operator writes is tenancy:tenant-reader:<tenant>")},

		// Workloads: pods run only in tenant namespaces (the database) and its own (backups),
		// only where Pod Security restricted is enforced, with no token.
		{"a StatefulSet in default", create(statefulSetIn("default")),
			byPolicy("statefulsets default/postgres: namespace default is neither a tenant's")},
		{"a StatefulSet in its own namespace", create(statefulSetIn(releaseNamespace)),
			byPolicy("tenant-operator writes statefulsets in tenant namespaces only")},
		{"a CronJob in a tenant namespace", create(func() *unstructured.Unstructured { u := cronJob(nil); u.SetNamespace(victimNS); return u }()),
			byPolicy("tenant-operator writes cronjobs in its own namespace tenant-operator-system only")},
		{"a CronJob whose pods get its token", create(cronJob(func(spec map[string]any) {
			spec["serviceAccountName"] = releaseName
			spec["automountServiceAccountToken"] = true
		})), byPolicy("the pods tenant-operator runs hold no service account token")},
		{"a CronJob whose pods project a token", create(cronJob(func(spec map[string]any) {
			spec["volumes"] = append(spec["volumes"].([]any), map[string]any{"name": "token", "projected": map[string]any{
				"sources": []any{map[string]any{"serviceAccountToken": map[string]any{"path": "token"}}}}})
		})), byPolicy("the pods tenant-operator runs hold no service account token")},
		{"a Deployment in a tenant namespace", create(labelled("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: miner, namespace: " + victimNS + "}\n" +
			"spec: {selector: {matchLabels: {app: miner}}, template: {metadata: {labels: {app: miner}}, spec: {containers: [{name: m, image: miner}]}}}\n")),
			refusal{"RBAC", "cannot create resource \"deployments\""}},
		{"a Pod in a tenant namespace", create(labelled("apiVersion: v1\nkind: Pod\nmetadata: {name: miner, namespace: " + victimNS + "}\nspec: {containers: [{name: m, image: miner}]}\n")),
			refusal{"RBAC", "cannot create resource \"pods\""}},

		// Traffic: the operator is exempt from the tenants' traffic policy, so this one holds its
		// own Services.
		{"a Service with external IPs", create(labelled("apiVersion: v1\nkind: Service\nmetadata: {name: mitm, namespace: " + victimNS + "}\nspec: {ports: [{port: 443}], externalIPs: [10.96.0.1]}\n")),
			byPolicy("tenant-operator writes only ClusterIP Services without externalIPs")},
		{"a LoadBalancer Service", create(labelled("apiVersion: v1\nkind: Service\nmetadata: {name: lb, namespace: " + victimNS + "}\nspec: {type: LoadBalancer, ports: [{port: 5432}]}\n")),
			byPolicy("tenant-operator writes only ClusterIP Services without externalIPs")},

		// Certificates: the tenant's hostnames and its Services' names, in its namespace, never a CA.
		{"a Certificate for another name", create(labelled(certificateManifest(victimNS, "steal", "dnsNames: [victim.example.com, bank.example.org]"))),
			byPolicy("filling the Secret of the Certificate's own name, never a CA; not bank.example.org")},
		{"a Certificate for another namespace's Service", create(labelled(certificateManifest(victimNS, "steal", "dnsNames: [postgres.tenant-other.svc]"))),
			byPolicy("; not postgres.tenant-other.svc")},
		{"a CA Certificate", create(labelled(certificateManifest(victimNS, "ca", "dnsNames: [victim.example.com]\nisCA: true"))),
			byPolicy("never a CA")},
		{"a Certificate filling another Secret", create(func() *unstructured.Unstructured {
			u := labelled(certificateManifest(victimNS, "tls", "dnsNames: [victim.example.com]"))
			_ = unstructured.SetNestedField(u.Object, "app-secret", "spec", "secretName")
			return u
		}()),
			byPolicy("filling the Secret of the Certificate's own name")},
		{"a Certificate in its own namespace", create(labelled(certificateManifest(releaseNamespace, "tenant-operator-webhook-2", "dnsNames: [tenant-operator-webhook.tenant-operator-system.svc]"))),
			byPolicy("tenant-operator asks, in tenant namespaces only, for certificates")},

		// Namespaces: only tenants', named after them, enforcing restricted.
		{"a namespace that does not enforce Pod Security", create(ns("tenant-lax", map[string]string{builders.LabelTenant: "lax"})),
			byPolicy("enforces Pod Security restricted at the latest version")},
		{"a namespace named otherwise than its tenant", create(ns("kube-shadow", mergeLabels(restricted, map[string]string{builders.LabelTenant: "shadow"}))),
			byPolicy("a namespace tenant-operator writes is a tenant's, named tenant-<tenant>")},
		{"lift Pod Security on a tenant namespace", update(existing("apiVersion: v1\nkind: Namespace\nmetadata: {name: "+victimNS+"}\n"), func(u *unstructured.Unstructured) {
			l := u.GetLabels()
			l["pod-security.kubernetes.io/enforce"] = "privileged"
			u.SetLabels(l)
		}), byPolicy("enforces Pod Security restricted")},
		{"drop its label from a tenant's StatefulSet (handing it to the tenant admin)", update(existing("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: postgres, namespace: "+victimNS+"}\n"), func(u *unstructured.Unstructured) {
			l := u.GetLabels()
			delete(l, builders.LabelManagedBy)
			u.SetLabels(l)
		}), byPolicy("tenant-operator writes only objects labelled app.kubernetes.io/managed-by=tenant-operator")},

		// Its own kinds: status and the finalizer only.
		{"change a Tenant's spec", func() error {
			patch := `{"spec":{"access":{"admins":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"mallory"}]}}}`
			return op.Patch(ctx, tenancyObject(t, victim), client.RawPatch(types.MergePatchType, []byte(patch)), dry)
		}, byPolicy("tenant-operator changes only the status of its kinds and the metadata (finalizer) of Tenants, never their spec")},

		// Events: about its kinds in default, anything in tenants' namespaces and its own.
		{"an event in kube-system", create(object(t, eventV1("kube-system", "x.1", "v1", "Pod", "kube-apiserver"))),
			byPolicy("events kube-system/x.1: namespace kube-system is neither a tenant's")},
		{"an event about a Pod in default", create(object(t, eventV1("default", "x.2", "v1", "Pod", "web"))),
			byPolicy("events default/x.2: in namespace default tenant-operator records events about its own cluster-scoped kinds only")},
	}
	for _, a := range attempts {
		t.Run("refused: "+a.name, func(t *testing.T) { assertRefused(t, a.do(), a.want) })
	}

	t.Run("with more rights bound by mistake the policy still holds", func(t *testing.T) {
		// A ClusterRole someone bound to the operator beside the chart's: workloads, exec,
		// tokens, scale, everywhere.
		createOrUpdate(t, c, object(t, &rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: "test-operator-extra"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods", "pods/exec", "pods/ephemeralcontainers", "serviceaccounts", "serviceaccounts/token"}, Verbs: []string{"get", "create", "update", "patch"}},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments", "daemonsets", "statefulsets/scale"}, Verbs: []string{"get", "create", "update", "patch"}},
				{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"create"}},
				{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create"}},
			},
		}))
		createOrUpdate(t, c, object(t, &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: "test-operator-extra"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test-operator-extra"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: releaseName, Namespace: releaseNamespace}},
		}))
		t.Cleanup(func() {
			_ = c.Delete(ctx, object(t, "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: test-operator-extra}\n"))
		})
		pod := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"postgres-0","namespace":%q,"labels":{%q:%q}},
			"spec":{"securityContext":{"runAsNonRoot":true,"runAsUser":999,"seccompProfile":{"type":"RuntimeDefault"}},
			"containers":[{"name":"postgres","image":"postgres:17","securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`,
			victimNS, builders.LabelManagedBy, builders.ManagedByValue)
		// The database pod, made by kube-controller-manager's StatefulSet controller, to exec into.
		eventually(t, 30*time.Second, func() error {
			return c.Get(ctx, client.ObjectKey{Namespace: victimNS, Name: "postgres-0"}, &corev1.Pod{})
		})
		deployment := labelled("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: miner, namespace: " + victimNS + "}\n" +
			"spec: {selector: {matchLabels: {app: miner}}, template: {metadata: {labels: {app: miner}}, spec: {containers: [{name: m, image: miner}]}}}\n")
		eventually(t, 10*time.Second, func() error { // RBAC takes a moment to see the binding
			err := op.Create(ctx, deployment.DeepCopy(), dry)
			if err != nil && strings.Contains(err.Error(), confinePolicy) {
				return nil
			}
			return fmt.Errorf("RBAC does not let the Deployment reach the policy yet: %v", err)
		})
		for _, a := range []attempt{
			{"a Deployment in a tenant namespace", create(deployment),
				byPolicy("deployments " + victimNS + "/miner: tenant-operator writes deployments in its own namespace")},
			{"a Pod in its own namespace", create(func() *unstructured.Unstructured {
				u := object(t, pod)
				u.SetNamespace(releaseNamespace)
				u.SetName("miner")
				return u
			}()),
				byPolicy("tenant-operator runs pods only through")},
			{"a Job in a tenant namespace", create(labelled("apiVersion: batch/v1\nkind: Job\nmetadata: {name: miner, namespace: " + victimNS + "}\n" +
				"spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: miner}]}}}\n")),
				byPolicy("tenant-operator writes jobs in its own namespace")},
			{"a Job whose pods get its token", create(labelled("apiVersion: batch/v1\nkind: Job\nmetadata: {name: miner, namespace: " + releaseNamespace + "}\n" +
				"spec: {template: {spec: {restartPolicy: Never, containers: [{name: m, image: miner}]}}}\n")),
				byPolicy("the pods tenant-operator runs hold no service account token")},
			{"a ServiceAccount", create(labelled("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: backdoor, namespace: " + victimNS + "}\n")),
				byPolicy("and makes no ServiceAccounts")},
			{"exec into the database pod", func() error {
				return op.SubResource("exec").Create(ctx, object(t, pod), &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "v1", "kind": "PodExecOptions", "command": []any{"psql"}, "container": "postgres", "stdout": true}})
			}, byPolicy("pods/exec " + victimNS + "/postgres-0: tenant-operator never execs, attaches, port-forwards or proxies")},
			{"a token for a tenant's ServiceAccount", func() error {
				sa := object(t, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: "+victimNS+"}\n")
				return op.SubResource("token").Create(ctx, sa, &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": map[string]any{"audiences": []any{"https://kubernetes.default.svc"}}}})
			}, byPolicy("serviceaccounts/token " + victimNS + "/default: tenant-operator writes no subresource")},
			{"scale the database", func() error {
				sts := object(t, "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: postgres, namespace: "+victimNS+"}\n")
				return op.SubResource("scale").Patch(ctx, sts, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":0}}`)), dry)
			}, byPolicy("statefulsets/scale " + victimNS + "/postgres: tenant-operator writes no subresource")},
			{"an ephemeral container in the database pod", func() error {
				p := object(t, pod)
				// Pod Security compliant, so that only this policy stands in its way.
				patch := `{"spec":{"ephemeralContainers":[{"name":"debug","image":"busybox",
					"securityContext":{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}}}]}}`
				return op.SubResource("ephemeralcontainers").Patch(ctx, p, client.RawPatch(types.StrategicMergePatchType, []byte(patch)), dry)
			}, byPolicy("pods/ephemeralcontainers " + victimNS + "/postgres-0: tenant-operator writes no subresource")},
			{"a certificate signing request", create(labelled("apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {name: kubelet-impostor}\n" +
				"spec: {request: " + testCSR(t) + ", signerName: kubernetes.io/kube-apiserver-client, usages: [client auth]}\n")),
				byPolicy("certificatesigningrequests kubelet-impostor: the only cluster-scoped objects tenant-operator writes are")},
		} {
			t.Run(a.name, func(t *testing.T) { assertRefused(t, a.do(), a.want) })
		}
	})

	t.Run("what neither RBAC nor admission narrows: reads", func(t *testing.T) {
		// Admission never sees reads, and RBAC cannot select by label or namespace name: the
		// operator's token reads any Secret and lists them cluster-wide (its cache selects by
		// label, its token does not have to). docs/security-model.md lists it; when this fails,
		// the breadth shrank: update the threat table.
		if err := op.Get(ctx, client.ObjectKey{Namespace: "default", Name: "app-secret"}, &corev1.Secret{}); err != nil {
			t.Errorf("the operator's token cannot read a Secret in default any more (%v): update the threat table", err)
		}
		if err := op.List(ctx, &corev1.SecretList{}); err != nil {
			t.Errorf("the operator's token cannot list Secrets cluster-wide any more (%v): update the threat table", err)
		}
	})
}

// eventV1 is an events.k8s.io Event as the operator's recorder writes it, about an object.
func eventV1(namespace, name, apiVersion, kind, regarding string) string {
	return fmt.Sprintf(`{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":%q,"namespace":%q},
		"eventTime":%q,"reportingController":"tenant-operator","reportingInstance":"tenant-operator-0","action":"NamespaceReady",
		"reason":"NamespaceReady","type":"Normal","note":"NamespaceReady is True",
		"regarding":{"apiVersion":%q,"kind":%q,"name":%q}}`,
		name, namespace, metav1.NowMicro().Format(metav1.RFC3339Micro), apiVersion, kind, regarding)
}

// mergeLabels is a new map with the labels of both.
func mergeLabels(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// testCSR is a certificate request for a client certificate named like a node, PEM and then
// base64 as the API takes it: valid, so that only admission can refuse it.
func testCSR(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:worker-1", Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestOperatorRoleIsNarrow: the operator's generated ClusterRole grants no update where it sends
// only server-side applies and merge patches, no delete where it deletes nothing, no create of
// Jobs or Deployments (CronJobs make backup Jobs; the restore and erasure Jobs and the WAL
// receivers live in the operator's namespace, whose Role grants their writes), nothing on
// tenants/finalizers (it sets no owner references) and no read of its kinds' status. The replays
// and the running operator (TestOperatorConfinedToItsObjects, TestOperatorRunsConfined) prove
// these rules are enough.
func TestOperatorRoleIsNarrow(t *testing.T) {
	generated := typed[rbacv1.ClusterRole](t, decodeFile(t, "config/rbac/role.yaml")[0])
	for _, check := range []struct{ verb, resource, group string }{
		{"update", "statefulsets", "apps"}, {"update", "namespaces", ""}, {"update", "secrets", ""}, {"delete", "services", ""},
		{"delete", "statefulsets", "apps"}, {"delete", "certificates", "cert-manager.io"}, {"update", "tenants", "tenancy.tenantops.io"},
		{"update", "tenants/finalizers", "tenancy.tenantops.io"}, {"get", "tenants/status", "tenancy.tenantops.io"},
		{"create", "jobs", "batch"}, {"patch", "jobs", "batch"}, {"create", "pods", ""}, {"create", "deployments", "apps"},
	} {
		if grants(generated.Rules, check.group, check.resource, check.verb, nil) {
			t.Errorf("the operator's role grants %s on %s", check.verb, check.resource)
		}
	}
}

// grants tells whether rules grant verb on resource in group (for every name in names, or
// without names).
func grants(rules []rbacv1.PolicyRule, group, resource, verb string, names []string) bool {
	for _, r := range rules {
		if !slices.Contains(r.APIGroups, group) || !slices.Contains(r.Resources, resource) || !slices.Contains(r.Verbs, verb) {
			continue
		}
		if len(r.ResourceNames) == 0 {
			return true
		}
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(r.ResourceNames, n) }) {
			return true
		}
	}
	return false
}

// TestConfinePolicyNamesTheOperator checks that the confining policy matches the ServiceAccount
// the operator runs as, whatever the release's name and namespace, in the chart and in
// config/default, and nobody else: the whole policy hangs on that one name.
func TestConfinePolicyNamesTheOperator(t *testing.T) {
	acme, err := decode(run(t, tool(t, "helm"), "template", "acme", "charts/tenant-operator", "--namespace", "platform", "--kube-version", kubeVersion))
	if err != nil {
		t.Fatal(err)
	}
	for name, objs := range map[string][]*unstructured.Unstructured{
		"chart defaults":                 render(t, valueSets[0]),
		"chart release acme in platform": acme,
		"kustomize build config/default": kustomizeBuild(t, "config/default"),
	} {
		t.Run(name, func(t *testing.T) {
			sa := one(t, objs, "ServiceAccount")
			deployment := typed[appsv1.Deployment](t, one(t, objs, "Deployment"))
			if deployment.Spec.Template.Spec.ServiceAccountName != sa.GetName() || deployment.Namespace != sa.GetNamespace() {
				t.Fatalf("the operator runs as %s/%s, not the ServiceAccount %s", deployment.Namespace, deployment.Spec.Template.Spec.ServiceAccountName, key(sa))
			}
			var policy *admissionregistrationv1.ValidatingAdmissionPolicy
			for _, obj := range only(objs, "ValidatingAdmissionPolicy") {
				if obj.GetName() == confinePolicy {
					policy = typed[admissionregistrationv1.ValidatingAdmissionPolicy](t, obj)
				}
			}
			if policy == nil {
				t.Fatalf("no ValidatingAdmissionPolicy %s", confinePolicy)
			}
			want := fmt.Sprintf("request.userInfo.username == 'system:serviceaccount:%s:%s'", sa.GetNamespace(), sa.GetName())
			if len(policy.Spec.MatchConditions) != 1 || policy.Spec.MatchConditions[0].Expression != want {
				t.Errorf("match conditions %+v, want only %s", policy.Spec.MatchConditions, want)
			}
			if policy.Spec.FailurePolicy == nil || *policy.Spec.FailurePolicy != admissionregistrationv1.Fail {
				t.Errorf("failurePolicy %v, want Fail", policy.Spec.FailurePolicy)
			}
			bound := false
			for _, obj := range only(objs, "ValidatingAdmissionPolicyBinding") {
				b := typed[admissionregistrationv1.ValidatingAdmissionPolicyBinding](t, obj)
				bound = bound || (b.Spec.PolicyName == confinePolicy && slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}))
			}
			if !bound {
				t.Errorf("no binding denies with %s", confinePolicy)
			}
		})
	}
}
