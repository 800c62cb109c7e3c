package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// reconcileDelete carries out the tenant's deletion policy, then releases the finalizer. It sets
// DeletionBlocked while something stands in the way, so a stuck deletion says why.
//
// Retain keeps the namespace with the database volume and credentials, marks it retained, stops
// the database and removes the tenant's users' access; a Tenant of the same name may adopt it. The
// backups stay, and the data key that opens them, under a kept-tenant record: pruned by the
// tenant's RetentionPolicy and erased when its longest period has passed (KeptTenantReconciler).
// Delete, when the allow-delete annotation confirms it, erases the tenant (see eraseTenant).
func (r *TenantReconciler) reconcileDelete(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	if !controllerutil.ContainsFinalizer(t, v1alpha1.TenantFinalizer) {
		return ctrl.Result{}, nil
	}
	var err error
	if effectiveDeletionPolicy(t) == v1alpha1.DeletionPolicyDelete {
		if t.Annotations[v1alpha1.AnnotationErasureStarted] == "" {
			patch := client.MergeFrom(t.DeepCopy())
			metav1.SetMetaDataAnnotation(&t.ObjectMeta, v1alpha1.AnnotationErasureStarted, r.Options.Clock.Now().UTC().Format(time.RFC3339))
			if err := r.Patch(ctx, t, patch, FieldOwner); err != nil {
				return ctrl.Result{}, fmt.Errorf("mark the erasure started: %w", err)
			}
		}
		waiting, retryAfter, err := r.eraseTenant(ctx, t)
		switch {
		case err != nil && retryAfter > 0:
			// Storage refused or could not be reached: said, and tried again after a pause
			// rather than at the error backoff's pace.
			tenantstatus.SetDeletionBlocked(t, v1alpha1.ReasonErasureFailed, err.Error())
			return ctrl.Result{RequeueAfter: retryAfter}, nil
		case err != nil:
			tenantstatus.SetDeletionBlocked(t, v1alpha1.ReasonErasureFailed, err.Error())
			return ctrl.Result{}, err
		case waiting != "":
			// The Jobs' watch, or the Inspector when the erasure ends, brings the tenant back.
			tenantstatus.SetDeletionBlocked(t, v1alpha1.ReasonErasing, waiting)
			return ctrl.Result{RequeueAfter: requeueWaiting}, nil
		}
	} else {
		err = r.retainNamespace(ctx, t)
		if err == nil {
			// From here the backups are the kept-tenant record's to prune and, at the end of
			// their retention, to erase (KeptTenantReconciler).
			err = r.recordKept(ctx, t)
		}
	}
	if err == nil {
		err = r.deleteClusterScoped(ctx, t, nil)
	}
	if err == nil {
		// The backup CronJobs and their Secret in the operator's namespace go. Under Retain the
		// backups in storage stay, and the data key that opens them: they are the last copy of the
		// data.
		err = r.deleteBackupJobs(ctx, t, nil)
	}
	if err == nil {
		// The probe role's password goes with the Tenant; a Tenant of the same name that adopts a
		// retained database makes a new one, which the database pod sets.
		err = r.deleteCached(ctx, &corev1.Secret{}, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.ProbeSecretName(t)})
	}
	if err != nil {
		tenantstatus.SetDeletionBlocked(t, v1alpha1.ReasonDeleting, err.Error())
		return ctrl.Result{}, err
	}
	patch := client.MergeFrom(t.DeepCopy())
	controllerutil.RemoveFinalizer(t, v1alpha1.TenantFinalizer)
	if err := r.Patch(ctx, t, patch, FieldOwner); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	r.backups.Forget(t.Name)
	if r.monitor != nil {
		r.monitor.Forget(t.Name)
	}
	r.Options.Metrics.DeleteTenant(t.Name)
	ctrl.LoggerFrom(ctx).Info("Tenant deleted", "deletionPolicy", t.Spec.DeletionPolicy, "namespace", builders.NamespaceName(t))
	return ctrl.Result{}, nil
}

// effectiveDeletionPolicy is what deleting the Tenant does now: Delete only while the allow-delete
// annotation confirms it. Admission refuses Delete without it; a Tenant that lost the annotation
// afterwards keeps its data.
func effectiveDeletionPolicy(t *v1alpha1.Tenant) v1alpha1.DeletionPolicy {
	if t.Spec.DeletionPolicy == v1alpha1.DeletionPolicyDelete && t.Annotations[v1alpha1.AnnotationAllowDelete] == "true" {
		return v1alpha1.DeletionPolicyDelete
	}
	if !t.DeletionTimestamp.IsZero() && t.Annotations[v1alpha1.AnnotationErasureStarted] != "" {
		return v1alpha1.DeletionPolicyDelete // an erasure under way is finished, not abandoned
	}
	return v1alpha1.DeletionPolicyRetain
}

func (r *TenantReconciler) deleteNamespace(ctx context.Context, t *v1alpha1.Tenant) error {
	ns := &corev1.Namespace{}
	name := builders.NamespaceName(t)
	if err := r.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	if !ownedByTenant(ns, t) {
		return nil // not ours (anymore): never delete someone else's namespace
	}
	if ns.DeletionTimestamp.IsZero() {
		if err := r.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", name, err)
		}
	}
	return nil
}

func (r *TenantReconciler) retainNamespace(ctx context.Context, t *v1alpha1.Tenant) error {
	ns := &corev1.Namespace{}
	name := builders.NamespaceName(t)
	if err := r.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	if !ownedByTenant(ns, t) || !ns.DeletionTimestamp.IsZero() {
		return nil
	}
	if ns.Labels[builders.LabelRetained] != "true" {
		patch := client.MergeFrom(ns.DeepCopy())
		ns.Labels[builders.LabelRetained] = "true"
		if err := r.Patch(ctx, ns, patch, FieldOwner); err != nil {
			return fmt.Errorf("label namespace %s as retained: %w", name, err)
		}
	}
	// The customer's users lose access with their Tenant; the data stays.
	if _, err := r.deleteUnwanted(ctx, t, "role binding", &rbacv1.RoleBindingList{}, name, nil); err != nil {
		return err
	}
	// Stop the database; its volume and credentials stay for a Tenant of the same name.
	sts := &appsv1.StatefulSet{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: name, Name: builders.DatabaseName(t)}, sts); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get database statefulset: %w", err)
	case sts.Spec.Replicas == nil || *sts.Spec.Replicas != 0:
		patch := client.MergeFrom(sts.DeepCopy())
		zero := int32(0)
		sts.Spec.Replicas = &zero
		if err := r.Patch(ctx, sts, patch, FieldOwner); err != nil {
			return fmt.Errorf("stop database statefulset: %w", err)
		}
	}
	return nil
}
