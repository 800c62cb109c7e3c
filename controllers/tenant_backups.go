package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;delete

// reconcileBackups schedules the tenant's backups and verifications as CronJobs in the operator's
// namespace and judges what the Inspector last found in storage. It sets BackupsFresh,
// BackupVerified and status.backups.
func (r *TenantReconciler) reconcileBackups(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	o := tenantstatus.BackupsObservation{ArchivesWAL: len(s.walArchive.Slots) > 0}
	defer func() {
		tenantstatus.SetBackupsFresh(t, o)
		tenantstatus.SetBackupVerified(t, o)
		tenantstatus.SetWALArchiving(t, o)
	}()
	switch {
	case t.Spec.BackupPolicyRef == nil:
		o.NoPolicy = true
		r.backups.Forget(t.Name)
		r.Options.Metrics.DeleteBackups(t.Name)
		t.Status.Backups = nil
		o.Err = r.deleteBackupJobs(ctx, t, nil)
		return ctrl.Result{}, o.Err
	case s.backupPolicy == nil:
		// The policy is missing or invalid (PoliciesResolved says which). Existing CronJobs stay:
		// stopping backups because a policy is being fixed would lose more than it saves.
		o.UnavailablePolicy = t.Spec.BackupPolicyRef.Name
		return ctrl.Result{}, nil
	case s.namespaceBlocked:
		o.Blocked = true
		return ctrl.Result{}, nil
	}
	policy := s.backupPolicy
	secretPending, err := r.applyBackupJobSecret(ctx, t)
	if err == nil {
		// Before the CronJobs, which mount it.
		err = r.ensureDataKey(ctx, t, policy)
	}
	var expected []backupcheck.Expected
	if err == nil {
		expected, err = r.applyBackupCronJobs(ctx, t, policy)
	}
	var receivers map[string]backupcheck.Receiver
	if err == nil {
		receivers, err = r.applyWALReceivers(ctx, t, policy)
	}
	var jobs backupcheck.Jobs
	if err == nil {
		jobs, err = r.backupJobs(ctx, t)
	}
	if o.Err = err; err != nil {
		return ctrl.Result{}, err
	}

	inspection := r.backups.Observe(backupcheck.Request{Tenant: t.Name, Location: tenantLocation(t),
		Policy: policy, Retention: s.retentionPolicy, FinishedJobs: jobs.Finished, TenantUIDs: builders.TenantUIDs(t)})
	for _, p := range r.backups.TakePruned(t.Name) {
		r.event(t, corev1.EventTypeNormal, "BackupsPruned", fmt.Sprintf("Pruned %d backups of schedule %s by RetentionPolicy %s: %s",
			len(p.IDs), p.Schedule, p.Policy, strings.Join(p.IDs, ", ")))
	}
	now := r.Options.Clock.Now()
	verdict := backupcheck.Judge(backupcheck.Input{Policy: policy, Schedules: expected, Jobs: jobs.NewestBackup, Inspection: inspection,
		Receivers: receivers, Now: now})
	o.Verdict = &verdict
	t.Status.Backups = verdict.Status
	r.Options.Metrics.SetBackups(t.Name, verdict.Metrics)

	if secretPending {
		return ctrl.Result{RequeueAfter: requeueWaiting}, nil
	}
	// Look again when the next look at storage is due or a schedule turns stale, whichever comes
	// first; a finished look brings the tenant back sooner.
	next := r.backups.NextLook(t.Name).Sub(now)
	if !verdict.StaleAt.IsZero() && verdict.StaleAt.Sub(now) < next {
		next = verdict.StaleAt.Sub(now) + time.Second
	}
	if verdict.WAL != nil && verdict.WAL.Status == metav1.ConditionUnknown {
		// A receiver that is not ready turns WALArchiving Failing after a grace, which no event
		// announces.
		next = min(next, walRecheck)
	}
	return ctrl.Result{RequeueAfter: max(next, time.Second)}, nil
}

// applyBackupJobSecret copies what the backup jobs need into the operator's namespace: the backup
// role's password and the database's CA. It reports whether to look again soon because the
// password Secret is not in the cache yet (it was created in this pass).
func (r *TenantReconciler) applyBackupJobSecret(ctx context.Context, t *v1alpha1.Tenant) (bool, error) {
	ns := builders.NamespaceName(t)
	passwordSecret := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: builders.DatabaseBackupSecretName(t)}, passwordSecret); err != nil {
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, fmt.Errorf("get secret %s: %w", builders.DatabaseBackupSecretName(t), err)
	}
	// The CA comes with the database's certificate; until cert-manager issued it, jobs would
	// fail to verify the server, and the freshness checks will say so.
	ca := ""
	tlsSecret := &corev1.Secret{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: builders.DatabaseTLSSecretName(t)}, tlsSecret); {
	case err == nil:
		ca = string(tlsSecret.Data[builders.DatabaseCAKey])
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("get secret %s: %w", builders.DatabaseTLSSecretName(t), err)
	}
	name := builders.BackupJobSecretName(t)
	return false, r.apply(ctx, ownedObject{"secret", name,
		builders.BackupJobSecret(t, string(passwordSecret.Data[builders.BackupSecretKeyPassword]), ca, r.builderOptions())})
}

