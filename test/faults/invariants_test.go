package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/test/localstack"
)

// ownedKinds are the lists of every kind the operator writes for a tenant (controllers'
// ownedTypes, and the Secrets it creates).
func ownedKinds() map[string]client.ObjectList {
	return map[string]client.ObjectList{
		"Namespace": &corev1.NamespaceList{}, "ResourceQuota": &corev1.ResourceQuotaList{}, "LimitRange": &corev1.LimitRangeList{},
		"ConfigMap": &corev1.ConfigMapList{}, "Service": &corev1.ServiceList{}, "PersistentVolumeClaim": &corev1.PersistentVolumeClaimList{},
		"Secret": &corev1.SecretList{}, "StatefulSet": &appsv1.StatefulSetList{}, "Deployment": &appsv1.DeploymentList{},
		"RoleBinding": &rbacv1.RoleBindingList{}, "ClusterRole": &rbacv1.ClusterRoleList{}, "ClusterRoleBinding": &rbacv1.ClusterRoleBindingList{},
		"NetworkPolicy": &networkingv1.NetworkPolicyList{}, "Ingress": &networkingv1.IngressList{}, "Certificate": &cmapi.CertificateList{},
		"CronJob": &batchv1.CronJobList{}, "Job": &batchv1.JobList{},
	}
}

// ownedObject is one object the operator labelled as a tenant's.
type ownedObject struct {
	kind, namespace, name, tenant, component string
}

func (o ownedObject) String() string {
	if o.namespace == "" {
		return o.kind + " " + o.name
	}
	return o.kind + " " + o.namespace + "/" + o.name
}

// listOwned lists every object carrying the operator's managed-by label, by tenant label.
func listOwned(ctx context.Context) (map[string][]ownedObject, error) {
	byTenant := map[string][]ownedObject{}
	for kind, list := range ownedKinds() {
		err := cluster.Client.List(ctx, list, client.MatchingLabels{builders.LabelManagedBy: builders.ManagedByValue})
		switch {
		case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
			continue // not served (cert-manager's CRDs removed): none
		case err != nil:
			return nil, fmt.Errorf("list %s: %w", kind, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil, err
		}
		for _, item := range items {
			o := item.(client.Object)
			tenant := o.GetLabels()[builders.LabelTenant]
			byTenant[tenant] = append(byTenant[tenant], ownedObject{kind: kind, namespace: o.GetNamespace(), name: o.GetName(), tenant: tenant,
				component: o.GetLabels()[builders.LabelComponent]})
		}
	}
	return byTenant, nil
}

// shape is how many objects of each kind a tenant has: the same spec gives the same shape.
func shape(objs []ownedObject) map[string]int {
	s := map[string]int{}
	for _, o := range objs {
		s[o.kind]++
	}
	return s
}

func shapeString(s map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, s[k]))
	}
	return strings.Join(parts, " ")
}

// kept is what a Retain delete must leave: the namespace and the database's volume claim, the
// same objects as before, and the same password.
type kept struct {
	namespaceUID, claimUID types.UID
	password               string
}

// keptState notes what a tenant about to be deleted under Retain must keep.
func keptState(ctx context.Context, name string) (kept, error) {
	t := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ns := &corev1.Namespace{}
	if err := cluster.Client.Get(ctx, types.NamespacedName{Name: builders.NamespaceName(t)}, ns); err != nil {
		return kept{}, err
	}
	claim := &corev1.PersistentVolumeClaim{}
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: builders.DatabaseVolumeClaimName(t)}, claim); err != nil {
		return kept{}, err
	}
	pw, err := password(ctx, name)
	if err != nil || pw == "" {
		return kept{}, fmt.Errorf("password of %s: %v", name, err)
	}
	return kept{namespaceUID: ns.UID, claimUID: claim.UID, password: pw}, nil
}

// expectation is what a case expects once the faults stop.
type expectation struct {
	// live tenants must be Ready for their generation, with the reference shape.
	live []string
	// shape is the reference tenant's, taken before any fault (nil: not checked).
	shape map[string]int
	// retained were deleted under Retain: gone as Tenants, their namespace, claim and password
	// kept as noted (a zero kept is checked for existence only: deleted before it was noted).
	retained map[string]kept
	// erased were deleted under Delete: nothing of them may remain.
	erased []string
	// gone were deleted, whatever their policy: only the Tenant's disappearance is checked.
	gone []string
	// passwords are the live tenants' first-seen passwords.
	passwords *passwordWatch
	// ready, when set, replaces "Ready" for a tenant: the condition that must hold instead.
	ready func(*v1alpha1.Tenant) (bool, string)
}

