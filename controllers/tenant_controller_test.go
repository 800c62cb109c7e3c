package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

func user(kind, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: kind, APIGroup: rbacv1.GroupName, Name: name}
}

func createTenant(t *testing.T, tenant *v1alpha1.Tenant) *v1alpha1.Tenant {
	t.Helper()
	if err := k8s.Create(context.Background(), tenant); err != nil {
		t.Fatalf("create tenant %s: %v", tenant.Name, err)
	}
	return tenant
}

// TestTenantEnvironmentIsCreated: a Tenant becomes a namespace under Pod Security restricted with
// quota and limits, role bindings, a database with credentials, network policies and certificates,
// and its conditions say what is still missing (no kubelet here, so the database pod never runs).
func TestTenantEnvironmentIsCreated(t *testing.T) {
	ctx := context.Background()
	tenant := minimalTenant("envtest-acme")
	tenant.Spec.Access.Admins = []rbacv1.Subject{user("User", "alice")}
	tenant.Spec.Access.Viewers = []rbacv1.Subject{user("User", "victor")}
	createTenant(t, tenant)
	ns := "tenant-envtest-acme"

	expectCondition(t, tenant, v1alpha1.ConditionNamespaceReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, ns)
	expectCondition(t, tenant, v1alpha1.ConditionAccessReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "1 admins, 0 editors, 1 viewers")
	expectCondition(t, tenant, v1alpha1.ConditionFirewallReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "network policies")
	expectCondition(t, tenant, v1alpha1.ConditionRouteReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Ingress for envtest-acme.app.example.com to Service web port 80")
	// No ClusterIssuer "selfsigned" exists in this cluster.
	expectCondition(t, tenant, v1alpha1.ConditionCertificateReady, metav1.ConditionFalse, v1alpha1.ReasonIssuerNotFound, `ClusterIssuer "selfsigned" not found`)
	// The StatefulSet controller creates the claim, but no volume provisioner runs here.
	expectCondition(t, tenant, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonPVCPending, "Volume claim data-postgres-0 is pending")
	expectCondition(t, tenant, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonIssuerNotFound, "CertificateReady")

	namespace := &corev1.Namespace{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "tenancy.tenantops.io/tenant": tenant.Name} {
		if namespace.Labels[k] != v {
			t.Errorf("namespace label %s = %q, want %q", k, namespace.Labels[k], v)
		}
	}
	for _, obj := range []client.Object{&corev1.ResourceQuota{}, &corev1.LimitRange{}, &appsv1.StatefulSet{}, &networkingv1.NetworkPolicy{}, &networkingv1.Ingress{}, &cmapi.Certificate{}, &corev1.Secret{}} {
		list := listOf(obj)
		if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if items, _ := metaItems(list); items == 0 {
			t.Errorf("no %T in %s", obj, ns)
		}
	}

	if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
		t.Fatal(err)
	}
	if tenant.Status.Phase != v1alpha1.TenantPhaseDegraded || tenant.Status.Namespace != ns || tenant.Status.Database == nil || tenant.Status.Database.SecretName == "" {
		t.Errorf("status = phase %q namespace %q database %+v", tenant.Status.Phase, tenant.Status.Namespace, tenant.Status.Database)
	}
	if tenant.Status.ObservedGeneration != tenant.Generation {
		t.Errorf("observedGeneration %d, generation %d", tenant.Status.ObservedGeneration, tenant.Generation)
	}
}

func listOf(obj client.Object) client.ObjectList {
	switch obj.(type) {
	case *corev1.ResourceQuota:
		return &corev1.ResourceQuotaList{}
	case *corev1.LimitRange:
		return &corev1.LimitRangeList{}
	case *appsv1.StatefulSet:
		return &appsv1.StatefulSetList{}
	case *networkingv1.NetworkPolicy:
		return &networkingv1.NetworkPolicyList{}
	case *networkingv1.Ingress:
		return &networkingv1.IngressList{}
	case *cmapi.Certificate:
		return &cmapi.CertificateList{}
	default:
		return &corev1.SecretList{}
	}
}

func metaItems(list client.ObjectList) (int, error) {
	u := &unstructured.UnstructuredList{}
	data, err := yaml.Marshal(list)
	if err != nil {
		return 0, err
	}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		return 0, err
	}
	items, _ := u.Object["items"].([]any)
	return len(items), nil
}

