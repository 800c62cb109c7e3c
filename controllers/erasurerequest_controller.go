package controllers

import (
	"context"
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=erasurerequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=erasurerequests/status,verbs=patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;delete
// (Creating Jobs is the operator namespace's Role: config/manager/leader_election_role.yaml.)

// ErasureRequestReconciler carries out ErasureRequests: a Job in the operator's namespace per
// request (builders.ErasureJob), and the request's status from what the Job did. A finished
// request (Succeeded or Failed) is never run again: make a new one.
type ErasureRequestReconciler struct {
	client.Client
	// APIReader reads the Job's pods, which are not cached.
	APIReader client.Reader
	Options   Options
}

// SetupWithManager watches ErasureRequests and the Jobs that carry them out: those in the
// namespaces of this shard's tenants.
func (r *ErasureRequestReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ErasureRequest{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return ownsNamespace(r.Options.Shard, o.GetNamespace())
		}))).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			ns, name := o.GetLabels()[builders.LabelErasureRequestNamespace], o.GetLabels()[builders.LabelErasureRequestName]
			if ns == "" || name == "" || !ownsNamespace(r.Options.Shard, ns) {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
		})).
		Named("erasurerequest").
		Complete(r)
}

// Reconcile runs the request's Job once and records its outcome, on the shard of the tenant whose
// namespace the request is in.
func (r *ErasureRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if !ownsNamespace(r.Options.Shard, req.Namespace) {
		// A request in another shard's tenant's namespace: that shard carries it out.
		return ctrl.Result{}, nil
	}
	er := &v1alpha1.ErasureRequest{}
	if err := r.Get(ctx, req.NamespacedName, er); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if er.Status.Phase == v1alpha1.ErasurePhaseSucceeded || er.Status.Phase == v1alpha1.ErasurePhaseFailed {
		return ctrl.Result{}, nil
	}
	before := er.DeepCopy()
	res, err := r.carryOut(ctx, er)
	if perr := patchStatus(ctx, r.Client, before, er, func(o *v1alpha1.ErasureRequest) any { return o.Status }); perr != nil && err == nil {
		err = perr
	}
	return res, err
}

// carryOut sets the request's phase and Ready condition from what this pass saw.
func (r *ErasureRequestReconciler) carryOut(ctx context.Context, er *v1alpha1.ErasureRequest) (ctrl.Result, error) {
	set := func(phase, reason, msg string) {
		er.Status.Phase = phase
		status := metav1.ConditionFalse
		if phase == v1alpha1.ErasurePhaseSucceeded {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&er.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: status,
			Reason: reason, Message: msg, ObservedGeneration: er.Generation})
		if phase == v1alpha1.ErasurePhaseSucceeded || phase == v1alpha1.ErasurePhaseFailed {
			er.Status.ObservedGeneration = er.Generation
		}
	}
	tenantName, ok := strings.CutPrefix(er.Namespace, builders.NamespacePrefix)
	t := &v1alpha1.Tenant{}
	if ok {
		if err := r.Get(ctx, types.NamespacedName{Name: tenantName}, t); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get tenant %s: %w", tenantName, err)
		} else if err != nil {
			ok = false
		}
	}
	if !ok || builders.NamespaceName(t) != er.Namespace {
		set(v1alpha1.ErasurePhaseFailed, v1alpha1.ReasonRequestNotPossible, "Namespace "+er.Namespace+" is no tenant's: an ErasureRequest is made in the tenant's namespace")
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("namespace %s is no tenant's", er.Namespace))
	}
	if t.Spec.BackupPolicyRef == nil {
		set(v1alpha1.ErasurePhaseFailed, v1alpha1.ReasonRequestNotPossible, "Tenant "+t.Name+" has no BackupPolicy: there is no ledger to record the request in, so a restore could not replay it")
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("tenant %s has no backup policy", t.Name))
	}
	policy := &v1alpha1.BackupPolicy{}
	if err := r.Get(ctx, types.NamespacedName{Name: t.Spec.BackupPolicyRef.Name}, policy); err != nil {
		if apierrors.IsNotFound(err) {
			set(v1alpha1.ErasurePhasePending, v1alpha1.ReasonRequestPending, "Waiting for BackupPolicy "+t.Spec.BackupPolicyRef.Name)
			return ctrl.Result{RequeueAfter: erasureRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get backup policy: %w", err)
	}
	job := &batchv1.Job{}
	name := builders.ErasureJobName(t, er)
	err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}, job)
	switch {
	case apierrors.IsNotFound(err):
		return r.startJob(ctx, t, policy, er, set)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get job %s: %w", name, err)
	}
	er.Status.Job = name
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			key, _ := r.terminationMessage(ctx, job)
			er.Status.LedgerEntry = key
			done := metav1.Now()
			if c.LastTransitionTime.IsZero() {
				er.Status.CompletionTime = &done
			} else {
				er.Status.CompletionTime = &c.LastTransitionTime
			}
			set(v1alpha1.ErasurePhaseSucceeded, v1alpha1.ReasonRequestSucceeded, "The function was carried out in the live database and the request is in the tenant's erasure ledger: every restore of an earlier backup replays it")
			return ctrl.Result{}, nil
		case batchv1.JobFailed:
			msg, _ := r.terminationMessage(ctx, job)
			if msg == "" {
				msg = c.Message
			}
			set(v1alpha1.ErasurePhaseFailed, v1alpha1.ReasonRequestFailed, "Job "+name+" failed: "+strings.TrimSpace(strings.ReplaceAll(msg, er.Spec.Subject, "<subject>")))
			return ctrl.Result{}, nil
		}
	}
	set(v1alpha1.ErasurePhaseRunning, v1alpha1.ReasonRequestRunning, "Job "+name+" in "+r.Options.OperatorNamespace+" runs "+er.Spec.Function)
	return ctrl.Result{}, nil
}