// converge waits until every expectation holds and returns how long that took, or fails the test
// with everything still wrong.
func converge(ctx context.Context, t *testing.T, exp expectation, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	logged := time.Now()
	for {
		err := check(ctx, exp)
		if err == nil {
			return time.Since(start)
		}
		if ctx.Err() == nil {
			// A check cut short by the deadline says nothing; the one before it does.
			last = err
		}
		if time.Since(logged) > 30*time.Second {
			t.Logf("%s: not converged yet: %s", time.Since(start).Round(time.Second), firstLines(last, 5))
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not converged within %s:\n%v", timeout, last)
		case <-time.After(time.Second):
		}
	}
}

// check reports every broken invariant.
func check(ctx context.Context, exp expectation) error {
	var errs []error
	owned, err := listOwned(ctx)
	if err != nil {
		return err
	}
	tenants := &v1alpha1.TenantList{}
	if err := cluster.Client.List(ctx, tenants); err != nil {
		return err
	}
	existing := map[string]*v1alpha1.Tenant{}
	for i := range tenants.Items {
		existing[tenants.Items[i].Name] = &tenants.Items[i]
	}
	for _, name := range exp.live {
		tenant, ok := existing[name]
		if !ok {
			errs = append(errs, fmt.Errorf("tenant %s: missing", name))
			continue
		}
		if ok, why := readyFor(exp, tenant); !ok {
			errs = append(errs, fmt.Errorf("tenant %s: %s", name, why))
		}
		if got := shape(owned[name]); exp.shape != nil && !maps.Equal(got, exp.shape) {
			errs = append(errs, fmt.Errorf("tenant %s: owns %s, want %s", name, shapeString(got), shapeString(exp.shape)))
		}
		for _, o := range owned[name] {
			// The operator's namespace holds what runs with keys or probes (backup jobs and their
			// Secrets, the database probe's Secret).
			if o.namespace != "" && o.namespace != builders.NamespaceName(tenant) && o.namespace != localstack.OperatorNamespace {
				errs = append(errs, fmt.Errorf("tenant %s: %s outside its namespace and the operator's", name, o))
			}
		}
	}
	if exp.passwords != nil {
		if err := exp.passwords.look(ctx, exp.live); err != nil {
			errs = append(errs, err)
		}
		for _, name := range exp.live {
			exp.passwords.mu.Lock()
			_, seen := exp.passwords.first[name]
			exp.passwords.mu.Unlock()
			if !seen {
				errs = append(errs, fmt.Errorf("tenant %s: no database password yet", name))
			}
		}
	}
	for _, name := range exp.erased {
		if _, ok := existing[name]; ok {
			errs = append(errs, fmt.Errorf("tenant %s (Delete): not gone (finalizers %v, conditions %s)", name, existing[name].Finalizers, conditions(existing[name])))
		}
		recorded := false
		for _, o := range owned[name] {
			// The erasure record stays: it is the proof that the tenant was erased.
			if o.component == builders.ComponentErasureRecord {
				recorded = true
				continue
			}
			errs = append(errs, fmt.Errorf("tenant %s (Delete): %s left behind", name, o))
		}
		if !recorded {
			errs = append(errs, fmt.Errorf("tenant %s (Delete): no erasure record", name))
		}
	}
	for _, name := range exp.gone {
		if _, ok := existing[name]; ok {
			errs = append(errs, fmt.Errorf("tenant %s: not gone (finalizers %v, conditions %s)", name, existing[name].Finalizers, conditions(existing[name])))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(exp.retained)) {
		if _, ok := existing[name]; ok {
			errs = append(errs, fmt.Errorf("tenant %s (Retain): not gone (finalizers %v, conditions %s)", name, existing[name].Finalizers, conditions(existing[name])))
			continue
		}
		if err := checkKept(ctx, name, exp.retained[name], owned[name]); err != nil {
			errs = append(errs, err)
		}
	}
	// Objects labelled for a Tenant that does not exist: only what Retain keeps.
	for tenant, objs := range owned {
		if _, ok := existing[tenant]; ok || slices.Contains(exp.erased, tenant) {
			continue
		}
		for _, o := range objs {
			if o.namespace == "" && o.kind != "Namespace" {
				errs = append(errs, fmt.Errorf("orphan: %s of deleted tenant %s", o, tenant))
			}
		}
	}
	return errors.Join(errs...)
}

func readyFor(exp expectation, t *v1alpha1.Tenant) (bool, string) {
	if exp.ready != nil {
		return exp.ready(t)
	}
	ready := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case ready == nil:
		return false, "no Ready condition"
	case ready.ObservedGeneration != t.Generation:
		return false, fmt.Sprintf("Ready is of generation %d, the spec's is %d", ready.ObservedGeneration, t.Generation)
	case ready.Status != metav1.ConditionTrue:
		return false, fmt.Sprintf("Ready %s %s: %s", ready.Status, ready.Reason, ready.Message)
	}
	return true, ""
}

