package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// erasureRetry is how long a failed erasure waits before it is tried again.
const erasureRetry = 30 * time.Second

// eraseTenant erases a tenant deleted with policy Delete, in an order that leaves nothing behind
// that could bring the data back: the namespace goes (the namespace controller removes its
// contents: database, volume, credentials); the backup CronJobs and any running backup Job stop,
// so that no backup starts or finishes after the erasure; then, in every storage location of the
// tenant's BackupPolicy, its data keys' escrow copies are destroyed and its backups deleted; the
// erasure is recorded; last, the data key Secrets go, and with them the last copy of the keys.
//
// It returns what it waits for, or an error with the pause after which to try again when storage
// is the cause.
func (r *TenantReconciler) eraseTenant(ctx context.Context, t *v1alpha1.Tenant) (string, time.Duration, error) {
	if err := r.deleteNamespace(ctx, t); err != nil {
		return "", 0, err
	}
	// Orphaned, the CronJobs' Jobs stay until stopBackupJobs deletes them in the foreground: with
	// the garbage collector's background deletion a Job could be gone while its pod still
	// uploads. A CronJob being deleted starts no Job.
	if _, err := r.deleteUnwanted(ctx, t, "cron job", &batchv1.CronJobList{}, r.Options.OperatorNamespace, nil,
		client.PropagationPolicy(metav1.DeletePropagationOrphan)); err != nil {
		return "", 0, err
	}
	if err := r.deleteCached(ctx, &corev1.Secret{}, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.BackupJobSecretName(t)}); err != nil {
		return "", 0, err
	}
	if err := r.deleteCached(ctx, &corev1.Secret{}, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.ErasureJobSecretName(t)}); err != nil {
		return "", 0, err
	}
	running, err := r.stopBackupJobs(ctx, t)
	if err != nil {
		return "", 0, err
	}
	receivers, err := r.stopWALReceivers(ctx, t)
	if err != nil {
		return "", 0, err
	}
	running = append(running, receivers...)
	if len(running) > 0 {
		return fmt.Sprintf("Waiting for the tenant's backup Jobs %s in %s to stop before its backups are erased", strings.Join(running, ", "), r.Options.OperatorNamespace), 0, nil
	}
	uids := builders.TenantUIDs(t)
	var policy *v1alpha1.BackupPolicy
	if ref := t.Spec.BackupPolicyRef; ref != nil {
		policy = &v1alpha1.BackupPolicy{}
		if err := r.Get(ctx, types.NamespacedName{Name: ref.Name}, policy); err != nil {
			if apierrors.IsNotFound(err) {
				return "", erasureRetry, fmt.Errorf("BackupPolicy %s not found: without it the tenant's backups and the escrow copies of its data key cannot be reached to erase them; create it again, or remove the finalizer %s to leave them", ref.Name, v1alpha1.TenantFinalizer)
			}
			return "", 0, fmt.Errorf("get backup policy %s: %w", ref.Name, err)
		}
	}
	record, waiting, retryAfter, err := r.eraseData(ctx, t.Name, uids, t.CreationTimestamp.Time, policy, builders.ErasureTenantDeleted, "")
	if err != nil || waiting != "" {
		return waiting, retryAfter, err
	}
	r.event(t, corev1.EventTypeNormal, "DataErased", erasureSummary(record, r.Options.OperatorNamespace))
	return "", 0, nil
}

