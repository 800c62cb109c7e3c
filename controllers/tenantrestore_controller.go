package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/ssa"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// indexRestoreTenants maps a TenantRestore to the tenants it reads and writes.
const indexRestoreTenants = "spec.tenants"

// TenantRestoreReconciler runs a TenantRestore: once the source's policy and the target's database
// are there, it hands the target's credentials to a Job in the operator's namespace, follows the
// Job to its end, and removes the credentials again.
type TenantRestoreReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	Options  Options
	applier  *ssa.Applier
}

// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenantrestores,verbs=get;list;watch
// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenantrestores/status,verbs=patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;delete
// (Creating Jobs is the operator namespace's Role: config/manager/leader_election_role.yaml.)

// Reconcile moves one TenantRestore through Pending, Running, and Succeeded or Failed, on the shard
// of its target tenant, whose database it writes.
func (r *TenantRestoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	restore := &v1alpha1.TenantRestore{}
	if err := r.Get(ctx, req.NamespacedName, restore); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Options.Shard.Owns(restore.Spec.TargetTenant) {
		// A restore into another shard's tenant: that shard runs it.
		return ctrl.Result{}, nil
	}
	before := restore.DeepCopy()
	defer func() {
		if err := patchStatus(ctx, r.Client, before, restore, func(o *v1alpha1.TenantRestore) any { return o.Status }); err != nil && retErr == nil {
			retErr = err
		}
	}()
	restore.Status.ObservedGeneration = restore.Generation
	if restore.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // the Job and Secret go with it (owner references)
	}
	if done(restore.Status.Phase) {
		// The target's credentials leave the operator's namespace once the Job has ended.
		return ctrl.Result{}, r.deleteCredentials(ctx, restore)
	}

	job := &batchv1.Job{}
	err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.RestoreJobName(restore)}, job)
	switch {
	case err == nil:
		return ctrl.Result{}, r.follow(ctx, restore, job)
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("get restore job: %w", err)
	}

	source, target, policy, waiting := r.prerequisites(ctx, restore)
	if waiting != nil {
		setRestorePhase(restore, v1alpha1.RestorePending, waiting.reason, waiting.message)
		// Tenants, policies and the target's credentials are watched.
		return ctrl.Result{}, nil
	}
	jobAC, err := builders.RestoreJob(restore, source, target, policy, r.Options.Options)
	if err != nil {
		// The spec cannot be carried out as the policy stands; a policy change retries it.
		setRestorePhase(restore, v1alpha1.RestorePending, v1alpha1.ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, nil
	}
	password, ca, err := r.targetCredentials(ctx, target)
	if err != nil {
		setRestorePhase(restore, v1alpha1.RestorePending, v1alpha1.ReasonTargetNotReady, err.Error())
		return ctrl.Result{}, nil
	}
	owner := ownerOf(restore)
	secret := builders.RestoreJobSecret(restore, target, password, ca, r.Options.Options).WithOwnerReferences(owner)
	if _, err := r.applier.Apply(ctx, secret, nil); err != nil {
		return ctrl.Result{}, fmt.Errorf("apply restore secret %s: %w", builders.RestoreJobName(restore), err)
	}
	if _, err := r.applier.Apply(ctx, jobAC.WithOwnerReferences(owner), nil); err != nil {
		return ctrl.Result{}, fmt.Errorf("apply restore job %s: %w", builders.RestoreJobName(restore), err)
	}
	schedule, _ := builders.RestoreSchedule(restore, policy)
	restore.Status.JobName, restore.Status.Schedule = builders.RestoreJobName(restore), schedule.Name
	setRestorePhase(restore, v1alpha1.RestoreRunning, v1alpha1.ReasonRestoreRunning,
		fmt.Sprintf("Job %s/%s restores %s of tenant %s into tenant %s", r.Options.OperatorNamespace, restore.Status.JobName, whatIsRestored(restore), restore.Spec.Tenant, restore.Spec.TargetTenant))
	r.Recorder.Eventf(restore, nil, corev1.EventTypeNormal, "RestoreStarted", "Restore", "%s", restore.Status.Conditions[0].Message)
	return ctrl.Result{}, nil
}

