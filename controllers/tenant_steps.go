package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
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
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// requeueWaiting is how soon to look again at something that is on its way when no watch will
// tell us.
const requeueWaiting = 15 * time.Second

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=resourcequotas;limitranges,verbs=get;list;watch;create;patch

// reconcileNamespace creates the tenant's namespace with Pod Security restricted, its quota and
// limits, and adopts a namespace retained from an earlier Tenant of the same name.
// It sets NamespaceReady.
func (r *TenantReconciler) reconcileNamespace(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	o := tenantstatus.NamespaceObservation{Name: builders.NamespaceName(t)}
	defer func() { tenantstatus.SetNamespaceReady(t, o) }()
	// The cache holds only namespaces we labelled; on a miss, read past it, because a namespace
	// someone else made must never be taken over.
	existing := &corev1.Namespace{}
	err := r.Get(ctx, types.NamespacedName{Name: o.Name}, existing)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, types.NamespacedName{Name: o.Name}, existing)
	}
	switch {
	case apierrors.IsNotFound(err):
		s.namespaceNew = true
	case err != nil:
		o.Err = fmt.Errorf("get namespace %s: %w", o.Name, err)
		s.namespaceBlocked = true
		return ctrl.Result{}, o.Err
	case !ownedByTenant(existing, t):
		o.Conflict, s.namespaceBlocked = true, true
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("namespace %s belongs to someone else", o.Name))
	case !existing.DeletionTimestamp.IsZero():
		o.Terminating, s.namespaceBlocked = true, true
		return ctrl.Result{RequeueAfter: requeueWaiting}, nil
	case predecessorOf(existing, t) != "":
		// A deleted Tenant of the same name left its namespace, database and backups: another
		// customer's data, taken over only when a person says so.
		o.Predecessor = predecessorOf(existing, t)
		if t.Annotations[v1alpha1.AnnotationAdoptNamespace] != "true" {
			s.namespaceBlocked = true
			return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("namespace %s holds a deleted tenant's data", o.Name))
		}
		if err := r.adopt(ctx, t, existing, o.Predecessor); err != nil {
			o.Err, s.namespaceBlocked = err, true
			return ctrl.Result{}, err
		}
		o.Predecessor = ""
	}

	// The namespace first; its quota and limits then together, before anything else goes in.
	o.Err = r.apply(ctx, ownedObject{"namespace", o.Name, builders.Namespace(t)})
	if o.Err == nil {
		o.Err = r.applyConcurrently(ctx, []ownedObject{
			{"resource quota", builders.QuotaName, builders.ResourceQuota(t)},
			{"limit range", builders.LimitRangeName, builders.LimitRange(t)},
		})
	}
	s.namespaceBlocked = o.Err != nil
	return ctrl.Result{}, o.Err
}

// predecessorOf is the UID of the deleted Tenant whose data a namespace of this tenant's name
// holds, or "" when it is this tenant's own: one it made (its UID recorded), or one made for it by
// an operator that recorded no UIDs yet and never retained it. A retained namespace that recorded
// no UID is a predecessor's whose UID is unknown.
func predecessorOf(ns *corev1.Namespace, t *v1alpha1.Tenant) string {
	recorded := ns.Annotations[builders.AnnotationTenantUID]
	switch {
	case recorded == string(t.UID):
		return ""
	case recorded != "":
		return recorded
	case ns.Labels[builders.LabelRetained] == "true":
		return "unknown"
	}
	return ""
}

// adopt takes a predecessor's retained namespace over: the Tenant records whose data it adopted
// (so its backups count as the tenant's), and the namespace is no longer retained. An event says
// so.
func (r *TenantReconciler) adopt(ctx context.Context, t *v1alpha1.Tenant, ns *corev1.Namespace, predecessor string) error {
	if predecessor != "unknown" && !slices.Contains(builders.TenantUIDs(t), predecessor) {
		patch := client.MergeFrom(t.DeepCopy())
		uids := append(builders.TenantUIDs(t)[1:], predecessor)
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		t.Annotations[builders.AnnotationAdoptedUIDs] = strings.Join(uids, ",")
		if err := r.Patch(ctx, t, patch, FieldOwner); err != nil {
			return fmt.Errorf("record the adoption of %s: %w", ns.Name, err)
		}
	}
	if ns.Labels[builders.LabelRetained] == "true" {
		patch := client.MergeFrom(ns.DeepCopy())
		delete(ns.Labels, builders.LabelRetained)
		if err := r.Patch(ctx, ns, patch, FieldOwner); err != nil {
			return fmt.Errorf("adopt retained namespace %s: %w", ns.Name, err)
		}
	}
	r.event(t, corev1.EventTypeNormal, "Adopted", fmt.Sprintf("Adopted namespace %s with the data of the deleted tenant of the same name (uid %s), as annotated", ns.Name, predecessor))
	return nil
}

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings;clusterroles;clusterrolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=admin;edit;view