// startJob copies the application role's password into the operator's namespace and creates the
// request's Job, once the policy signs and the tenant's credentials and data key exist.
func (r *ErasureRequestReconciler) startJob(ctx context.Context, t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy, er *v1alpha1.ErasureRequest, set func(phase, reason, msg string)) (ctrl.Result, error) {
	if policy.Status.Signing == nil || policy.Status.Signing.PublicKey == "" {
		// The Job is made once and never changed: made now, it would append an unsigned ledger
		// entry, which restores refuse.
		set(v1alpha1.ErasurePhasePending, v1alpha1.ReasonRequestPending, "Waiting for BackupPolicy "+policy.Name+" to publish its signing key, which signs the ledger entry")
		return ctrl.Result{RequeueAfter: erasureRetry}, nil
	}
	creds := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: builders.NamespaceName(t), Name: builders.DatabaseSecretName(t)}, creds); err != nil {
		if apierrors.IsNotFound(err) {
			set(v1alpha1.ErasurePhasePending, v1alpha1.ReasonRequestPending, "Waiting for the tenant's database credentials")
			return ctrl.Result{RequeueAfter: erasureRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get database credentials: %w", err)
	}
	key := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.DataKeySecretName(t)}, key); err != nil {
		if apierrors.IsNotFound(err) {
			set(v1alpha1.ErasurePhasePending, v1alpha1.ReasonRequestPending, "Waiting for the tenant's data key, which the ledger entry is sealed to")
			return ctrl.Result{RequeueAfter: erasureRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get data key: %w", err)
	}
	job, err := builders.ErasureJob(t, policy, er, r.Options.Options)
	if err != nil {
		set(v1alpha1.ErasurePhaseFailed, v1alpha1.ReasonRequestNotPossible, "The request cannot be carried out: "+err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	secret := builders.ErasureJobSecret(t, string(creds.Data[builders.SecretKeyPassword]), r.Options.Options)
	if err := r.Apply(ctx, secret, FieldOwner, client.ForceOwnership); err != nil {
		return ctrl.Result{}, fmt.Errorf("apply secret %s: %w", *secret.Name, err)
	}
	if err := r.Apply(ctx, job, FieldOwner, client.ForceOwnership); err != nil {
		return ctrl.Result{}, fmt.Errorf("apply job %s: %w", *job.Name, err)
	}
	er.Status.Job = *job.Name
	set(v1alpha1.ErasurePhaseRunning, v1alpha1.ReasonRequestRunning, "Job "+*job.Name+" in "+r.Options.OperatorNamespace+" runs "+er.Spec.Function)
	return ctrl.Result{}, nil
}

// terminationMessage is what the Job's last pod said when it ended: the ledger entry's key, or
// the agent's error line.
func (r *ErasureRequestReconciler) terminationMessage(ctx context.Context, job *batchv1.Job) (string, error) {
	reader := client.Reader(r.Client)
	if r.APIReader != nil {
		reader = r.APIReader
	}
	pods := &corev1.PodList{}
	if err := reader.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{"batch.kubernetes.io/job-name": job.Name}); err != nil {
		return "", err
	}
	msg := ""
	var newest metav1.Time
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if term := cs.State.Terminated; term != nil && !term.FinishedAt.Before(&newest) {
				newest, msg = term.FinishedAt, term.Message
			}
		}
	}
	return strings.TrimSpace(msg), nil
}
