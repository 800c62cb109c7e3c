package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/retention"
)

// keptRecheck is how often a kept tenant whose policies are missing is looked at again.
const keptRecheck = time.Hour

// KeptTenantReconciler ends what a Tenant deleted with Retain left in storage, so that no backup
// outlives what was promised: from its kept-tenant record (builders.KeptTenant) it has the
// backups pruned by the RetentionPolicy as they were while the Tenant lived, and erases them, keys
// first, with the namespace Retain kept (database, volume, credentials), once the policy's longest
// period has passed since the deletion, or at once when the record is annotated
// tenancy.tenantops.io/erase: "true". A Tenant of the same name that adopted
// the data makes the record moot: the data is that Tenant's again. It shares the Tenant
// reconciler's backup Inspector, which does the storage work off the reconcile pass.
type KeptTenantReconciler struct {
	*TenantReconciler
}

// SetupWithManager watches the kept-tenant records in the operator's namespace, those of this
// shard's tenants.
func (r *KeptTenantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	isRecord := predicate.NewPredicateFuncs(func(o client.Object) bool {
		cm, ok := o.(*corev1.ConfigMap)
		return ok && cm.Namespace == r.Options.OperatorNamespace && cm.Labels[builders.LabelComponent] == builders.ComponentKeptTenant &&
			r.Options.Shard.Owns(keptTenantOf(cm))
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}, builder.WithPredicates(isRecord)).
		WatchesRawSource(r.keptWake).
		Named("kept-tenant").
		Complete(r)
}

