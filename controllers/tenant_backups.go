package controllers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/freshness"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/schedule"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch

// storageTimeout bounds one look at a schedule's storage, so an unresponsive endpoint costs a
// reconcile worker seconds, not minutes.
const storageTimeout = 30 * time.Second

// backupCheck is what the operator last found in a tenant's backup storage. Listing storage is the
// expensive part of a pass, so it is done on an interval and when a backup job finishes, not on
// every reconcile.
type backupCheck struct {
	at time.Time
	// key identifies the policies the check was made under; a policy change checks again.
	key string
	// finishedJobs are the jobs that had finished when the check was made.
	finishedJobs map[string]bool
	schedules    map[string]scheduleCheck
}

// scheduleCheck is one schedule's storage, as listed.
type scheduleCheck struct {
	err error
	// backups, newest first.
	backups []catalog.Entry
	// nextPrune are the ids retention will prune next; pruneErr why pruning did not run.
	nextPrune []string
	pruneErr  error
}

// backupChecks holds the last check of every tenant, between reconciles.
type backupChecks struct {
	mu     sync.Mutex
	checks map[string]*backupCheck
}

func (c *backupChecks) get(tenant string) *backupCheck {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checks[tenant]
}

func (c *backupChecks) put(tenant string, check *backupCheck) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == nil {
		c.checks = map[string]*backupCheck{}
	}
	c.checks[tenant] = check
}

func (c *backupChecks) forget(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.checks, tenant)
}