// checkKept checks a tenant deleted under Retain: its namespace marked retained, its claim and
// password the same as before, and nothing cluster-scoped left.
func checkKept(ctx context.Context, name string, want kept, objs []ownedObject) error {
	var errs []error
	t := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ns := &corev1.Namespace{}
	err := cluster.Client.Get(ctx, types.NamespacedName{Name: builders.NamespaceName(t)}, ns)
	switch {
	case apierrors.IsNotFound(err) && want.namespaceUID == "":
		// Deleted before its namespace was made: nothing to keep.
		return nil
	case err != nil:
		return fmt.Errorf("tenant %s (Retain): namespace: %w", name, err)
	}
	if ns.Labels[builders.LabelRetained] != "true" {
		errs = append(errs, fmt.Errorf("tenant %s (Retain): namespace not marked retained", name))
	}
	if ns.DeletionTimestamp != nil {
		errs = append(errs, fmt.Errorf("tenant %s (Retain): namespace being deleted", name))
	}
	claim := &corev1.PersistentVolumeClaim{}
	err = cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns.Name, Name: builders.DatabaseVolumeClaimName(t)}, claim)
	switch {
	case apierrors.IsNotFound(err) && want.claimUID == "":
		// Deleted before its claim was made: nothing to keep.
	case err != nil:
		errs = append(errs, fmt.Errorf("tenant %s (Retain): volume claim: %w", name, err))
	case want.claimUID != "" && claim.UID != want.claimUID:
		errs = append(errs, fmt.Errorf("tenant %s (Retain): volume claim replaced", name))
	}
	if want.namespaceUID != "" && ns.UID != want.namespaceUID {
		errs = append(errs, fmt.Errorf("tenant %s (Retain): namespace replaced", name))
	}
	if want.password != "" {
		if pw, err := password(ctx, name); err != nil || pw != want.password {
			errs = append(errs, fmt.Errorf("tenant %s (Retain): database password not kept (%v)", name, err))
		}
	}
	for _, o := range objs {
		if o.namespace == "" && o.kind != "Namespace" {
			errs = append(errs, fmt.Errorf("tenant %s (Retain): %s left behind", name, o))
		}
	}
	return errors.Join(errs...)
}

func conditions(t *v1alpha1.Tenant) string {
	var parts []string
	for _, c := range t.Status.Conditions {
		if c.Status != metav1.ConditionTrue {
			parts = append(parts, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// referenceShape creates a tenant with no fault injected and the spec the cases end with (an
// editor added), waits until it is Ready and returns what it owns: the shape every tenant of the
// same spec must have after the faults.
func referenceShape(ctx context.Context, t *testing.T, name string) map[string]int {
	t.Helper()
	ref := newTenant(name, v1alpha1.DeletionPolicyDelete)
	withEditor(ref)
	if err := create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	// No shape yet: this tenant gives it.
	converge(ctx, t, expectation{live: []string{name}}, 3*time.Minute)
	owned, err := listOwned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := shape(owned[name])
	t.Logf("reference tenant %s owns %s", name, shapeString(s))
	return s
}

// firstLines is the start of a multi-line error, for progress logs.
func firstLines(err error, n int) string {
	if err == nil {
		return ""
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) > n {
		return strings.Join(lines[:n], "; ") + fmt.Sprintf("; and %d more", len(lines)-n)
	}
	return strings.Join(lines, "; ")
}

// withEditor gives the tenant an editor: the update the cases make (a new generation, a binding
// more).
func withEditor(t *v1alpha1.Tenant) {
	t.Spec.Access.Editors = []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "editor@" + t.Name + ".example.com"}}
}