func done(p v1alpha1.TenantRestorePhase) bool {
	return p == v1alpha1.RestoreSucceeded || p == v1alpha1.RestoreFailed
}

func whatIsRestored(restore *v1alpha1.TenantRestore) string {
	pit := restore.Spec.PointInTime
	switch {
	case pit == nil && restore.Spec.Backup == "latest":
		return "the latest backup"
	case pit == nil:
		return "backup " + restore.Spec.Backup
	case pit.Latest:
		return "the end of the WAL archive"
	case pit.Time != nil:
		return "the moment " + pit.Time.UTC().Format(time.RFC3339)
	}
	return "WAL position " + pit.LSN
}

// waitReason is why a restore cannot start yet.
type waitReason struct{ reason, message string }

// prerequisites reads the source tenant, its policy and the target tenant, or says what is missing.
func (r *TenantRestoreReconciler) prerequisites(ctx context.Context, restore *v1alpha1.TenantRestore) (source, target *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, waiting *waitReason) {
	source, target = &v1alpha1.Tenant{}, &v1alpha1.Tenant{}
	if err := r.Get(ctx, types.NamespacedName{Name: restore.Spec.Tenant}, source); err != nil {
		return nil, nil, nil, &waitReason{v1alpha1.ReasonTenantNotFound, fmt.Sprintf("spec.tenant: %s", lookupFailure("Tenant", restore.Spec.Tenant, err))}
	}
	if source.Spec.BackupPolicyRef == nil {
		return nil, nil, nil, &waitReason{v1alpha1.ReasonInvalidSpec, fmt.Sprintf("spec.tenant: Tenant %s has no spec.backupPolicyRef, so no backups to restore", source.Name)}
	}
	policy = &v1alpha1.BackupPolicy{}
	if err := r.Get(ctx, types.NamespacedName{Name: source.Spec.BackupPolicyRef.Name}, policy); err != nil {
		return nil, nil, nil, &waitReason{v1alpha1.ReasonDependencyNotReady, fmt.Sprintf("spec.tenant: %s", lookupFailure("BackupPolicy", source.Spec.BackupPolicyRef.Name, err))}
	}
	if err := r.Get(ctx, types.NamespacedName{Name: restore.Spec.TargetTenant}, target); err != nil {
		return nil, nil, nil, &waitReason{v1alpha1.ReasonTenantNotFound, fmt.Sprintf("spec.targetTenant: %s", lookupFailure("Tenant", restore.Spec.TargetTenant, err))}
	}
	if target.DeletionTimestamp != nil {
		return nil, nil, nil, &waitReason{v1alpha1.ReasonTargetNotReady, fmt.Sprintf("spec.targetTenant: Tenant %s is being deleted", target.Name)}
	}
	if !meta.IsStatusConditionTrue(target.Status.Conditions, v1alpha1.ConditionDatabaseReady) {
		return nil, nil, nil, &waitReason{v1alpha1.ReasonTargetNotReady, fmt.Sprintf("spec.targetTenant: the database of Tenant %s is not ready yet", target.Name)}
	}
	return source, target, policy, nil
}

func lookupFailure(kind, name string, err error) string {
	if apierrors.IsNotFound(err) {
		return fmt.Sprintf("%s %s does not exist", kind, name)
	}
	return fmt.Sprintf("read %s %s: %v", kind, name, err)
}

