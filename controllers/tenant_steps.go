package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/metrics"
)

// ownedObject is an object to apply, with what to call it in errors.
type ownedObject struct {
	kind, name string
	obj        runtime.ApplyConfiguration
}

// apply writes an owned object with server-side apply under the operator's field owner, taking
// over fields a person changed by hand so the object returns to what the spec says.
func (r *TenantReconciler) apply(ctx context.Context, kind, name string, obj runtime.ApplyConfiguration) error {
	return r.applyAndRead(ctx, kind, name, obj, nil)
}

// applyAndRead applies obj and fills current with the object as it now is. An unchanged object
// applied before is not sent again (see package ssa), so a steady state makes no writes.
func (r *TenantReconciler) applyAndRead(ctx context.Context, kind, name string, obj runtime.ApplyConfiguration, current client.Object) error {
	if _, err := r.applier.Apply(ctx, obj, current); err != nil {
		return fmt.Errorf("apply %s %s: %w", kind, name, err)
	}
	return nil
}

// applyConcurrently applies objects that do not depend on each other at once and returns the
// first error in their order. A new tenant is two dozen round trips to the API server; made one
// after another they were most of the time a tenant took to converge.
func (r *TenantReconciler) applyConcurrently(ctx context.Context, objects []ownedObject) error {
	return firstError(concurrently(ctx, r.applyTasks(objects)...))
}

func (r *TenantReconciler) applyTasks(objects []ownedObject) []func(context.Context) error {
	tasks := make([]func(context.Context) error, len(objects))
	for i, o := range objects {
		tasks[i] = func(ctx context.Context) error { return r.apply(ctx, o.kind, o.name, o.obj) }
	}
	return tasks
}

// concurrently runs tasks at once and returns their errors in the tasks' order.
func concurrently(ctx context.Context, tasks ...func(context.Context) error) []error {
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, task := range tasks {
		wg.Go(func() { errs[i] = task(ctx) })
	}
	wg.Wait()
	return errs
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// reconcileNamespace creates the tenant's namespace with Pod Security restricted, its quota and
// limits, and adopts a namespace retained from an earlier Tenant of the same name.
// It sets NamespaceReady.
func (r *TenantReconciler) reconcileNamespace(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	name := builders.NamespaceName(t)
	set := func(status metav1.ConditionStatus, reason, message string) {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionNamespaceReady, status, reason, message)
	}
	// The cache holds only namespaces we labelled; on a miss, read past it, because a namespace
	// someone else made must never be taken over.
	existing := &corev1.Namespace{}
	err := r.Get(ctx, types.NamespacedName{Name: name}, existing)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, types.NamespacedName{Name: name}, existing)
	}
	switch {
	case apierrors.IsNotFound(err):
		s.namespaceNew = true
	case err != nil:
		set(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, fmt.Sprintf("Cannot read namespace %s: %v", name, err))
		return ctrl.Result{}, fmt.Errorf("get namespace %s: %w", name, err)
	case !ownedByTenant(existing, t):
		set(metav1.ConditionFalse, v1alpha1.ReasonNamespaceConflict,
			fmt.Sprintf("Namespace %s exists and does not belong to this tenant; delete or rename it", name))
		s.namespaceBlocked = true
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("namespace %s belongs to someone else", name))
	case !existing.DeletionTimestamp.IsZero():
		set(metav1.ConditionFalse, v1alpha1.ReasonNamespaceTerminating,
			fmt.Sprintf("Namespace %s from an earlier tenant is still being deleted", name))
		s.namespaceBlocked = true
		return ctrl.Result{RequeueAfter: requeueWaiting}, nil
	case existing.Labels[builders.LabelRetained] == "true":
		// A retained namespace from a deleted Tenant of the same name: take it back with its data.
		patch := client.MergeFrom(existing.DeepCopy())
		delete(existing.Labels, builders.LabelRetained)
		if err := r.Patch(ctx, existing, patch, FieldOwner); err != nil {
			set(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, fmt.Sprintf("Cannot adopt retained namespace %s: %v", name, err))
			return ctrl.Result{}, fmt.Errorf("adopt retained namespace %s: %w", name, err)
		}
		r.event(t, corev1.EventTypeNormal, "Adopted", fmt.Sprintf("Adopted retained namespace %s with its data", name))
	}

	// The namespace first; its quota and limits then together, before anything else goes in.
	err = r.apply(ctx, "namespace", name, builders.Namespace(t))
	if err == nil {
		err = r.applyConcurrently(ctx, []ownedObject{
			{"resource quota", builders.QuotaName, builders.ResourceQuota(t)},
			{"limit range", builders.LimitRangeName, builders.LimitRange(t)},
		})
	}
	if err != nil {
		set(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
		s.namespaceBlocked = true
		return ctrl.Result{}, err
	}
	set(metav1.ConditionTrue, v1alpha1.ReasonSucceeded, fmt.Sprintf("Namespace %s with Pod Security restricted, quota and limits", name))
	return ctrl.Result{}, nil
}

