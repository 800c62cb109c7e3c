package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/ssa"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
	"github.com/tenantops/tenant-operator/internal/uptime"
	"github.com/tenantops/tenant-operator/internal/validation"
)

// TenantReconciler turns a Tenant into its environment and keeps the environment as the spec says.
// It only reconciles: what lives between passes (probing, storage listings) belongs to the
// uptime Monitor and the backup Inspector, which it asks.
type TenantReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold: Secrets outside the operator's namespace.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Options   Options

	applier  *ssa.Applier
	backups  *backupcheck.Inspector
	reported tenantstatus.Reported
	// monitor probes tenants; nil when probes are turned off.
	monitor *uptime.Monitor
	// clusterRanges are the address ranges no tenant firewall may open (Options.Networks).
	clusterRanges []builders.ClusterRange
	// wake brings a tenant back to this reconciler when the Monitor or the Inspector has news;
	// keptWake a kept-tenant record to KeptTenantReconciler.
	wake, keptWake *wakeSource
}

// tenantScope is what one reconcile pass of a Tenant has observed so far.
type tenantScope struct {
	tenant          *v1alpha1.Tenant
	backupPolicy    *v1alpha1.BackupPolicy
	retentionPolicy *v1alpha1.RetentionPolicy

	// namespaceBlocked: the namespace is not usable in this pass, so parts inside it wait.
	namespaceBlocked bool
	// namespaceNew: the namespace did not exist when this pass began, so nothing in it does.
	namespaceNew bool
	// databaseReady: the database answered its readiness checks in this pass.
	databaseReady bool
	// walArchive is how the database serves its WAL receivers, as applied in this pass.
	walArchive builders.WALArchive
}

// tenantStep reconciles one part of a tenant's environment and sets that part's conditions. An
// error that only the user can fix is a reconcile.TerminalError; its condition says what to fix.
type tenantStep func(ctx context.Context, s *tenantScope) (ctrl.Result, error)

// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenants,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenants/status,verbs=patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads the Tenant, carries out deletion or the steps in order, and writes the status
// once at the end; a tenant of another shard it leaves alone.
func (r *TenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	if !r.Options.Shard.Owns(req.Name) {
		// Another shard's tenant, named by a map function or a wake-up: that shard reconciles it.
		return ctrl.Result{}, nil
	}
	tenant := &v1alpha1.Tenant{}
	if err := r.Get(ctx, req.NamespacedName, tenant); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := tenant.DeepCopy()
	scope := &tenantScope{tenant: tenant}
	specValid := true
	defer func() {
		if specValid {
			tenantstatus.Summarize(tenant)
		}
		// observedGeneration says the conditions describe this generation: set when the outcome
		// is conclusive (success, or a spec error the user must fix), never while retrying.
		if retErr == nil || errors.Is(retErr, reconcile.TerminalError(nil)) {
			tenant.Status.ObservedGeneration = tenant.Generation
		}
		r.recordConditionChanges(before, tenant)
		if tenant.DeletionTimestamp.IsZero() {
			r.Options.Metrics.SetConditions(tenant.Name, tenant.Status.Conditions)
		}
		if err := patchStatus(ctx, r.Client, before, tenant, func(t *v1alpha1.Tenant) any { return t.Status }); err != nil {
			// A status that did not reach the API server must be written again: whatever the
			// steps said, this is an error to retry, never a terminal one.
			retErr = fmt.Errorf("%w (after: %v)", err, retErr)
		}
	}()

	if !tenant.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, scope)
	}
	if !controllerutil.ContainsFinalizer(tenant, v1alpha1.TenantFinalizer) {
		patch := client.MergeFrom(tenant.DeepCopy())
		controllerutil.AddFinalizer(tenant, v1alpha1.TenantFinalizer)
		if err := r.Patch(ctx, tenant, patch, FieldOwner); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		before.Finalizers = tenant.Finalizers
		before.ResourceVersion = tenant.ResourceVersion
	}
	tenant.Status.Namespace = builders.NamespaceName(tenant)
	r.observeDeletionPolicy(tenant)

	// The webhook rejects these; a Tenant created while it was down gets a condition instead.
	if errs := append(validation.Tenant(tenant), validation.Firewall(tenant, r.clusterRanges)...); len(errs) > 0 {
		specValid = false
		tenantstatus.SetInvalidSpec(tenant, errs.ToAggregate().Error())
		return ctrl.Result{}, reconcile.TerminalError(errs.ToAggregate())
	}

	var results []ctrl.Result
	var errs []error
	for _, step := range r.steps() {
		res, err := step(ctx, scope)
		results, errs = append(results, res), append(errs, err)
	}
	return combine(results, errs)
}