// reconcileAccess binds the tenant's admins, editors and viewers to their roles and lets them read
// their own Tenant; bindings for emptied lists are removed. It sets AccessReady.
func (r *TenantReconciler) reconcileAccess(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	access := t.Spec.Access
	o := tenantstatus.AccessObservation{Blocked: s.namespaceBlocked, Admins: len(access.Admins), Editors: len(access.Editors), Viewers: len(access.Viewers)}
	defer func() { tenantstatus.SetAccessReady(t, o) }()
	if o.Blocked {
		return ctrl.Result{}, nil
	}
	var objects []ownedObject
	keep, keepCluster := map[string]bool{}, map[string]bool{}
	for _, b := range builders.RoleBindings(t) {
		objects = append(objects, ownedObject{"role binding", *b.Name, b})
		keep[*b.Name] = true
	}
	if o.Admins+o.Editors+o.Viewers > 0 {
		name := builders.TenantReaderName(t)
		objects = append(objects,
			ownedObject{"cluster role", name, builders.TenantReaderClusterRole(t)},
			ownedObject{"cluster role binding", name, builders.TenantReaderClusterRoleBinding(t)})
		keepCluster[name] = true
	}
	if o.Err = r.applyConcurrently(ctx, objects); o.Err != nil {
		return ctrl.Result{}, o.Err
	}
	_, o.Err = r.deleteUnwanted(ctx, t, "role binding", &rbacv1.RoleBindingList{}, builders.NamespaceName(t), keep)
	if o.Err == nil {
		o.Err = r.deleteClusterScoped(ctx, t, keepCluster)
	}
	return ctrl.Result{}, o.Err
}

// deleteClusterScoped removes what the tenant has outside its namespace and no longer needs: the
// role that lets its users read their Tenant, and its binding. keep nil removes them all.
func (r *TenantReconciler) deleteClusterScoped(ctx context.Context, t *v1alpha1.Tenant, keep map[string]bool) error {
	if _, err := r.deleteUnwanted(ctx, t, "cluster role binding", &rbacv1.ClusterRoleBindingList{}, "", keep); err != nil {
		return err
	}
	_, err := r.deleteUnwanted(ctx, t, "cluster role", &rbacv1.ClusterRoleList{}, "", keep)
	return err
}

// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete

// reconcileFirewall applies the tenant's NetworkPolicies and removes ones no longer wanted.
// It sets FirewallReady.
func (r *TenantReconciler) reconcileFirewall(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	o := tenantstatus.FirewallObservation{Blocked: s.namespaceBlocked}
	defer func() { tenantstatus.SetFirewallReady(t, o) }()
	if o.Blocked {
		return ctrl.Result{}, nil
	}
	policies := builders.NetworkPolicies(t, r.builderOptions())
	o.Policies = len(policies)
	keep := map[string]bool{}
	objects := make([]ownedObject, 0, len(policies))
	for _, p := range policies {
		objects = append(objects, ownedObject{"network policy", *p.Name, p})
		keep[*p.Name] = true
	}
	if o.Err = r.applyConcurrently(ctx, objects); o.Err == nil {
		_, o.Err = r.deleteUnwanted(ctx, t, "network policy", &networkingv1.NetworkPolicyList{}, builders.NamespaceName(t), keep)
	}
	return ctrl.Result{}, o.Err
}

// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;clusterissuers,verbs=get;list;watch

// reconcileCertificate requests the certificate for the tenant's hostnames from its issuer and
// reports whether cert-manager issued it. It sets CertificateReady and status.certificate.
func (r *TenantReconciler) reconcileCertificate(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	opts := r.builderOptions()
	o := tenantstatus.CertificateObservation{Blocked: s.namespaceBlocked, Issuer: builders.IssuerFor(t, opts), Hostnames: t.Spec.Hostnames}
	defer func() { tenantstatus.SetCertificateReady(t, o) }()
	switch {
	case o.Blocked:
		return ctrl.Result{}, nil
	case o.Issuer.Name == "":
		return ctrl.Result{}, reconcile.TerminalError(errors.New("no issuer configured"))
	}
	var err error
	o.IssuerReady, err = r.issuerReady(ctx, t, o.Issuer)
	switch {
	case meta.IsNoMatchError(err):
		o.CertManagerMissing = true
		return ctrl.Result{}, nil
	case apierrors.IsNotFound(err):
		o.IssuerMissing = true
		return ctrl.Result{}, nil // the issuer watch brings us back
	case err != nil:
		o.Err = fmt.Errorf("get %s %s: %w", o.Issuer.Kind, o.Issuer.Name, err)
		return ctrl.Result{}, o.Err
	}
	name := builders.TenantCertificateName(t)
	// The apply's answer is the object as stored; the cache may not have seen it yet.
	cert := &cmapi.Certificate{}
	if o.Err = r.applyAndRead(ctx, ownedObject{"certificate", name, builders.TenantCertificate(t, opts)}, cert); o.Err != nil {
		return ctrl.Result{}, o.Err
	}
	t.Status.Certificate = &v1alpha1.CertificateStatus{SecretName: cert.Spec.SecretName, NotAfter: cert.Status.NotAfter}
	o.Pending = "no status from cert-manager yet"
	for _, c := range cert.Status.Conditions {
		if c.Type == cmapi.CertificateConditionReady {
			o.Issued = c.Status == cmmeta.ConditionTrue
			if c.Message != "" {
				o.Pending = c.Message
			}
		}
	}
	return ctrl.Result{}, nil // the Certificate watch brings us back
}