// reconcileAccess binds the tenant's admins, editors and viewers to their roles and lets them read
// their own Tenant; bindings for emptied lists are removed. It sets AccessReady.
func (r *TenantReconciler) reconcileAccess(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	if s.namespaceBlocked {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionAccessReady, metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, "Waiting for the namespace")
		return ctrl.Result{}, nil
	}
	fail := func(err error) (ctrl.Result, error) {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionAccessReady, metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}
	subjects := len(t.Spec.Access.Admins) + len(t.Spec.Access.Editors) + len(t.Spec.Access.Viewers)
	var objects []ownedObject
	keep := map[string]bool{}
	for _, b := range builders.RoleBindings(t) {
		objects = append(objects, ownedObject{"role binding", *b.Name, b})
		keep[*b.Name] = true
	}
	if subjects > 0 {
		objects = append(objects,
			ownedObject{"cluster role", builders.TenantReaderName(t), builders.TenantReaderClusterRole(t)},
			ownedObject{"cluster role binding", builders.TenantReaderName(t), builders.TenantReaderClusterRoleBinding(t)})
	}
	if err := r.applyConcurrently(ctx, objects); err != nil {
		return fail(err)
	}
	existing := &rbacv1.RoleBindingList{}
	if err := r.List(ctx, existing, client.InNamespace(builders.NamespaceName(t)), client.MatchingLabels(builders.TenantLabels(t))); err != nil {
		return fail(fmt.Errorf("list role bindings: %w", err))
	}
	for i := range existing.Items {
		if b := &existing.Items[i]; !keep[b.Name] {
			if err := r.Delete(ctx, b); client.IgnoreNotFound(err) != nil {
				return fail(fmt.Errorf("delete role binding %s: %w", b.Name, err))
			}
		}
	}
	if subjects == 0 {
		if err := r.deleteClusterScoped(ctx, t); err != nil {
			return fail(err)
		}
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionAccessReady, metav1.ConditionTrue, v1alpha1.ReasonNoSubjects,
			"No admins, editors or viewers listed: nobody has access to the tenant's namespace")
		return ctrl.Result{}, nil
	}
	setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionAccessReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded,
		fmt.Sprintf("%d admins, %d editors, %d viewers bound", len(t.Spec.Access.Admins), len(t.Spec.Access.Editors), len(t.Spec.Access.Viewers)))
	return ctrl.Result{}, nil
}