// eraseData erases a tenant's data from storage and the cluster: in every storage location of the
// policy (none when nil) its data keys' escrow copies then its backups, off the reconcile pass;
// then the record; last the data key Secrets, the last copy of the keys. It returns the record,
// or what it waits for, or an error with the pause after which to try again. notify is the
// Inspector key woken when the erasure ends (the tenant's name when empty).
func (r *TenantReconciler) eraseData(ctx context.Context, tenant string, uids []string, ownedSince time.Time, policy *v1alpha1.BackupPolicy, reason, notify string) (builders.ErasureRecord, string, time.Duration, error) {
	record := builders.ErasureRecord{Tenant: tenant, TenantUIDs: uids, Reason: reason}
	var req *backupcheck.EraseRequest
	if policy != nil {
		req = &backupcheck.EraseRequest{Tenant: tenant, TenantUIDs: uids, OwnedSince: ownedSince, Policy: policy, Key: notify}
		erasure := r.backups.Erase(*req)
		switch {
		case erasure.Err != nil:
			return record, "", erasureRetry, erasure.Err
		case !erasure.Done:
			return record, "Erasing the tenant's data keys and backups from BackupPolicy " + policy.Name + "'s storage", 0, nil
		}
		for _, l := range erasure.Locations {
			record.Locations = append(record.Locations, builders.ErasedLocationOf(l.Location, l.Schedules, l.Plan))
			record.DataKeys = appendNew(record.DataKeys, l.Plan.DataKeys...)
		}
	}
	// The record before the Secrets: a manager killed in between finds the Secrets and finishes,
	// and the record already says what was erased.
	for _, uid := range uids {
		secret := &corev1.Secret{}
		name := builders.DataKeySecretNameFor(tenant, uid)
		switch err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}, secret); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return record, "", 0, fmt.Errorf("get data key %s: %w", name, err)
		}
		record.Secrets = append(record.Secrets, name)
		record.DataKeys = appendNew(record.DataKeys, builders.DataKeyIDs(secret)...)
	}
	if err := r.recordErasure(ctx, &record); err != nil {
		return record, "", 0, err
	}
	for _, name := range record.Secrets {
		if err := r.deleteCached(ctx, &corev1.Secret{}, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}); err != nil {
			return record, "", 0, err
		}
	}
	if req != nil {
		r.backups.ForgetErasure(*req)
	}
	return record, "", 0, nil
}

// recordErasure writes the record once; a record already written (by a pass that was cut short
// before the Secrets went) is kept as it was, with its first time.
func (r *TenantReconciler) recordErasure(ctx context.Context, record *builders.ErasureRecord) error {
	name := builders.ErasureRecordName(record.Tenant, record.TenantUIDs[0])
	existing := &corev1.ConfigMap{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}, existing); {
	case err == nil:
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get erasure record %s: %w", name, err)
	}
	record.ErasedAt = r.Options.Clock.Now().UTC().Truncate(time.Second)
	ac, err := builders.ErasureRecordConfigMap(*record, r.builderOptions())
	if err != nil {
		return err
	}
	if err := r.apply(ctx, ownedObject{"config map", name, ac}); err != nil {
		return err
	}
	return nil
}

// stopBackupJobs deletes the tenant's backup and verification Jobs in the foreground (each stays
// until its pods are gone) and returns those still there: a backup that finished after the
// erasure would store the data, and the key, again. It reads the API server, not the cache: a
// Job its CronJob created a moment ago must not be missed.
func (r *TenantReconciler) stopBackupJobs(ctx context.Context, t *v1alpha1.Tenant) ([]string, error) {
	reader := client.Reader(r.Client)
	if r.APIReader != nil {
		reader = r.APIReader
	}
	list := &batchv1.JobList{}
	if err := reader.List(ctx, list, client.InNamespace(r.Options.OperatorNamespace), client.MatchingLabels(builders.TenantLabels(t))); err != nil {
		return nil, fmt.Errorf("list jobs of tenant %s: %w", t.Name, err)
	}
	var running []string
	for i := range list.Items {
		job := &list.Items[i]
		running = append(running, job.Name)
		if !job.DeletionTimestamp.IsZero() {
			continue
		}
		if err := r.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete job %s: %w", job.Name, err)
		}
	}
	return running, nil
}

func erasureSummary(record builders.ErasureRecord, namespace string) string {
	unreadable, deleted := 0, 0
	var locations []string
	for _, l := range record.Locations {
		unreadable += l.BackupsUnreadableCount
		deleted += l.BackupsDeletedCount
		locations = append(locations, l.Location)
	}
	msg := fmt.Sprintf("Erased the tenant: destroyed data keys %s; %d backups encrypted to them are unreadable by anyone and were deleted",
		strings.Join(record.DataKeys, ", "), unreadable)
	if deleted > 0 {
		msg += fmt.Sprintf("; %d backups made before per-tenant keys were deleted", deleted)
	}
	if len(locations) > 0 {
		msg += " from " + strings.Join(locations, ", ")
	}
	return msg + fmt.Sprintf("; recorded in ConfigMap %s/%s", namespace, builders.ErasureRecordName(record.Tenant, record.TenantUIDs[0]))
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}