// applyBackupCronJobs applies a backup CronJob per schedule, and a verification CronJob per
// schedule when the policy asks for drills, and deletes the tenant's CronJobs the policy no
// longer asks for. It returns what each schedule is expected to have stored.
func (r *TenantReconciler) applyBackupCronJobs(ctx context.Context, t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy) ([]backupcheck.Expected, error) {
	opts := r.builderOptions()
	keep := map[string]bool{}
	var out []backupcheck.Expected
	for _, spec := range policy.Spec.Schedules {
		e, err := backupcheck.Expect(policy, spec)
		if err != nil {
			return nil, err
		}
		cj, err := builders.BackupCronJob(t, policy, spec, e.ExpectedInterval, opts)
		if err != nil {
			return nil, err
		}
		name := builders.BackupCronJobName(t, spec.Name)
		if e.Since, err = r.applyCronJob(ctx, ownedObject{"cron job", name, cj}); err != nil {
			return nil, err
		}
		keep[name] = true
		if policy.Spec.Verification != nil {
			vj, err := builders.VerifyCronJob(t, policy, spec, e.VerifyInterval, opts)
			if err != nil {
				return nil, err
			}
			vname := builders.VerifyCronJobName(t, spec.Name)
			if e.VerifySince, err = r.applyCronJob(ctx, ownedObject{"cron job", vname, vj}); err != nil {
				return nil, err
			}
			keep[vname] = true
		}
		out = append(out, e)
	}
	return out, r.deleteBackupJobs(ctx, t, keep)
}

// applyCronJob applies a CronJob and tells when it was created: freshness expects no backup of
// a schedule before its CronJob existed.
func (r *TenantReconciler) applyCronJob(ctx context.Context, o ownedObject) (time.Time, error) {
	current := &batchv1.CronJob{}
	if err := r.applyAndRead(ctx, o, current); err != nil {
		return time.Time{}, err
	}
	return current.CreationTimestamp.Time, nil
}

// deleteBackupJobs deletes the tenant's CronJobs in the operator's namespace except those in keep,
// and with keep nil its backup job Secret too. Backups in storage are never touched: they are
// data, and retention alone removes them.
func (r *TenantReconciler) deleteBackupJobs(ctx context.Context, t *v1alpha1.Tenant, keep map[string]bool) error {
	ns := r.Options.OperatorNamespace
	deleted, err := r.deleteUnwanted(ctx, t, "cron job", &batchv1.CronJobList{}, ns, keep, client.PropagationPolicy(metav1.DeletePropagationBackground))
	for _, name := range deleted {
		r.event(t, corev1.EventTypeNormal, "BackupScheduleRemoved", fmt.Sprintf("Deleted CronJob %s/%s: its policy no longer asks for it", ns, name))
	}
	if err != nil || keep != nil {
		return err
	}
	// The WAL receivers go too; the database drops their slots when it next starts.
	if _, err := r.deleteUnwanted(ctx, t, "deployment", &appsv1.DeploymentList{}, ns, nil); err != nil {
		return err
	}
	if err := r.deleteCached(ctx, &corev1.Secret{}, types.NamespacedName{Namespace: ns, Name: builders.ManifestKeySecretName(t)}); err != nil {
		return err
	}
	return r.deleteCached(ctx, &corev1.Secret{}, types.NamespacedName{Namespace: ns, Name: builders.BackupJobSecretName(t)})
}

// backupJobs lists the tenant's backup and verification Jobs from the cache.
func (r *TenantReconciler) backupJobs(ctx context.Context, t *v1alpha1.Tenant) (backupcheck.Jobs, error) {
	list := &batchv1.JobList{}
	if err := r.List(ctx, list, client.InNamespace(r.Options.OperatorNamespace), client.MatchingLabels(builders.TenantLabels(t))); err != nil {
		return backupcheck.Jobs{}, fmt.Errorf("list jobs of tenant %s: %w", t.Name, err)
	}
	return backupcheck.JobsOf(list.Items), nil
}

// tenantLocation is the time zone retention cuts days in: the tenant's business hours' zone when
// it has one, else UTC.
func tenantLocation(t *v1alpha1.Tenant) *time.Location {
	if m := t.Spec.Monitoring; m != nil && m.BusinessHours != nil {
		if loc, err := time.LoadLocation(m.BusinessHours.TimeZone); err == nil {
			return loc
		}
	}
	return time.UTC
}