// reconcileDatabase runs the tenant's PostgreSQL: credentials generated once, TLS from
// cert-manager, the StatefulSet and its services. It sets DatabaseReady and status.database.
func (r *TenantReconciler) reconcileDatabase(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	set := func(status metav1.ConditionStatus, reason, message string) {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionDatabaseReady, status, reason, message)
	}
	if s.namespaceBlocked {
		set(metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, "Waiting for the namespace")
		return ctrl.Result{}, nil
	}
	fail := func(err error) (ctrl.Result, error) {
		set(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}
	// The credentials, configuration, services and server certificate together; the
	// StatefulSet, which uses them, after.
	opts := r.builderOptions()
	tasks := append(r.applyTasks([]ownedObject{
		{"config map", builders.DatabaseConfigName(t), builders.DatabaseConfigMap(t)},
		{"service", builders.DatabaseName(t), builders.DatabaseService(t)},
		{"service", builders.DatabaseHeadlessName(t), builders.DatabaseHeadlessService(t)},
	}), func(ctx context.Context) error {
		return r.ensureDatabaseSecrets(ctx, t, s.namespaceNew)
	}, func(ctx context.Context) error {
		err := r.apply(ctx, "certificate", builders.DatabaseCertificateName(t), builders.DatabaseCertificate(t, opts))
		if meta.IsNoMatchError(err) {
			// Without cert-manager there is no server certificate, and PostgreSQL refuses to
			// start without one; the Certificate step says the same in CertificateReady.
			s.certManagerMissing = true
			return nil
		}
		return err
	})
	if err := firstError(concurrently(ctx, tasks...)); err != nil {
		return fail(err)
	}
	sts := &appsv1.StatefulSet{}
	if err := r.applyAndRead(ctx, "statefulset", builders.DatabaseName(t), builders.DatabaseStatefulSet(t, opts), sts); err != nil {
		return fail(err)
	}

	ns := builders.NamespaceName(t)
	t.Status.Database = &v1alpha1.DatabaseStatus{
		Version:    databaseVersion(t),
		Host:       fmt.Sprintf("%s.%s.svc", builders.DatabaseName(t), ns),
		SecretName: builders.DatabaseSecretName(t),
	}
	ready := sts.Status.ReadyReplicas
	t.Status.Database.ReadyReplicas = ready
	if sts.Status.ObservedGeneration >= sts.Generation && ready >= 1 && sts.Status.UpdatedReplicas >= 1 {
		set(metav1.ConditionTrue, v1alpha1.ReasonSucceeded, fmt.Sprintf("PostgreSQL %s ready at %s", databaseVersion(t), t.Status.Database.Host))
		return ctrl.Result{}, nil
	}
	if s.certManagerMissing {
		set(metav1.ConditionFalse, v1alpha1.ReasonCertManagerMissing, "cert-manager is not installed: the database's TLS certificate cannot be issued")
		return ctrl.Result{}, nil
	}
	reason, message, err := r.databaseWaitReason(ctx, t, sts.Status.Replicas, ready)
	if err != nil {
		return fail(err)
	}
	set(metav1.ConditionFalse, reason, message)
	// No timed look again: what the wait depends on (the StatefulSet's status, the claim, the
	// quota's usage) is watched, and its change brings the tenant back. A thousand waiting
	// tenants polled every few seconds would load the API server for nothing.
	return ctrl.Result{}, nil
}

// databaseWaitReason tells what the database is waiting for, looking where a person would: the
// volume claim, the quota and the pod.
func (r *TenantReconciler) databaseWaitReason(ctx context.Context, t *v1alpha1.Tenant, replicas, ready int32) (string, string, error) {
	ns := builders.NamespaceName(t)
	if replicas == 0 {
		if msg := quotaExhausted(ctx, r.Client, ns); msg != "" {
			return v1alpha1.ReasonQuotaExceeded, "The namespace quota leaves no room for the database pod: " + msg + "; raise spec.quota", nil
		}
	}
	pvc := &corev1.PersistentVolumeClaim{}
	pvcName := builders.DatabaseVolumeClaimName(t)
	switch err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: pvcName}, pvc); {
	case err == nil && pvc.Status.Phase == corev1.ClaimPending:
		return v1alpha1.ReasonPVCPending, fmt.Sprintf("Volume claim %s is pending: no volume bound yet; check the storage class", pvcName), nil
	case err != nil && !apierrors.IsNotFound(err):
		return "", "", fmt.Errorf("get volume claim %s: %w", pvcName, err)
	}
	if replicas == 0 {
		return v1alpha1.ReasonProgressing, "Waiting for the database pod to be created", nil
	}
	return v1alpha1.ReasonPodNotReady, fmt.Sprintf("Database pod not ready yet (%d/1)", ready), nil
}

// databaseQuotaResources are the quota resources a database pod and its volume claim use.
var databaseQuotaResources = map[corev1.ResourceName]bool{
	corev1.ResourcePods: true, corev1.ResourceCPU: true, corev1.ResourceMemory: true,
	corev1.ResourceRequestsCPU: true, corev1.ResourceRequestsMemory: true,
	corev1.ResourceLimitsCPU: true, corev1.ResourceLimitsMemory: true,
	corev1.ResourceRequestsStorage: true, corev1.ResourcePersistentVolumeClaims: true,
	corev1.ResourceRequestsEphemeralStorage: true, corev1.ResourceLimitsEphemeralStorage: true,
	"count/statefulsets.apps": true, "count/pods": true, "count/persistentvolumeclaims": true,
}

// quotaExhausted names the resources whose quota is used up in the namespace.
func quotaExhausted(ctx context.Context, c client.Client, ns string) string {
	quota := &corev1.ResourceQuota{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: builders.QuotaName}, quota); err != nil {
		return ""
	}
	var full []string
	for name, hard := range quota.Status.Hard {
		// Only what the database pod and its volume consume: a quota that forbids, say, load
		// balancers outright (0/0) is not what keeps the database from starting.
		if !databaseQuotaResources[name] {
			continue
		}
		if used, ok := quota.Status.Used[name]; ok && used.Cmp(hard) >= 0 {
			full = append(full, fmt.Sprintf("%s %s/%s", name, used.String(), hard.String()))
		}
	}
	return strings.Join(full, ", ")
}