// reconcileBackups schedules the tenant's backups and verifications as CronJobs in the operator's
// namespace, checks in storage that recent backups exist, prunes by the RetentionPolicy, and sets
// BackupsFresh, BackupVerified and status.backups.
func (r *TenantReconciler) reconcileBackups(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	setFresh := func(status metav1.ConditionStatus, reason, message string) {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionBackupsFresh, status, reason, message)
	}
	setVerified := func(status metav1.ConditionStatus, reason, message string) {
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionBackupVerified, status, reason, message)
	}
	if t.Spec.BackupPolicyRef == nil {
		if err := r.deleteBackupJobs(ctx, t, nil); err != nil {
			setFresh(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
			return ctrl.Result{}, err
		}
		r.backupChecks.forget(t.Name)
		r.metrics().DeleteBackups(t.Name)
		t.Status.Backups = nil
		setFresh(metav1.ConditionTrue, v1alpha1.ReasonNoPolicy, "No BackupPolicy referenced: this tenant's database is not backed up")
		setVerified(metav1.ConditionUnknown, v1alpha1.ReasonNoPolicy, "No BackupPolicy referenced")
		return ctrl.Result{}, nil
	}
	policy := s.backupPolicy
	if policy == nil {
		// The policy is missing or invalid (PoliciesResolved says which). Existing CronJobs stay:
		// stopping backups because a policy is being fixed would lose more than it saves.
		msg := fmt.Sprintf("BackupPolicy %q is not available; see PoliciesResolved", t.Spec.BackupPolicyRef.Name)
		setFresh(metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady, msg)
		setVerified(metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady, msg)
		return ctrl.Result{}, nil
	}
	if s.namespaceBlocked {
		setFresh(metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady, "Waiting for the namespace")
		return ctrl.Result{}, nil
	}
	fail := func(err error) (ctrl.Result, error) {
		setFresh(metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, err.Error())
		return ctrl.Result{}, err
	}

	waitForSecret, err := r.applyBackupJobSecret(ctx, t)
	if err != nil {
		return fail(err)
	}
	expected, err := r.applyBackupCronJobs(ctx, t, policy)
	if err != nil {
		return fail(err)
	}
	jobs, err := r.newestBackupJobs(ctx, t)
	if err != nil {
		return fail(err)
	}

	check := r.backupChecks.get(t.Name)
	if r.backupCheckDue(check, s, jobs.finished) {
		check = r.checkBackupStorage(ctx, t, policy, s.retentionPolicy, jobs.finished)
		r.backupChecks.put(t.Name, check)
	}

	now := r.clock().Now()
	var verdicts []freshness.Verdict
	var states []v1alpha1.ScheduleBackupStatus
	var series []metrics.ScheduleBackups
	var newest, newestVerified time.Time
	verification := verificationSummary{}
	previous := map[string]v1alpha1.ScheduleBackupStatus{}
	if t.Status.Backups != nil {
		for _, st := range t.Status.Backups.Schedules {
			previous[st.Name] = st
		}
	}
	for _, e := range expected {
		sc := check.schedules[e.Name]
		obs := freshness.Observation{ListError: sc.err, LastJob: jobs.bySchedule[e.Name]}
		st := v1alpha1.ScheduleBackupStatus{Name: e.Name, ExpectedInterval: &metav1.Duration{Duration: e.AllowedAge()}, Count: int32(len(sc.backups)), NextPrune: sc.nextPrune}
		m := metrics.ScheduleBackups{Schedule: e.Name, AllowedAge: e.AllowedAge()}
		if len(sc.backups) > 0 {
			b := sc.backups[0]
			obs.Newest = &freshness.Backup{ID: b.ID, FinishedAt: b.FinishedAt}
			st.LastSuccessTime = &metav1.Time{Time: b.FinishedAt}
			st.LastBackupID = b.ID
			st.LastBackupSizeBytes = b.Size
			m.LastSuccess, m.SizeBytes = b.FinishedAt, b.Size
			if b.FinishedAt.After(newest) {
				newest = b.FinishedAt
			}
		} else if prev := previous[e.Name]; sc.err == nil && prev.LastSuccessTime != nil {
			// Backups that were there are gone: keep telling when the last one was seen, and
			// call them Missing rather than waiting for a first one.
			obs.LastSeen = &freshness.Backup{ID: prev.LastBackupID, FinishedAt: prev.LastSuccessTime.Time}
			st.LastSuccessTime, st.LastBackupID = prev.LastSuccessTime, prev.LastBackupID
		}
		if v := newestVerification(sc.backups); v != nil {
			st.LastVerificationTime = &metav1.Time{Time: v.CheckedAt}
			if v.OK {
				m.LastVerified = v.CheckedAt
				if v.CheckedAt.After(newestVerified) {
					newestVerified = v.CheckedAt
				}
			}
			verification.add(e, policy, v, now)
		} else if sc.err == nil {
			verification.add(e, policy, nil, now)
		}
		verdicts = append(verdicts, freshness.Judge(e.Schedule, obs, now))
		states = append(states, st)
		series = append(series, m)
	}
	t.Status.Backups = &v1alpha1.BackupsStatus{Schedules: states}
	if !newest.IsZero() {
		t.Status.Backups.LastSuccessTime = &metav1.Time{Time: newest}
	}
	if !newestVerified.IsZero() {
		t.Status.Backups.LastVerificationTime = &metav1.Time{Time: newestVerified}
	}
	r.metrics().SetBackups(t.Name, series)

	sum := freshness.Summarize(verdicts)
	message := sum.Message
	if policy.Spec.Suspend {
		message = fmt.Sprintf("Backups are suspended by BackupPolicy %s; %s", policy.Name, message)
	}
	switch {
	case sum.State == freshness.Fresh:
		setFresh(metav1.ConditionTrue, v1alpha1.ReasonFresh, message)
	case sum.State == freshness.Pending:
		setFresh(metav1.ConditionTrue, v1alpha1.ReasonFirstBackupPending, message)
	case policy.Spec.Suspend:
		setFresh(metav1.ConditionFalse, v1alpha1.ReasonSuspended, message)
	default:
		setFresh(metav1.ConditionFalse, freshnessReason(sum.State), message)
	}
	switch {
	case policy.Spec.Verification == nil:
		setVerified(metav1.ConditionUnknown, v1alpha1.ReasonNotVerified, fmt.Sprintf("BackupPolicy %s asks for no verification", policy.Name))
	default:
		verification.set(setVerified)
	}

	if waitForSecret {
		return ctrl.Result{RequeueAfter: requeueWaiting}, nil
	}
	// Look again when the next check is due or a schedule turns stale, whichever comes first.
	next := r.backupCheckInterval() - now.Sub(check.at)
	if !sum.StaleAt.IsZero() && sum.StaleAt.Sub(now) < next {
		next = sum.StaleAt.Sub(now) + time.Second
	}
	return ctrl.Result{RequeueAfter: max(next, time.Second)}, nil
}