// targetCredentials reads the target's application password and database CA, which the operator
// wrote into its namespace.
func (r *TenantRestoreReconciler) targetCredentials(ctx context.Context, target *v1alpha1.Tenant) (password, ca string, err error) {
	secret := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: builders.NamespaceName(target), Name: builders.DatabaseSecretName(target)}, secret); err != nil {
		return "", "", fmt.Errorf("spec.targetTenant: the database credentials of Tenant %s: %s", target.Name, lookupFailure("Secret", builders.DatabaseSecretName(target), err))
	}
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: builders.NamespaceName(target), Name: builders.DatabaseCAConfigMapName(target)}, cm); err != nil {
		return "", "", fmt.Errorf("spec.targetTenant: the database CA of Tenant %s: %s", target.Name, lookupFailure("ConfigMap", builders.DatabaseCAConfigMapName(target), err))
	}
	password, ca = string(secret.Data[builders.SecretKeyPassword]), cm.Data[builders.DatabaseCAKey]
	if password == "" || ca == "" {
		return "", "", fmt.Errorf("spec.targetTenant: the database of Tenant %s has no password or CA yet", target.Name)
	}
	return password, ca, nil
}

// follow turns the Job's state into the restore's phase.
func (r *TenantRestoreReconciler) follow(ctx context.Context, restore *v1alpha1.TenantRestore, job *batchv1.Job) error {
	restore.Status.JobName = job.Name
	if job.Status.StartTime != nil && restore.Status.StartTime == nil {
		restore.Status.StartTime = job.Status.StartTime
	}
	if c := jobOutcome(job); c != nil {
		restore.Status.CompletionTime = completionOf(job, *c)
		switch c.Type {
		case batchv1.JobComplete:
			setRestorePhase(restore, v1alpha1.RestoreSucceeded, v1alpha1.ReasonSucceeded,
				fmt.Sprintf("Restored %s of tenant %s into tenant %s, rows checked", whatIsRestored(restore), restore.Spec.Tenant, restore.Spec.TargetTenant))
			r.Recorder.Eventf(restore, nil, corev1.EventTypeNormal, "RestoreSucceeded", "Restore", "%s", restore.Status.Conditions[0].Message)
			return r.deleteCredentials(ctx, restore)
		case batchv1.JobFailed:
			// The agent's words stay in the pod's log: they may quote the tenant's own objects.
			setRestorePhase(restore, v1alpha1.RestoreFailed, v1alpha1.ReasonRestoreFailed,
				fmt.Sprintf("Job %s/%s failed (%s); the target is as it was (one transaction); its log says why: kubectl logs -n %s job/%s",
					job.Namespace, job.Name, c.Reason, job.Namespace, job.Name))
			r.Recorder.Eventf(restore, nil, corev1.EventTypeWarning, "RestoreFailed", "Restore", "%s", restore.Status.Conditions[0].Message)
			return r.deleteCredentials(ctx, restore)
		}
	}
	if restore.Status.Phase != v1alpha1.RestoreRunning {
		setRestorePhase(restore, v1alpha1.RestoreRunning, v1alpha1.ReasonRestoreRunning,
			fmt.Sprintf("Job %s/%s restores %s of tenant %s into tenant %s", job.Namespace, job.Name, whatIsRestored(restore), restore.Spec.Tenant, restore.Spec.TargetTenant))
	}
	return nil
}

func completionOf(job *batchv1.Job, c batchv1.JobCondition) *metav1.Time {
	if job.Status.CompletionTime != nil {
		return job.Status.CompletionTime
	}
	t := c.LastTransitionTime
	return &t
}

func (r *TenantRestoreReconciler) deleteCredentials(ctx context.Context, restore *v1alpha1.TenantRestore) error {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Options.OperatorNamespace, Name: builders.RestoreJobName(restore)}}
	if err := r.Delete(ctx, secret); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete restore secret %s: %w", secret.Name, err)
	}
	return nil
}

// setRestorePhase is the TenantRestore's one setter of phase and conditions (setOneShotPhase).
func setRestorePhase(restore *v1alpha1.TenantRestore, phase v1alpha1.TenantRestorePhase, reason, message string) {
	setOneShotPhase(&restore.Status.Phase, &restore.Status.Conditions, restore.Generation, phase, reason, message)
}