// ensureDatabaseSecrets creates the database credentials and the backup role's password once.
// An existing Secret is never regenerated: the data on the volume was initialized with that
// password.
// In a namespace this pass created there are none to look for.
func (r *TenantReconciler) ensureDatabaseSecrets(ctx context.Context, t *v1alpha1.Tenant, namespaceNew bool) error {
	secrets := []struct {
		name, what string
		build      func(password string) runtime.ApplyConfiguration
	}{
		{builders.DatabaseSecretName(t), "database credentials", func(p string) runtime.ApplyConfiguration { return builders.DatabaseSecret(t, p) }},
		{builders.DatabaseBackupSecretName(t), "the backup role's password", func(p string) runtime.ApplyConfiguration { return builders.DatabaseBackupSecret(t, p) }},
	}
	created := make([]bool, len(secrets))
	tasks := make([]func(context.Context) error, len(secrets))
	for i, s := range secrets {
		tasks[i] = func(ctx context.Context) (err error) {
			created[i], err = r.ensureGeneratedSecret(ctx, t, s.name, namespaceNew, s.build)
			return err
		}
	}
	errs := concurrently(ctx, tasks...)
	var generated []string
	for i, s := range secrets {
		if created[i] {
			generated = append(generated, fmt.Sprintf("%s in Secret %s", s.what, s.name))
		}
	}
	// One event for what a new tenant gets at once: every event is a write.
	if len(generated) > 0 {
		r.event(t, corev1.EventTypeNormal, "CredentialsGenerated", "Generated "+strings.Join(generated, " and "))
	}
	return firstError(errs)
}

// secretExists looks in the cache, which holds the Secrets we created, and confirms a miss with the
// API server: a password is generated only when there is none, so an existing one is never
// overwritten.
func (r *TenantReconciler) secretExists(ctx context.Context, key types.NamespacedName) (bool, error) {
	if err := r.Get(ctx, key, &corev1.Secret{}); err == nil {
		return true, nil
	}
	existing := &metav1.PartialObjectMetadata{}
	existing.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	switch err := r.APIReader.Get(ctx, key, existing); {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("get secret %s: %w", key.Name, err)
	}
}

// ensureGeneratedSecret creates a Secret in the tenant namespace holding a new password, unless
// it exists, and says whether it created one.
func (r *TenantReconciler) ensureGeneratedSecret(ctx context.Context, t *v1alpha1.Tenant, name string, namespaceNew bool, build func(password string) runtime.ApplyConfiguration) (bool, error) {
	if !namespaceNew {
		exists, err := r.secretExists(ctx, types.NamespacedName{Namespace: builders.NamespaceName(t), Name: name})
		if err != nil || exists {
			return false, err
		}
	}
	password, err := generatePassword()
	if err != nil {
		return false, err
	}
	if err := r.apply(ctx, "secret", name, build(password)); err != nil {
		return false, err
	}
	return true, nil
}

// generatePassword returns 32 random bytes from crypto/rand, URL-safe base64 encoded.
func generatePassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate database password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// reconcileFirewall applies the tenant's NetworkPolicies and removes ones no longer wanted.
// It sets FirewallReady.
func (r *TenantReconciler) reconcileFirewall(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	if s.namespaceBlocked {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionFirewallReady, metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, "Waiting for the namespace")
		return ctrl.Result{}, nil
	}
	fail := func(err error) (ctrl.Result, error) {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionFirewallReady, metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}
	policies := builders.NetworkPolicies(t, r.builderOptions())
	keep := map[string]bool{}
	objects := make([]ownedObject, 0, len(policies))
	for _, p := range policies {
		objects = append(objects, ownedObject{"network policy", *p.Name, p})
		keep[*p.Name] = true
	}
	if err := r.applyConcurrently(ctx, objects); err != nil {
		return fail(err)
	}
	existing := &networkingv1.NetworkPolicyList{}
	if err := r.List(ctx, existing, client.InNamespace(builders.NamespaceName(t)), client.MatchingLabels(builders.TenantLabels(t))); err != nil {
		return fail(fmt.Errorf("list network policies: %w", err))
	}
	for i := range existing.Items {
		if p := &existing.Items[i]; !keep[p.Name] {
			if err := r.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
				return fail(fmt.Errorf("delete network policy %s: %w", p.Name, err))
			}
		}
	}
	setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionFirewallReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded,
		fmt.Sprintf("%d network policies: default deny, with the listed allows", len(policies)))
	return ctrl.Result{}, nil
}