func freshnessReason(s freshness.State) string {
	switch s {
	case freshness.Stale:
		return v1alpha1.ReasonStale
	case freshness.Missing:
		return v1alpha1.ReasonMissing
	case freshness.JobFailing:
		return v1alpha1.ReasonJobFailing
	case freshness.StorageUnreachable:
		return v1alpha1.ReasonStorageUnreachable
	}
	return v1alpha1.ReasonFresh
}

// expectedSchedule is one schedule of the policy with what freshness expects of it.
type expectedSchedule struct {
	freshness.Schedule
	spec v1alpha1.BackupSchedule
	// verifySince is when the verification CronJob was created; zero without one.
	verifySince time.Time
	// verifyInterval is the verification schedule's longest gap.
	verifyInterval time.Duration
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
	return false, r.apply(ctx, "secret", name,
		builders.BackupJobSecret(t, string(passwordSecret.Data[builders.BackupSecretKeyPassword]), ca, r.builderOptions()))
}

// applyBackupCronJobs applies a backup CronJob per schedule, and a verification CronJob per
// schedule when the policy asks for drills, and deletes the tenant's CronJobs the policy no
// longer asks for.
func (r *TenantReconciler) applyBackupCronJobs(ctx context.Context, t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy) ([]expectedSchedule, error) {
	opts := r.builderOptions()
	keep := map[string]bool{}
	var out []expectedSchedule
	for _, spec := range policy.Spec.Schedules {
		interval, err := longestGap(spec.Schedule)
		if err != nil {
			// Admission refuses a bad cron; the policy's own condition reports one that slipped by.
			return nil, fmt.Errorf("schedule %s: %w", spec.Name, err)
		}
		e := expectedSchedule{spec: spec, Schedule: freshness.Schedule{Name: spec.Name, ExpectedInterval: interval}}
		if spec.MaxAge != "" {
			if p, err := schedule.ParsePeriod(spec.MaxAge); err == nil {
				e.MaxAge = p.Approximate()
			}
		}
		cj, err := builders.BackupCronJob(t, policy, spec, interval, opts)
		if err != nil {
			return nil, err
		}
		name := builders.BackupCronJobName(t, spec.Name)
		if e.Since, err = r.applyCronJob(ctx, name, cj); err != nil {
			return nil, err
		}
		keep[name] = true
		if policy.Spec.Verification != nil {
			verifyInterval, err := longestGap(policy.Spec.Verification.Schedule)
			if err != nil {
				return nil, fmt.Errorf("verification schedule: %w", err)
			}
			vj, err := builders.VerifyCronJob(t, policy, spec, verifyInterval, opts)
			if err != nil {
				return nil, err
			}
			vname := builders.VerifyCronJobName(t, spec.Name)
			if e.verifySince, err = r.applyCronJob(ctx, vname, vj); err != nil {
				return nil, err
			}
			keep[vname] = true
			e.verifyInterval = verifyInterval
		}
		out = append(out, e)
	}
	return out, r.deleteBackupJobs(ctx, t, keep)
}

// applyCronJob applies a CronJob and tells when it was created: freshness expects no backup of
// a schedule before its CronJob existed.
func (r *TenantReconciler) applyCronJob(ctx context.Context, name string, cj *batchv1ac.CronJobApplyConfiguration) (time.Time, error) {
	current := &batchv1.CronJob{}
	if err := r.applyAndRead(ctx, "cron job", name, cj, current); err != nil {
		return time.Time{}, err
	}
	return current.CreationTimestamp.Time, nil
}