// observeDeletionPolicy shows in status what deleting the Tenant would do now, and tells a change
// as an event: the difference between keeping a customer's data and deleting it deserves a record.
func (r *TenantReconciler) observeDeletionPolicy(t *v1alpha1.Tenant) {
	policy := effectiveDeletionPolicy(t)
	if before := t.Status.DeletionPolicy; before != "" && before != policy {
		eventType := corev1.EventTypeNormal
		if policy == v1alpha1.DeletionPolicyDelete {
			eventType = corev1.EventTypeWarning
		}
		r.event(t, eventType, v1alpha1.ReasonDeletionPolicyChanged, fmt.Sprintf("Deleting the Tenant now %s (was: %s)", deletionEffect(policy), deletionEffect(before)))
	}
	t.Status.DeletionPolicy = policy
}

func deletionEffect(p v1alpha1.DeletionPolicy) string {
	if p == v1alpha1.DeletionPolicyDelete {
		return "erases it: deletes its namespace and database volume, destroys its data key and deletes its backups"
	}
	return "keeps its namespace, database volume and backups"
}

// steps are the parts of a tenant's environment in the order they build on each other. Every step
// runs on every pass, so each part's condition is computed from what this pass observed.
func (r *TenantReconciler) steps() []tenantStep {
	return []tenantStep{
		r.reconcileNamespace,
		r.reconcileAccess,
		// Before the database, whose WAL archiving the BackupPolicy decides.
		r.reconcilePolicies,
		r.reconcileDatabase,
		r.reconcileFirewall,
		r.reconcileCertificate,
		r.reconcileRoute,
		r.reconcileBackups,
		r.reconcileMonitoring,
	}
}

// combine merges the steps' outcomes into one for controller-runtime, which reads them so:
//   - an error that is not terminal is retried with back-off, and a RequeueAfter beside it is
//     ignored; so transient errors are returned alone, without the terminal ones, which would make
//     the whole aggregate terminal (apimachinery's aggregate says errors.Is is true when any member
//     is) and stop the retry;
//   - a terminal error is never retried and its RequeueAfter is ignored; so when a step asked to
//     look again (a backup check due, a schedule turning stale), that request wins and the
//     terminal errors stay what they already are: conditions telling the user what to fix;
//   - otherwise the soonest RequeueAfter.
func combine(results []ctrl.Result, errs []error) (ctrl.Result, error) {
	var transient, terminal []error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, reconcile.TerminalError(nil)):
			terminal = append(terminal, err)
		default:
			transient = append(transient, err)
		}
	}
	if len(transient) > 0 {
		return ctrl.Result{}, kerrors.NewAggregate(transient)
	}
	var out ctrl.Result
	for _, res := range results {
		if res.RequeueAfter > 0 && (out.RequeueAfter == 0 || res.RequeueAfter < out.RequeueAfter) {
			out.RequeueAfter = res.RequeueAfter
		}
	}
	switch {
	case len(terminal) == 0 || out.RequeueAfter > 0:
	case len(terminal) == 1:
		return ctrl.Result{}, terminal[0]
	default:
		return ctrl.Result{}, reconcile.TerminalError(kerrors.NewAggregate(terminal))
	}
	return out, nil
}