// setOneShotPhase sets the phase and conditions of an object that runs one Job (TenantRestore,
// TenantExport): Ready True once Succeeded; Reconciling while Pending or Running; Stalled once
// Failed, or while the spec cannot be carried out. Ready comes first, so that readers (and events)
// find the summary at index 0.
func setOneShotPhase(current *v1alpha1.TenantRestorePhase, conditions *[]metav1.Condition, gen int64, phase v1alpha1.TenantRestorePhase, reason, message string) {
	*current = phase
	message = tenantstatus.Bound(message, tenantstatus.MaxMessage)
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: message, ObservedGeneration: gen}
	stalled := phase == v1alpha1.RestoreFailed || reason == v1alpha1.ReasonInvalidSpec
	switch {
	case phase == v1alpha1.RestoreSucceeded:
		ready.Status = metav1.ConditionTrue
		meta.RemoveStatusCondition(conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(conditions, v1alpha1.ConditionStalled)
	case stalled:
		meta.RemoveStatusCondition(conditions, v1alpha1.ConditionReconciling)
		meta.SetStatusCondition(conditions, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason, Message: message, ObservedGeneration: gen})
	default:
		meta.RemoveStatusCondition(conditions, v1alpha1.ConditionStalled)
		meta.SetStatusCondition(conditions, metav1.Condition{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: reason, Message: message, ObservedGeneration: gen})
	}
	meta.SetStatusCondition(conditions, ready)
	for i, c := range *conditions {
		if c.Type == v1alpha1.ConditionReady && i != 0 {
			(*conditions)[0], (*conditions)[i] = (*conditions)[i], (*conditions)[0]
		}
	}
}

func ownerOf(restore *v1alpha1.TenantRestore) *metav1ac.OwnerReferenceApplyConfiguration {
	return controllerReference("TenantRestore", restore)
}

// controllerReference makes a cluster-scoped object of ours the controller of what it runs.
func controllerReference(kind string, owner client.Object) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.GroupVersion.String()).WithKind(kind).
		WithName(owner.GetName()).WithUID(owner.GetUID()).
		WithController(true).WithBlockOwnerDeletion(true)
}

// SetupWithManager watches TenantRestores, their Jobs, and the Tenants and BackupPolicies a
// waiting restore needs: those of restores into this shard's tenants.
func (r *TenantRestoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.applier = &ssa.Applier{Client: r.Client, Owner: FieldOwner}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.TenantRestore{}, indexRestoreTenants, func(o client.Object) []string {
		restore := o.(*v1alpha1.TenantRestore)
		return []string{restore.Spec.Tenant, restore.Spec.TargetTenant}
	}); err != nil {
		return fmt.Errorf("index %s: %w", indexRestoreTenants, err)
	}
	restoresOf := func(ctx context.Context, tenant string) []reconcile.Request {
		list := &v1alpha1.TenantRestoreList{}
		if err := r.List(ctx, list, client.MatchingFields{indexRestoreTenants: tenant}); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for _, restore := range list.Items {
			if !done(restore.Status.Phase) && r.Options.Shard.Owns(restore.Spec.TargetTenant) {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: restore.Name}})
			}
		}
		return reqs
	}
	// What a waiting restore reads in the target's namespace: its credentials and its CA.
	targetCredentials := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		tenant := o.GetLabels()[builders.LabelTenant]
		if tenant == "" || o.GetNamespace() != builders.NamespacePrefix+tenant {
			return nil
		}
		switch o.(type) {
		case *corev1.Secret:
			if o.GetName() != builders.DatabaseSecretName(nil) {
				return nil
			}
		case *corev1.ConfigMap:
			if o.GetName() != builders.DatabaseCAConfigMapName(nil) {
				return nil
			}
		}
		return restoresOf(ctx, tenant)
	})
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.TenantRestore{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return r.Options.Shard.Owns(o.(*v1alpha1.TenantRestore).Spec.TargetTenant)
		}))).
		// The Job is labelled with the target tenant.
		Owns(&batchv1.Job{}, builder.WithPredicates(ownLabelled(r.Options.Shard))).
		Watches(&corev1.Secret{}, targetCredentials).
		Watches(&corev1.ConfigMap{}, targetCredentials)
	return watchTenantsAndPolicies(b, r.Client, restoresOf).
		Named("tenantrestore").
		Complete(r)
}