// deleteBackupJobs deletes the tenant's CronJobs in the operator's namespace except those in keep,
// and with keep nil its backup job Secret too. Backups in storage are never touched: they are
// data, and retention alone removes them.
func (r *TenantReconciler) deleteBackupJobs(ctx context.Context, t *v1alpha1.Tenant, keep map[string]bool) error {
	list := &batchv1.CronJobList{}
	if err := r.List(ctx, list, client.InNamespace(r.Options.OperatorNamespace), client.MatchingLabels(builders.TenantLabels(t))); err != nil {
		return fmt.Errorf("list cron jobs of tenant %s: %w", t.Name, err)
	}
	for i := range list.Items {
		cj := &list.Items[i]
		if keep[cj.Name] {
			continue
		}
		if err := r.Delete(ctx, cj, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete cron job %s: %w", cj.Name, err)
		}
		r.event(t, corev1.EventTypeNormal, "BackupScheduleRemoved", fmt.Sprintf("Deleted CronJob %s/%s: its policy no longer asks for it", cj.Namespace, cj.Name))
	}
	if keep != nil {
		return nil
	}
	// Looked up in the cache first: a tenant without backups must not cost a delete request on
	// every pass.
	secret := &corev1.Secret{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.BackupJobSecretName(t)}, secret); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get secret %s: %w", builders.BackupJobSecretName(t), err)
	}
	if err := r.Delete(ctx, secret); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete secret %s: %w", secret.Name, err)
	}
	return nil
}

// backupJobs are the newest backup Job of each schedule and the names of finished Jobs.
type backupJobs struct {
	bySchedule map[string]*freshness.Job
	finished   map[string]bool
}

func (r *TenantReconciler) newestBackupJobs(ctx context.Context, t *v1alpha1.Tenant) (backupJobs, error) {
	out := backupJobs{bySchedule: map[string]*freshness.Job{}, finished: map[string]bool{}}
	list := &batchv1.JobList{}
	if err := r.List(ctx, list, client.InNamespace(r.Options.OperatorNamespace),
		client.MatchingLabels{builders.LabelManagedBy: builders.ManagedByValue, builders.LabelTenant: t.Name}); err != nil {
		return out, fmt.Errorf("list jobs of tenant %s: %w", t.Name, err)
	}
	newest := map[string]time.Time{}
	for i := range list.Items {
		j := &list.Items[i]
		failed, complete := jobFinished(j)
		if failed != nil || complete {
			out.finished[j.Name] = true
		}
		if j.Labels[builders.LabelComponent] != builders.ComponentBackup {
			continue
		}
		sched := j.Labels[builders.LabelSchedule]
		started := j.CreationTimestamp.Time
		if j.Status.StartTime != nil {
			started = j.Status.StartTime.Time
		}
		if !started.After(newest[sched]) {
			continue
		}
		newest[sched] = started
		job := &freshness.Job{Name: j.Name, StartedAt: started, Active: failed == nil && !complete}
		if failed != nil {
			job.Failed, job.FailureReason, job.FailureMessage = true, failed.Reason, failed.Message
		}
		if j.Spec.ActiveDeadlineSeconds != nil {
			job.Deadline = started.Add(time.Duration(*j.Spec.ActiveDeadlineSeconds) * time.Second)
		}
		out.bySchedule[sched] = job
	}
	return out, nil
}

// jobFinished returns the Failed condition of a failed Job, and whether it completed.
func jobFinished(j *batchv1.Job) (*batchv1.JobCondition, bool) {
	for i, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobFailed:
			return &j.Status.Conditions[i], false
		case batchv1.JobComplete:
			return nil, true
		}
	}
	return nil, false
}

// backupCheckDue tells whether to list storage again: never checked, policies changed, the
// interval passed, or a job finished since.
func (r *TenantReconciler) backupCheckDue(check *backupCheck, s *tenantScope, finished map[string]bool) bool {
	if check == nil || check.key != checkKey(s.backupPolicy, s.retentionPolicy) || r.clock().Since(check.at) >= r.backupCheckInterval() {
		return true
	}
	for name := range finished {
		if !check.finishedJobs[name] {
			return true
		}
	}
	return false
}