// TestHandEditsAreRevertedAndIdleTenantsCauseNoWrites deletes and edits owned objects by hand; the
// operator puts them back. Then nothing changes, and the tenant sees no writes.
func TestHandEditsAreRevertedAndIdleTenantsCauseNoWrites(t *testing.T) {
	ctx := context.Background()
	tenant := createTenant(t, minimalTenant("envtest-revert"))
	ns := "tenant-envtest-revert"
	expectCondition(t, tenant, v1alpha1.ConditionFirewallReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")

	policies := &networkingv1.NetworkPolicyList{}
	if err := k8s.List(ctx, policies, client.InNamespace(ns)); err != nil || len(policies.Items) == 0 {
		t.Fatalf("list network policies: %v (%d)", err, len(policies.Items))
	}
	victim := policies.Items[0]
	if err := k8s.Delete(ctx, &victim); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		back := &networkingv1.NetworkPolicy{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(&victim), back); err != nil {
			return err
		}
		if back.UID == victim.UID {
			return fmt.Errorf("still the deleted object")
		}
		return nil
	})

	namespace := &corev1.Namespace{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
		t.Fatal(err)
	}
	namespace.Labels["pod-security.kubernetes.io/enforce"] = "privileged"
	if err := k8s.Update(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
			return err
		}
		if got := namespace.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
			return fmt.Errorf("enforce label %q", got)
		}
		return nil
	})

	// Quiet: no writes to the tenant, its namespace or its objects while nothing changes.
	time.Sleep(2 * time.Second)
	before := resourceVersions(t, ns, tenant.Name)
	time.Sleep(5 * time.Second)
	after := resourceVersions(t, ns, tenant.Name)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s was written while idle: %s -> %s", k, v, after[k])
		}
	}
}

func resourceVersions(t *testing.T, ns, tenantName string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	tenant := &v1alpha1.Tenant{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: tenantName}, tenant); err != nil {
		t.Fatal(err)
	}
	out["tenant"] = tenant.ResourceVersion
	namespace := &corev1.Namespace{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
		t.Fatal(err)
	}
	out["namespace"] = namespace.ResourceVersion
	for _, list := range []client.ObjectList{&networkingv1.NetworkPolicyList{}, &appsv1.StatefulSetList{}, &corev1.SecretList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{}, &rbacv1.RoleBindingList{}} {
		if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.UnstructuredList{}
		data, _ := yaml.Marshal(list)
		_ = yaml.Unmarshal(data, &u.Object)
		items, _ := u.Object["items"].([]any)
		for _, it := range items {
			m := it.(map[string]any)["metadata"].(map[string]any)
			out[fmt.Sprintf("%T/%v", list, m["name"])] = fmt.Sprint(m["resourceVersion"])
		}
	}
	return out
}