// reconcileCertificate requests the certificate for the tenant's hostnames from its issuer and
// reports whether cert-manager issued it. It sets CertificateReady and status.certificate.
func (r *TenantReconciler) reconcileCertificate(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	set := func(status metav1.ConditionStatus, reason, message string) {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionCertificateReady, status, reason, message)
	}
	if s.namespaceBlocked {
		set(metav1.ConditionFalse, v1alpha1.ReasonDependencyNotReady, "Waiting for the namespace")
		return ctrl.Result{}, nil
	}
	opts := r.builderOptions()
	issuer := builders.IssuerFor(t, opts)
	if issuer.Name == "" {
		set(metav1.ConditionFalse, v1alpha1.ReasonIssuerNotFound, "No issuer: set spec.tls.issuerRef or start the operator with --default-issuer-name")
		return ctrl.Result{}, reconcile.TerminalError(errors.New("no issuer configured"))
	}
	ready, err := r.issuerReady(ctx, t, issuer)
	switch {
	case meta.IsNoMatchError(err):
		s.certManagerMissing = true
		set(metav1.ConditionFalse, v1alpha1.ReasonCertManagerMissing, "cert-manager is not installed in the cluster: its CRDs are missing")
		return ctrl.Result{}, nil
	case apierrors.IsNotFound(err):
		set(metav1.ConditionFalse, v1alpha1.ReasonIssuerNotFound, fmt.Sprintf("%s %q not found; create it or change spec.tls.issuerRef", issuer.Kind, issuer.Name))
		return ctrl.Result{}, nil // the issuer watch brings us back
	case err != nil:
		set(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}

	name := builders.TenantCertificateName(t)
	// The apply's answer is the object as stored; the cache may not have seen it yet.
	cert := &cmapi.Certificate{}
	if err := r.applyAndRead(ctx, "certificate", name, builders.TenantCertificate(t, opts), cert); err != nil {
		set(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}
	t.Status.Certificate = &v1alpha1.CertificateStatus{SecretName: cert.Spec.SecretName, NotAfter: cert.Status.NotAfter}
	for _, c := range cert.Status.Conditions {
		if c.Type == cmapi.CertificateConditionReady && c.Status == cmmeta.ConditionTrue {
			set(metav1.ConditionTrue, v1alpha1.ReasonSucceeded, fmt.Sprintf("Certificate for %s issued by %s %s", strings.Join(t.Spec.Hostnames, ", "), issuer.Kind, issuer.Name))
			return ctrl.Result{}, nil
		}
	}
	if !ready {
		set(metav1.ConditionFalse, v1alpha1.ReasonIssuerNotReady, fmt.Sprintf("%s %q is not ready", issuer.Kind, issuer.Name))
		return ctrl.Result{}, nil
	}
	set(metav1.ConditionFalse, v1alpha1.ReasonCertificateNotIssued, "Waiting for cert-manager to issue the certificate: "+certificateMessage(cert))
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

func certificateMessage(cert *cmapi.Certificate) string {
	for _, c := range cert.Status.Conditions {
		if c.Type == cmapi.CertificateConditionReady && c.Message != "" {
			return c.Message
		}
	}
	return "no status from cert-manager yet"
}

func databaseVersion(t *v1alpha1.Tenant) string {
	if t.Spec.Database.Version == "" {
		return "17"
	}
	return t.Spec.Database.Version
}

func (r *TenantReconciler) builderOptions() builders.Options {
	opts := builders.DefaultOptions()
	opts.OperatorNamespace = r.Options.OperatorNamespace
	opts.DefaultIssuer = v1alpha1.IssuerReference{Name: r.Options.DefaultIssuerName, Kind: r.Options.DefaultIssuerKind}
	if r.Options.AgentImage != "" {
		opts.AgentImage = r.Options.AgentImage
	}
	return opts
}

func (r *TenantReconciler) clock() clock.Clock {
	if r.Options.Clock != nil {
		return r.Options.Clock
	}
	return clock.RealClock{}
}

func (r *TenantReconciler) metrics() *metrics.Metrics {
	if r.Options.Metrics != nil {
		return r.Options.Metrics
	}
	return defaultMetrics()
}

func (r *TenantReconciler) event(t *v1alpha1.Tenant, eventType, reason, message string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(t, nil, eventType, reason, reason, "%s", message)
	}
}