// checkKey identifies the policies a check is made under.
func checkKey(policy *v1alpha1.BackupPolicy, retentionPolicy *v1alpha1.RetentionPolicy) string {
	key := policy.Name + "/" + policy.ResourceVersion
	if retentionPolicy != nil {
		key += "+" + retentionPolicy.Name + "/" + retentionPolicy.ResourceVersion
	}
	return key
}

// checkBackupStorage lists every schedule's storage and, with a RetentionPolicy, prunes it. It
// reads storage itself rather than trusting job status: a job that succeeded against the wrong
// bucket, or backups deleted by hand, show here.
func (r *TenantReconciler) checkBackupStorage(ctx context.Context, t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, retentionPolicy *v1alpha1.RetentionPolicy, finished map[string]bool) *backupCheck {
	check := &backupCheck{at: r.clock().Now(), key: checkKey(policy, retentionPolicy),
		finishedJobs: finished, schedules: map[string]scheduleCheck{}}
	for _, spec := range policy.Spec.Schedules {
		check.schedules[spec.Name] = r.checkSchedule(ctx, t, spec, retentionPolicy)
	}
	return check
}

func (r *TenantReconciler) checkSchedule(ctx context.Context, t *v1alpha1.Tenant, spec v1alpha1.BackupSchedule, retentionPolicy *v1alpha1.RetentionPolicy) scheduleCheck {
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	log := ctrl.LoggerFrom(ctx).WithValues("schedule", spec.Name)
	store, err := r.openBackupStorage(ctx, spec.Storage)
	if err != nil {
		return scheduleCheck{err: err}
	}
	listed, err := catalog.ListEntries(ctx, store, t.Name, spec.Name)
	if err != nil || retentionPolicy == nil {
		return scheduleCheck{backups: listed, err: err}
	}
	sc := scheduleCheck{}
	res, err := prune(ctx, store, t.Name, spec.Name, listed, retentionPolicy.Spec, r.clock().Now(), tenantLocation(t))
	if len(res.Deleted) > 0 {
		r.event(t, corev1.EventTypeNormal, "BackupsPruned", fmt.Sprintf("Pruned %d backups of schedule %s by RetentionPolicy %s: %s",
			len(res.Deleted), spec.Name, retentionPolicy.Name, strings.Join(res.Deleted, ", ")))
	}
	for _, c := range res.Next {
		sc.nextPrune = append(sc.nextPrune, c.ID)
	}
	if err != nil {
		sc.pruneErr = err
		log.Error(err, "Prune backups")
		// A delete that failed halfway may have removed a manifest: list again for the truth.
		sc.backups, sc.err = catalog.ListEntries(ctx, store, t.Name, spec.Name)
		return sc
	}
	deleted := map[string]bool{}
	for _, id := range res.Deleted {
		deleted[id] = true
	}
	for _, b := range listed {
		if !deleted[b.ID] {
			sc.backups = append(sc.backups, b)
		}
	}
	return sc
}

// openBackupStorage opens a schedule's storage with the policy's credentials from the operator's
// namespace. A volume is read where it is mounted into the manager, under BackupVolumeRoot.
func (r *TenantReconciler) openBackupStorage(ctx context.Context, s v1alpha1.BackupStorage) (storage.Store, error) {
	switch {
	case s.S3 != nil:
		// Through the agent's own LOCATION and its parser, so the operator reads exactly where
		// the jobs write, with the same defaults and checks.
		location, err := builders.StorageLocation(s)
		if err != nil {
			return nil, err
		}
		loc, err := storage.ParseLocation(location)
		if err != nil {
			return nil, err
		}
		secret := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: s.S3.CredentialsSecretRef.Name}, secret); err != nil {
			return nil, fmt.Errorf("get storage credentials %s: %w", s.S3.CredentialsSecretRef.Name, err)
		}
		return storage.OpenS3(ctx, loc, storage.Credentials{
			AccessKeyID:     string(secret.Data["AWS_ACCESS_KEY_ID"]),
			SecretAccessKey: string(secret.Data["AWS_SECRET_ACCESS_KEY"]),
		})
	case s.Volume != nil:
		dir := filepath.Join(r.backupVolumeRoot(), s.Volume.ClaimName)
		if _, err := os.Stat(dir); err != nil {
			return nil, &storage.UnreachableError{Location: "volume " + s.Volume.ClaimName,
				Err: fmt.Errorf("claim %s is not mounted into the operator at %s, so its backups cannot be checked", s.Volume.ClaimName, dir)}
		}
		return storage.OpenVolume(dir)
	}
	return nil, errors.New("storage names neither s3 nor volume")
}