// issuerReady reports whether the tenant's issuer exists (an error when not) and is ready.
func (r *TenantReconciler) issuerReady(ctx context.Context, t *v1alpha1.Tenant, ref v1alpha1.IssuerReference) (bool, error) {
	var status cmapi.IssuerStatus
	if ref.Kind == "Issuer" {
		issuer := &cmapi.Issuer{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: builders.NamespaceName(t), Name: ref.Name}, issuer); err != nil {
			return false, err
		}
		status = issuer.Status
	} else {
		issuer := &cmapi.ClusterIssuer{}
		if err := r.Get(ctx, types.NamespacedName{Name: ref.Name}, issuer); err != nil {
			return false, err
		}
		status = issuer.Status
	}
	for _, c := range status.Conditions {
		if c.Type == cmapi.IssuerConditionReady && c.Status == cmmeta.ConditionTrue {
			return true, nil
		}
	}
	return false, nil
}

// reconcilePolicies resolves the BackupPolicy and RetentionPolicy the tenant references.
// It sets PoliciesResolved. A missing policy is a condition, not an error: the policy watch
// brings the tenant back when the policy appears, so there is no retry loop.
func (r *TenantReconciler) reconcilePolicies(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	o := tenantstatus.PoliciesObservation{NoBackupPolicy: t.Spec.BackupPolicyRef == nil}
	defer func() { tenantstatus.SetPoliciesResolved(t, o) }()
	if ref := t.Spec.BackupPolicyRef; ref != nil {
		p := &v1alpha1.BackupPolicy{}
		usable, err := r.resolvePolicy(ctx, "BackupPolicy", ref.Name, p, func() ([]metav1.Condition, int64) { return p.Status.Conditions, p.Status.ObservedGeneration }, &o)
		if err != nil {
			return ctrl.Result{}, err
		}
		if usable {
			s.backupPolicy = p
		}
	}
	if ref := t.Spec.RetentionPolicyRef; ref != nil {
		p := &v1alpha1.RetentionPolicy{}
		usable, err := r.resolvePolicy(ctx, "RetentionPolicy", ref.Name, p, func() ([]metav1.Condition, int64) { return p.Status.Conditions, p.Status.ObservedGeneration }, &o)
		if err != nil {
			return ctrl.Result{}, err
		}
		if usable {
			s.retentionPolicy = p
		}
	}
	return ctrl.Result{}, nil
}

// resolvePolicy reads a policy into p and tells whether it can be used; when not, o says why.
func (r *TenantReconciler) resolvePolicy(ctx context.Context, kind, name string, p client.Object, readiness func() ([]metav1.Condition, int64), o *tenantstatus.PoliciesObservation) (bool, error) {
	switch err := r.Get(ctx, types.NamespacedName{Name: name}, p); {
	case apierrors.IsNotFound(err):
		o.Reason = cmp.Or(o.Reason, v1alpha1.ReasonPolicyNotFound)
		o.Problems = append(o.Problems, fmt.Sprintf("%s %q not found", kind, name))
		return false, nil
	case err != nil:
		o.Err = fmt.Errorf("get %s %s: %w", kind, name, err)
		return false, o.Err
	}
	conditions, observed := readiness()
	if observed == p.GetGeneration() && meta.IsStatusConditionTrue(conditions, v1alpha1.ConditionReady) {
		return true, nil
	}
	message := "not reconciled yet"
	if c := meta.FindStatusCondition(conditions, v1alpha1.ConditionReady); c != nil {
		message = c.Message
	}
	o.Reason = cmp.Or(o.Reason, v1alpha1.ReasonPolicyNotReady)
	o.Problems = append(o.Problems, fmt.Sprintf("%s %q is not ready: %s", kind, name, message))
	return false, nil
}