// TestDeleteRetainKeepsDataAndRecreateAdoptsIt: deleting a Tenant with the default Retain policy
// keeps its namespace and credentials; a new Tenant of the same name gets the same password.
func TestDeleteRetainKeepsDataAndRecreateAdoptsIt(t *testing.T) {
	ctx := context.Background()
	tenant := minimalTenant("envtest-retain")
	tenant.Spec.Access.Admins = []rbacv1.Subject{user("User", "rita")}
	createTenant(t, tenant)
	ns := "tenant-envtest-retain"
	expectCondition(t, tenant, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonPVCPending, "")
	password := databasePassword(t, ns)

	if err := k8s.Delete(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), &v1alpha1.Tenant{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("tenant still exists: %v", err)
	})
	namespace := &corev1.Namespace{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
		t.Fatalf("retained namespace: %v", err)
	}
	if !namespace.DeletionTimestamp.IsZero() || namespace.Labels["tenancy.tenantops.io/retained"] != "true" {
		t.Fatalf("namespace not retained: deletion %v labels %v", namespace.DeletionTimestamp, namespace.Labels)
	}
	bindings := &rbacv1.RoleBindingList{}
	if err := k8s.List(ctx, bindings, client.InNamespace(ns)); err != nil || len(bindings.Items) != 0 {
		t.Fatalf("role bindings after deletion: %v %d, want none", err, len(bindings.Items))
	}
	if got := databasePassword(t, ns); got != password {
		t.Fatal("the database password changed while retained")
	}

	// A new Tenant of the same name is another customer until a person says it is not: it does
	// not take the data over silently.
	oldUID := namespace.Annotations["tenancy.tenantops.io/tenant-uid"]
	if oldUID != string(tenant.UID) {
		t.Fatalf("the namespace recorded tenant uid %q, want %q", oldUID, tenant.UID)
	}
	again := minimalTenant("envtest-retain")
	createTenant(t, again)
	expectCondition(t, again, v1alpha1.ConditionNamespaceReady, metav1.ConditionFalse, v1alpha1.ReasonRetainedNamespace, oldUID)
	expectCondition(t, again, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, "")
	if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil || namespace.Labels["tenancy.tenantops.io/retained"] != "true" {
		t.Fatalf("the retained namespace was touched before adoption: %v %v", err, namespace.Labels)
	}
	adopt := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"tenancy.tenantops.io/adopt-namespace":"true"}}}`))
	if err := k8s.Patch(ctx, again, adopt); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, again, v1alpha1.ConditionNamespaceReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	expectEvent(t, again, corev1.EventTypeNormal, "Adopted", oldUID)
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(again), again); err != nil {
		t.Fatal(err)
	}
	if got := again.Annotations["tenancy.tenantops.io/adopted-uids"]; got != oldUID {
		t.Errorf("adopted-uids = %q, want the predecessor's %s: its backups are now this tenant's", got, oldUID)
	}
	if got := databasePassword(t, ns); got != password {
		t.Fatal("adopting the retained namespace regenerated the database password")
	}
	if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
		t.Fatal(err)
	}
	if _, retained := namespace.Labels["tenancy.tenantops.io/retained"]; retained {
		t.Fatal("adopted namespace is still labelled retained")
	}
}

func databasePassword(t *testing.T, ns string) string {
	t.Helper()
	secrets := &corev1.SecretList{}
	if err := k8s.List(context.Background(), secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if p := s.Data["password"]; len(p) > 0 {
			if len(p) < 32 {
				t.Fatalf("password in %s is only %d characters", s.Name, len(p))
			}
			return string(p)
		}
	}
	t.Fatalf("no Secret with a password in %s", ns)
	return ""
}

// TestDeleteWithPolicyDeleteRemovesTheNamespace: the namespace goes with the Tenant. A Tenant of the
// same name created while the old namespace is still terminating (held here by a finalizer) says
// so, and takes the name once the old namespace is gone.
func TestDeleteWithPolicyDeleteRemovesTheNamespace(t *testing.T) {
	ctx := context.Background()
	tenant := minimalTenant("envtest-delete")
	tenant.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	tenant.Annotations = map[string]string{v1alpha1.AnnotationAllowDelete: "true"}
	createTenant(t, tenant)
	ns := "tenant-envtest-delete"
	expectCondition(t, tenant, v1alpha1.ConditionNamespaceReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	holder := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "holder", Namespace: ns, Finalizers: []string{"test.tenantops.io/hold"}}}
	if err := k8s.Create(ctx, holder); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), &v1alpha1.Tenant{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("tenant still exists: %v", err)
		}
		namespace := &corev1.Namespace{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
			return err
		}
		if namespace.DeletionTimestamp.IsZero() {
			return fmt.Errorf("namespace %s not being deleted", ns)
		}
		return nil
	})
	again := createTenant(t, minimalTenant("envtest-delete"))
	expectCondition(t, again, v1alpha1.ConditionNamespaceReady, metav1.ConditionFalse, v1alpha1.ReasonNamespaceTerminating, "still being deleted")
	expectCondition(t, again, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonProgressing, "NamespaceReady")

	// The old namespace's contents, database credentials included, are deleted by the namespace
	// controller; release the holder and the new tenant gets a fresh namespace.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(holder), holder); err != nil {
		t.Fatal(err)
	}
	holder.Finalizers = nil
	if err := k8s.Update(ctx, holder); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error {
		c, err := conditionOf(ctx, again, v1alpha1.ConditionNamespaceReady)
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionTrue {
			return fmt.Errorf("NamespaceReady %s/%s %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
}

// TestDeletionPolicyDeleteIsConfirmedAndErases: Delete needs the allow-delete annotation (a
// Tenant that slipped past admission without it is InvalidSpec and would keep its data); its
// change is an event and shows in status. The tenant gets its own data key, kept wrapped in a
// Secret; deleting the tenant erases it: the namespace goes, the key's escrow copies and the
// backups go from storage, the erasure is recorded and told, and the key's Secret goes last.
func TestDeletionPolicyDeleteIsConfirmedAndErases(t *testing.T) {
	ctx := context.Background()
	policy := &v1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: "erasure"}, Spec: v1alpha1.BackupPolicySpec{
		Schedules:  []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "0 */12 * * *", Storage: v1alpha1.BackupStorage{Volume: &v1alpha1.VolumeStorage{ClaimName: "erasure"}}}},
		Encryption: v1alpha1.BackupEncryption{Recipients: []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}}}}
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, policy, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	tenant := minimalTenant("envtest-erase")
	tenant.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	tenant.Spec.BackupPolicyRef = &v1alpha1.LocalObjectReference{Name: policy.Name}
	createTenant(t, tenant)
	expectCondition(t, tenant, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "tenancy.tenantops.io/allow-delete")

	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"tenancy.tenantops.io/allow-delete":"true"}}}`))
	if err := k8s.Patch(ctx, tenant, patch); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, tenant, v1alpha1.ConditionNamespaceReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	secret := &corev1.Secret{}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if tenant.Status.DeletionPolicy != v1alpha1.DeletionPolicyDelete {
			return fmt.Errorf("status.deletionPolicy = %q", tenant.Status.DeletionPolicy)
		}
		if tenant.Status.DataKey == nil || tenant.Status.DataKey.ID == "" {
			return fmt.Errorf("status.dataKey = %+v", tenant.Status.DataKey)
		}
		return k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: tenant.Status.DataKey.SecretName}, secret)
	})
	// Confirmed afterwards, so the first pass showed Retain: the change is told.
	expectEvent(t, tenant, corev1.EventTypeWarning, v1alpha1.ReasonDeletionPolicyChanged, "erases")
	expectEvent(t, tenant, corev1.EventTypeNormal, "DataKeyCreated", tenant.Status.DataKey.ID)
	key, err := builders.DataKeyOf(secret)
	if err != nil || key.ID != tenant.Status.DataKey.ID {
		t.Fatalf("data key Secret: %+v, %v", key, err)
	}
	for _, v := range secret.Data {
		if strings.Contains(string(v), "AGE-SECRET-KEY") {
			t.Fatal("the data key Secret holds the identity in the clear")
		}
	}
	cj := &batchv1.CronJob{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.BackupCronJobName(tenant, "hot")}, cj); err != nil {
		t.Fatal(err)
	}
	if args := strings.Join(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--data-key") || strings.Contains(args, "--recipient") {
		t.Errorf("backup CronJob runs %q, want the data key and no platform recipient", args)
	}

	// What the backup jobs would have written: the escrowed key and a backup encrypted to it.
	store := backupVolume(t, "erasure")
	if err := catalog.WriteDataKey(ctx, store, tenant.Name, string(tenant.UID), key); err != nil {
		t.Fatal(err)
	}
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: tenant.Name, TenantUID: string(tenant.UID), Schedule: "hot", ID: "20261202T000000Z-aaaaaa",
		StartedAt: testClock.Now().Add(-time.Hour), DataKeyID: key.ID})

	// A rotation makes a new key for new backups and keeps the old one's ID for erasure.
	patch = client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"tenancy.tenantops.io/rotate-data-key":"2026-12"}}}`))
	if err := k8s.Patch(ctx, tenant, patch); err != nil {
		t.Fatal(err)
	}
	var rotated string
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
			return err
		}
		ids := builders.DataKeyIDs(secret)
		if len(ids) != 2 || ids[1] != key.ID {
			return fmt.Errorf("key IDs %v, want a new one before %s", ids, key.ID)
		}
		rotated = ids[0]
		return nil
	})
	expectEvent(t, tenant, corev1.EventTypeNormal, "DataKeyRotated", "backups made before stay readable through key "+key.ID)
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if tenant.Status.DataKey == nil || tenant.Status.DataKey.ID != rotated {
			return fmt.Errorf("status.dataKey %+v, want %s", tenant.Status.DataKey, rotated)
		}
		return nil
	})
	// The same annotation value does not rotate again.
	assertQuiet(t, secret, 3*time.Second)
	if ids := builders.DataKeyIDs(secret); ids[0] != rotated {
		t.Fatalf("rotated again: %v", ids)
	}

	if err := k8s.Delete(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), &v1alpha1.Tenant{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("tenant still exists: %v", err)
		}
		return nil
	})
	namespace := &corev1.Namespace{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "tenant-envtest-erase"}, namespace); err == nil && namespace.DeletionTimestamp.IsZero() {
		t.Error("namespace not being deleted")
	}
	if r := expectErased(t, store, tenant, secret); !strings.Contains(r, key.ID) || !strings.Contains(r, rotated) || !strings.Contains(r, "20261202T000000Z-aaaaaa") || !strings.Contains(r, `"reason": "TenantDeleted"`) {
		t.Errorf("erasure record:\n%s", r)
	}
	expectEvent(t, tenant, corev1.EventTypeNormal, "DataErased", "1 backups encrypted to them are unreadable by anyone")
}

// TestNamespaceOfSomeoneElseIsNotTakenOver.
func TestNamespaceOfSomeoneElseIsNotTakenOver(t *testing.T) {
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-envtest-taken"}}); err != nil {
		t.Fatal(err)
	}
	tenant := createTenant(t, minimalTenant("envtest-taken"))
	expectCondition(t, tenant, v1alpha1.ConditionNamespaceReady, metav1.ConditionFalse, v1alpha1.ReasonNamespaceConflict, "does not belong to this tenant")
	expectCondition(t, tenant, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNamespaceConflict, "")
	assertQuiet(t, tenant, 3*time.Second)
}

// TestTenantUsersAccess makes real requests as the tenant's users against the API server, with the
// operator's ValidatingAdmissionPolicy installed.
func TestTenantUsersAccess(t *testing.T) {
	ctx := context.Background()
	a := minimalTenant("envtest-access-a")
	a.Spec.Access.Admins = []rbacv1.Subject{user("User", "ada")}
	a.Spec.Access.Editors = []rbacv1.Subject{user("Group", "a-devs")}
	a.Spec.Access.Viewers = []rbacv1.Subject{user("User", "vera")}
	b := minimalTenant("envtest-access-b")
	b.Spec.Access.Admins = []rbacv1.Subject{user("User", "bob")}
	createTenant(t, a)
	createTenant(t, b)
	expectCondition(t, a, v1alpha1.ConditionFirewallReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	expectCondition(t, b, v1alpha1.ConditionAccessReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "")
	nsA, nsB := "tenant-envtest-access-a", "tenant-envtest-access-b"
	installAdmissionPolicy(t)

	ada := clientAs(t, "ada")
	dev := clientAs(t, "dan", "a-devs")
	vera := clientAs(t, "vera")
	bob := clientAs(t, "bob")

	mustAllow := func(who string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: want allowed, got %v", who, err)
		}
	}
	mustDeny := func(who string, err error, want string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: want denied, was allowed", who)
		} else if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want forbidden with %q, got %v", who, want, err)
		}
	}

	mustAllow("admin gets own tenant", ada.Get(ctx, client.ObjectKeyFromObject(a), &v1alpha1.Tenant{}))
	mustAllow("viewer gets own tenant", vera.Get(ctx, client.ObjectKeyFromObject(a), &v1alpha1.Tenant{}))
	mustDeny("admin gets another tenant", ada.Get(ctx, client.ObjectKeyFromObject(b), &v1alpha1.Tenant{}), "forbidden")
	mustDeny("admin lists all tenants", ada.List(ctx, &v1alpha1.TenantList{}), "forbidden")
	mustAllow("admin lists secrets in own namespace", ada.List(ctx, &corev1.SecretList{}, client.InNamespace(nsA)))
	mustDeny("viewer lists secrets", vera.List(ctx, &corev1.SecretList{}, client.InNamespace(nsA)), "forbidden")
	mustAllow("viewer lists pods", vera.List(ctx, &corev1.PodList{}, client.InNamespace(nsA)))
	mustDeny("admin of b lists pods of a", bob.List(ctx, &corev1.PodList{}, client.InNamespace(nsA)), "forbidden")
	mustDeny("admin of a lists secrets of b", ada.List(ctx, &corev1.SecretList{}, client.InNamespace(nsB)), "forbidden")
	mustAllow("editor creates a config map", dev.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config", Namespace: nsA}}))

	// What the operator owns stays as the operator made it, even for the tenant's admin.
	policies := &networkingv1.NetworkPolicyList{}
	if err := k8s.List(ctx, policies, client.InNamespace(nsA)); err != nil || len(policies.Items) == 0 {
		t.Fatalf("list network policies: %v", err)
	}
	mustDeny("admin deletes a network policy", ada.Delete(ctx, &policies.Items[0]), "managed by tenant-operator")
	allowAll := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-all", Namespace: nsA},
		Spec: networkingv1.NetworkPolicySpec{
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	mustDeny("admin creates an allow-all network policy", ada.Create(ctx, allowAll), "NetworkPolicies in tenant namespaces are managed by tenant-operator")
	mustDeny("editor creates an allow-all network policy", dev.Create(ctx, allowAll.DeepCopy()), "NetworkPolicies in tenant namespaces are managed by tenant-operator")

	sts := &appsv1.StatefulSetList{}
	if err := k8s.List(ctx, sts, client.InNamespace(nsA)); err != nil || len(sts.Items) == 0 {
		t.Fatalf("list statefulsets: %v", err)
	}
	db := sts.Items[0]
	db.Spec.Template.Spec.Containers[0].Image = "evil/postgres"
	mustDeny("admin changes the database image", ada.Update(ctx, &db), "managed by tenant-operator")

	quotas := &corev1.ResourceQuotaList{}
	if err := k8s.List(ctx, quotas, client.InNamespace(nsA)); err != nil || len(quotas.Items) == 0 {
		t.Fatalf("list quotas: %v", err)
	}
	mustDeny("admin deletes the quota", ada.Delete(ctx, &quotas.Items[0]), "forbidden")

	secrets := &corev1.SecretList{}
	if err := k8s.List(ctx, secrets, client.InNamespace(nsA)); err != nil || len(secrets.Items) == 0 {
		t.Fatalf("list secrets: %v", err)
	}
	mustDeny("admin deletes the database credentials", ada.Delete(ctx, &secrets.Items[0]), "managed by tenant-operator")
	disguised := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fake", Namespace: nsA,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "tenant-operator"}}}
	mustDeny("admin creates an object posing as the operator's", ada.Create(ctx, disguised), "managed by tenant-operator")
}

var admissionPolicyInstalled bool

func installAdmissionPolicy(t *testing.T) {
	t.Helper()
	if admissionPolicyInstalled {
		return
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "policies", "protect-tenant-objects.yaml"))
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
	admissionPolicyInstalled = true
	// The API server loads policies asynchronously; wait until it denies a disguised object.
	eventually(t, 20*time.Second, func() error {
		probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "tenant-envtest-access-a",
			Labels: map[string]string{"app.kubernetes.io/managed-by": "tenant-operator"}}}
		err := clientAs(t, "ada").Create(context.Background(), probe, client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), "managed by tenant-operator") {
			return nil
		}
		return fmt.Errorf("policy not active yet: %v", err)
	})
}

// clientAs authenticates to the API server as a user with a client certificate envtest signs.
func clientAs(t *testing.T, name string, groups ...string) client.Client {
	t.Helper()
	u, err := env.Environment.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		t.Fatalf("add user %s: %v", name, err)
	}
	c, err := client.New(u.Config(), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertificateStatusComesFromCertManager: once the issuer exists and cert-manager marks the
// Certificate ready (set here by hand, as cert-manager's controller would), the tenant reports it
// with the secret and expiry. cert-manager itself runs in the end-to-end test.
func TestCertificateStatusComesFromCertManager(t *testing.T) {
	ctx := context.Background()
	issuer := &cmapi.ClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "envtest-ca"},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
	}
	if err := k8s.Create(ctx, issuer); err != nil {
		t.Fatal(err)
	}
	tenant := minimalTenant("envtest-cert")
	tenant.Spec.TLS = &v1alpha1.TenantTLS{IssuerRef: &v1alpha1.IssuerReference{Name: "envtest-ca", Kind: "ClusterIssuer"}}
	createTenant(t, tenant)
	expectCondition(t, tenant, v1alpha1.ConditionCertificateReady, metav1.ConditionFalse, v1alpha1.ReasonIssuerNotReady, `ClusterIssuer "envtest-ca" is not ready`)

	issuer.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionTrue, Reason: "IsReady"}}
	if err := k8s.Status().Update(ctx, issuer); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, tenant, v1alpha1.ConditionCertificateReady, metav1.ConditionFalse, v1alpha1.ReasonCertificateNotIssued, "Waiting for cert-manager")

	cert := &cmapi.Certificate{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: "tenant-envtest-cert", Name: "tenant-tls"}, cert); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cert.Spec.DNSNames, ",") != "envtest-cert.app.example.com" || cert.Spec.IssuerRef.Name != "envtest-ca" {
		t.Fatalf("certificate spec = %v issued by %s", cert.Spec.DNSNames, cert.Spec.IssuerRef.Name)
	}
	notAfter := metav1.NewTime(time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second))
	cert.Status.NotAfter = &notAfter
	cert.Status.Conditions = []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready"}}
	if err := k8s.Status().Update(ctx, cert); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, tenant, v1alpha1.ConditionCertificateReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "issued by ClusterIssuer envtest-ca")
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
		t.Fatal(err)
	}
	if c := tenant.Status.Certificate; c == nil || c.SecretName != "tenant-tls" || c.NotAfter == nil || !c.NotAfter.Equal(&notAfter) {
		t.Fatalf("status.certificate = %+v, want secret tenant-tls and notAfter %v", c, notAfter)
	}

	// The database's certificate issued (its Secret, as cert-manager writes it with the operator's
	// labels): the CA alone is published for clients, without the server's key.
	tls := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-envtest-cert", Name: "postgres-tls",
		Labels: map[string]string{"app.kubernetes.io/managed-by": "tenant-operator", "tenancy.tenantops.io/tenant": "envtest-cert"}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("server"), "tls.key": []byte("server key"), "ca.crt": []byte("the CA")}}
	if err := k8s.Create(ctx, tls); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: "tenant-envtest-cert", Name: "postgres-ca"}, cm); err != nil {
			return err
		}
		if len(cm.Data) != 1 || cm.Data["ca.crt"] != "the CA" {
			return fmt.Errorf("postgres-ca holds %v, want the CA alone", cm.Data)
		}
		return nil
	})
}

// TestQuotaThatLeavesNoRoomForTheDatabaseIsReported: with a quota of zero pods the StatefulSet
// controller cannot create the database pod, and the tenant says why.
func TestQuotaThatLeavesNoRoomForTheDatabaseIsReported(t *testing.T) {
	tenant := minimalTenant("envtest-quota")
	tenant.Spec.Quota = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}
	createTenant(t, tenant)
	expectCondition(t, tenant, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonQuotaExceeded, "pods 0/0")
	expectCondition(t, tenant, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonQuotaExceeded, "DatabaseReady")
}

// TestInvalidTenantThatSlippedPastAdmissionIsACondition: without the webhook, a Tenant with an
// unknown time zone is stored; the controller marks it InvalidSpec, names the field, creates
// nothing, and does not retry in a loop.
func TestInvalidTenantThatSlippedPastAdmissionIsACondition(t *testing.T) {
	tenant := minimalTenant("envtest-invalid")
	tenant.Spec.Monitoring = &v1alpha1.MonitoringSpec{BusinessHours: &v1alpha1.BusinessHours{TimeZone: "Europe/Atlantis", Start: "08:00", End: "18:00"}}
	createTenant(t, tenant)
	expectCondition(t, tenant, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "spec.monitoring.businessHours.timeZone")
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(tenant), tenant); err != nil {
		t.Fatal(err)
	}
	if tenant.Status.Phase != v1alpha1.TenantPhaseDegraded {
		t.Fatalf("phase = %q, want Degraded", tenant.Status.Phase)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: "tenant-envtest-invalid"}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a namespace was created for an invalid tenant: %v", err)
	}
	assertQuiet(t, tenant, 3*time.Second)
}

// TestEventsTellChangesOnly: a new tenant's events are its generated credentials and its problems,
// not every part appearing; a condition that changes is an event; a steady tenant adds none.
func TestEventsTellChangesOnly(t *testing.T) {
	ctx := context.Background()
	tenant := minimalTenant("envtest-events")
	tenant.Spec.TLS = &v1alpha1.TenantTLS{IssuerRef: &v1alpha1.IssuerReference{Kind: "Issuer", Name: "tenant-ca"}}
	createTenant(t, tenant)
	expectCondition(t, tenant, v1alpha1.ConditionCertificateReady, metav1.ConditionFalse, v1alpha1.ReasonIssuerNotFound, `Issuer "tenant-ca" not found`)

	// eventsOf lists the tenant's events as "type reason action" (the action is the condition),
	// except the database's: whether its claim shows up pending in the first pass or a later
	// one depends on the StatefulSet controller's timing.
	eventsOf := func() []string {
		list := &eventsv1.EventList{}
		if err := k8s.List(ctx, list); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "Tenant" && e.Regarding.Name == tenant.Name && e.Action != v1alpha1.ConditionDatabaseReady {
				out = append(out, fmt.Sprintf("%s %s %s", e.Type, e.Reason, e.Action))
			}
		}
		sort.Strings(out)
		return out
	}
	// expectNewEvents waits until the tenant's events are exactly those expected so far plus added.
	var expected []string
	expectNewEvents := func(added ...string) {
		t.Helper()
		expected = append(expected, added...)
		want := slices.Sorted(slices.Values(expected))
		eventually(t, 20*time.Second, func() error {
			if got := eventsOf(); !slices.Equal(got, want) {
				return fmt.Errorf("events %q, want %q", got, want)
			}
			return nil
		})
	}
	// Namespace, access and firewall appear good, the database waiting: none of that is news.
	expectNewEvents(
		"Normal CredentialsGenerated CredentialsGenerated",
		"Warning IssuerNotFound CertificateReady",
		"Warning IssuerNotFound Ready",
	)

	// The issuer appears, not ready yet: a change, and still a problem.
	issuer := &cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-envtest-events", Name: "tenant-ca"},
		Spec: cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}}}
	if err := k8s.Create(ctx, issuer); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, tenant, v1alpha1.ConditionCertificateReady, metav1.ConditionFalse, v1alpha1.ReasonIssuerNotReady, `Issuer "tenant-ca" is not ready`)
	expectNewEvents(
		"Warning IssuerNotReady CertificateReady",
		"Warning IssuerNotReady Ready",
	)

	// The issuer is ready: the certificate now waits for cert-manager (which does not run here).
	issuer.Status.Conditions = []cmapi.IssuerCondition{{Type: cmapi.IssuerConditionReady, Status: cmmeta.ConditionTrue, Reason: "IsReady"}}
	if err := k8s.Status().Update(ctx, issuer); err != nil {
		t.Fatal(err)
	}
	expectCondition(t, tenant, v1alpha1.ConditionCertificateReady, metav1.ConditionFalse, v1alpha1.ReasonCertificateNotIssued, "Waiting for cert-manager")
	expectCondition(t, tenant, v1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, v1alpha1.ReasonPVCPending, "")
	expectCondition(t, tenant, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonProgressing, "")
	expectNewEvents(
		"Normal CertificateNotIssued CertificateReady",
		"Normal Progressing Ready",
	)

	// Reconciled again with nothing changed: no new events.
	before := eventsOf()
	relabel := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"reconcile":"again"}}}`))
	if err := k8s.Patch(ctx, tenant, relabel); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if after := eventsOf(); !slices.Equal(after, before) {
		t.Errorf("a steady tenant added events: %q, before %q", after, before)
	}
}

// expectErased checks that a tenant's data key Secret, escrowed keys and backups are gone, and
// returns its erasure record.
func expectErased(t *testing.T, store storage.Store, tenant *v1alpha1.Tenant, secret *corev1.Secret) string {
	t.Helper()
	ctx := context.Background()
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the data key Secret after erasure: %v", err)
	}
	if ids, err := catalog.ListDataKeys(ctx, store, tenant.Name, string(tenant.UID)); err != nil || len(ids) != 0 {
		t.Errorf("escrowed keys after erasure: %v, %v", ids, err)
	}
	if left, err := catalog.List(ctx, store, tenant.Name, ""); err != nil || len(left) != 0 {
		t.Errorf("backups after erasure: %d, %v", len(left), err)
	}
	record := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: builders.ErasureRecordName(tenant.Name, string(tenant.UID))}, record); err != nil {
		t.Fatalf("erasure record: %v", err)
	}
	return record.Data[builders.ErasureRecordKey]
}