// Reconcile prunes or erases one kept tenant's backups, if the tenant is this shard's.
func (r *KeptTenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, req.NamespacedName, cm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Options.Shard.Owns(keptTenantOf(cm)) {
		// The record of another shard's tenant: that shard prunes and erases its backups.
		return ctrl.Result{}, nil
	}
	inspectorKey := backupcheck.KeptKey(cm.Name)
	kept, err := builders.KeptTenantOf(cm)
	if err != nil {
		// Only a hand edit breaks a record; nothing to retry until it is mended.
		r.keptEvent(cm, corev1.EventTypeWarning, "InvalidRecord", err.Error())
		return ctrl.Result{}, nil
	}
	adopted, err := r.adopted(ctx, kept)
	if err != nil {
		return ctrl.Result{}, err
	}
	if adopted != "" {
		r.backups.Forget(inspectorKey)
		r.keptEvent(cm, corev1.EventTypeNormal, "Adopted", fmt.Sprintf("Tenant %s adopted the data; its own retention and deletion policy cover the backups now", adopted))
		return ctrl.Result{}, r.deleteKeptRecord(ctx, cm)
	}
	policy := &v1alpha1.BackupPolicy{}
	if err := r.Get(ctx, types.NamespacedName{Name: kept.BackupPolicy}, policy); err != nil {
		if apierrors.IsNotFound(err) {
			r.keptEvent(cm, corev1.EventTypeWarning, "BackupPolicyMissing", fmt.Sprintf("BackupPolicy %s not found: the kept backups of tenant %s can be neither pruned nor erased until it exists again", kept.BackupPolicy, kept.Tenant))
			return ctrl.Result{RequeueAfter: keptRecheck}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get backup policy %s: %w", kept.BackupPolicy, err)
	}
	var retentionPolicy *v1alpha1.RetentionPolicy
	if kept.RetentionPolicy != "" {
		retentionPolicy = &v1alpha1.RetentionPolicy{}
		if err := r.Get(ctx, types.NamespacedName{Name: kept.RetentionPolicy}, retentionPolicy); err != nil {
			if !apierrors.IsNotFound(err) {
				return ctrl.Result{}, fmt.Errorf("get retention policy %s: %w", kept.RetentionPolicy, err)
			}
			r.keptEvent(cm, corev1.EventTypeWarning, "RetentionPolicyMissing", fmt.Sprintf("RetentionPolicy %s not found: the kept backups of tenant %s are kept until it exists again or the record is annotated %s", kept.RetentionPolicy, kept.Tenant, v1alpha1.AnnotationErase))
			retentionPolicy = nil
		}
	}

	now := r.Options.Clock.Now()
	reason, until, bounded := keptVerdict(cm, kept, retentionPolicy, now)
	if reason != "" {
		// Erasing a kept tenant erases what Retain kept of it, its database first.
		if err := r.deleteRetainedNamespace(ctx, kept); err != nil {
			return ctrl.Result{}, err
		}
		record, waiting, retryAfter, err := r.eraseData(ctx, kept.Tenant, kept.TenantUIDs, kept.CreatedAt, policy, reason, inspectorKey)
		switch {
		case err != nil && retryAfter > 0:
			r.keptEvent(cm, corev1.EventTypeWarning, "ErasureFailed", err.Error())
			return ctrl.Result{RequeueAfter: retryAfter}, nil
		case err != nil:
			return ctrl.Result{}, err
		case waiting != "":
			// The Inspector wakes the record when the erasure ends.
			return ctrl.Result{RequeueAfter: requeueWaiting}, nil
		}
		r.backups.Forget(inspectorKey)
		r.keptEvent(cm, corev1.EventTypeNormal, "DataErased", erasureSummary(record, r.Options.OperatorNamespace))
		return ctrl.Result{}, r.deleteKeptRecord(ctx, cm)
	}
	if retentionPolicy != nil {
		// Until then the backups are pruned as they were while the Tenant lived; the Inspector
		// looks off this pass and wakes the record when it has.
		r.backups.Observe(backupcheck.Request{Key: inspectorKey, Tenant: kept.Tenant, Location: keptLocation(kept),
			Policy: policy, Retention: retentionPolicy, TenantUIDs: kept.TenantUIDs})
		for _, p := range r.backups.TakePruned(inspectorKey) {
			r.keptEvent(cm, corev1.EventTypeNormal, "BackupsPruned", fmt.Sprintf("Deleted %d kept backups of schedule %s (RetentionPolicy %s): %s",
				len(p.IDs), p.Schedule, p.Policy, strings.Join(p.IDs[:min(len(p.IDs), 10)], ", ")))
		}
	}
	next := r.backups.Interval()
	if bounded && until.Sub(now) < next {
		next = until.Sub(now) + time.Second
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// keptVerdict decides whether a kept tenant's data is erased now, and why; otherwise until when
// it is kept (bounded false: no period of the policy bounds it).
func keptVerdict(cm *corev1.ConfigMap, kept builders.KeptTenant, policy *v1alpha1.RetentionPolicy, now time.Time) (reason string, until time.Time, bounded bool) {
	if cm.Annotations[v1alpha1.AnnotationErase] == "true" {
		return builders.ErasureRequested, now, true
	}
	if policy == nil {
		return "", time.Time{}, false
	}
	until, bounded, err := retention.KeptUntil(policy.Spec, kept.DeletedAt)
	if err != nil || !bounded {
		return "", time.Time{}, false
	}
	if !now.Before(until) {
		return builders.ErasureRetentionEnded, until, true
	}
	return "", until, true
}

// adopted returns the name of the Tenant that adopted the kept data, if one did.
func (r *KeptTenantReconciler) adopted(ctx context.Context, kept builders.KeptTenant) (string, error) {
	t := &v1alpha1.Tenant{}
	switch err := r.Get(ctx, types.NamespacedName{Name: kept.Tenant}, t); {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("get tenant %s: %w", kept.Tenant, err)
	}
	if string(t.UID) != kept.TenantUIDs[0] && slices.Contains(builders.TenantUIDs(t), kept.TenantUIDs[0]) {
		return t.Name, nil
	}
	return "", nil
}

// deleteRetainedNamespace deletes the namespace Retain kept for the tenant (its database, volume
// and credentials) while it still holds this Tenant object's data and nobody adopted it.
func (r *KeptTenantReconciler) deleteRetainedNamespace(ctx context.Context, kept builders.KeptTenant) error {
	ns := &corev1.Namespace{}
	name := builders.NamespacePrefix + kept.Tenant
	switch err := r.Get(ctx, types.NamespacedName{Name: name}, ns); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	if ns.Labels[builders.LabelManagedBy] != builders.ManagedByValue || ns.Labels[builders.LabelRetained] != "true" ||
		ns.Annotations[builders.AnnotationTenantUID] != kept.TenantUIDs[0] || !ns.DeletionTimestamp.IsZero() {
		return nil
	}
	if err := r.Delete(ctx, ns); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete retained namespace %s: %w", name, err)
	}
	return nil
}

func (r *KeptTenantReconciler) deleteKeptRecord(ctx context.Context, cm *corev1.ConfigMap) error {
	if err := r.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete kept-tenant record %s: %w", cm.Name, err)
	}
	return nil
}

func (r *KeptTenantReconciler) keptEvent(cm *corev1.ConfigMap, eventType, reason, message string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(cm, nil, eventType, reason, reason, "%s", message)
	}
}

func keptLocation(kept builders.KeptTenant) *time.Location {
	if loc, err := time.LoadLocation(kept.TimeZone); err == nil && kept.TimeZone != "" {
		return loc
	}
	return time.UTC
}

// recordKept writes the kept-tenant record of a Tenant being deleted with Retain, when it has
// backups to keep.
func (r *TenantReconciler) recordKept(ctx context.Context, t *v1alpha1.Tenant) error {
	if t.Spec.BackupPolicyRef == nil || t.UID == "" {
		return nil
	}
	k := builders.KeptTenant{Tenant: t.Name, TenantUIDs: builders.TenantUIDs(t), CreatedAt: t.CreationTimestamp.UTC(),
		DeletedAt: r.Options.Clock.Now().UTC().Truncate(time.Second), BackupPolicy: t.Spec.BackupPolicyRef.Name}
	if t.DeletionTimestamp != nil {
		k.DeletedAt = t.DeletionTimestamp.UTC()
	}
	if ref := t.Spec.RetentionPolicyRef; ref != nil {
		k.RetentionPolicy = ref.Name
	}
	if loc := tenantLocation(t); loc != time.UTC {
		k.TimeZone = loc.String()
	}
	ac, err := builders.KeptTenantConfigMap(k, r.builderOptions())
	if err != nil {
		return err
	}
	return r.apply(ctx, ownedObject{"config map", builders.KeptTenantName(t.Name, k.TenantUIDs[0]), ac})
}