// newestVerification is the most recent verification among a schedule's backups.
func newestVerification(backups []catalog.Entry) *freshness.Verification {
	var out *freshness.Verification
	for _, b := range backups {
		v := b.Verification
		if v == nil || (out != nil && !v.CheckedAt.After(out.CheckedAt)) {
			continue
		}
		out = &freshness.Verification{BackupID: v.BackupID, CheckedAt: v.CheckedAt, OK: v.OK, Problems: v.Problems}
	}
	return out
}

// verificationSummary gathers the schedules' verification verdicts into BackupVerified.
type verificationSummary struct {
	worst    freshness.VerificationState
	messages map[freshness.VerificationState][]string
}

func (v *verificationSummary) add(e expectedSchedule, policy *v1alpha1.BackupPolicy, newest *freshness.Verification, now time.Time) {
	if policy.Spec.Verification == nil {
		return
	}
	state, msg := freshness.JudgeVerification(e.Name, e.verifyInterval, e.verifySince, newest, now)
	if v.messages == nil {
		v.messages = map[freshness.VerificationState][]string{}
	}
	v.messages[state] = append(v.messages[state], msg)
	if state > v.worst {
		v.worst = state
	}
}

func (v *verificationSummary) set(set func(metav1.ConditionStatus, string, string)) {
	msg := strings.Join(v.messages[v.worst], "; ")
	switch v.worst {
	case freshness.Verified:
		if msg == "" {
			msg = "No schedule's storage could be read"
			set(metav1.ConditionUnknown, v1alpha1.ReasonNotVerified, msg)
			return
		}
		set(metav1.ConditionTrue, v1alpha1.ReasonVerified, msg)
	case freshness.VerificationPending:
		set(metav1.ConditionUnknown, v1alpha1.ReasonProgressing, msg)
	case freshness.NotVerified:
		set(metav1.ConditionFalse, v1alpha1.ReasonNotVerified, msg)
	case freshness.VerificationFailed:
		set(metav1.ConditionFalse, v1alpha1.ReasonVerificationFailed, msg)
	}
}

// longestGap is the longest time between two runs of a cron schedule, from a fixed point in
// time so that it does not change between reconciles (a changing ExpectedInterval would be a
// status write every time).
func longestGap(expr string) (time.Duration, error) {
	gapCache.Lock()
	defer gapCache.Unlock()
	if d, ok := gapCache.m[expr]; ok {
		return d, nil
	}
	s, err := schedule.ParseCron(expr)
	if err != nil {
		return 0, err
	}
	d := schedule.LongestGap(s, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if gapCache.m == nil {
		gapCache.m = map[string]time.Duration{}
	}
	gapCache.m[expr] = d
	return d, nil
}

var gapCache struct {
	sync.Mutex
	m map[string]time.Duration
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

func (r *TenantReconciler) backupCheckInterval() time.Duration {
	if r.Options.BackupCheckInterval > 0 {
		return r.Options.BackupCheckInterval
	}
	return DefaultBackupCheckInterval
}

func (r *TenantReconciler) backupVolumeRoot() string {
	if r.Options.BackupVolumeRoot != "" {
		return r.Options.BackupVolumeRoot
	}
	return DefaultBackupVolumeRoot
}

// prune decides and prunes one schedule's listed backups.
func prune(ctx context.Context, store storage.Store, tenant, schedule string, listed []catalog.Entry, policy v1alpha1.RetentionPolicySpec, now time.Time, loc *time.Location) (catalog.PruneResult, error) {
	d, err := catalog.Decide(tenant, schedule, catalog.Candidates(listed), policy, now, loc)
	if err != nil {
		return catalog.PruneResult{}, err
	}
	return catalog.PruneDecided(ctx, store, tenant, schedule, d)
}
