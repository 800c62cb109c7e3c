package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/ssa"
	"github.com/tenantops/tenant-operator/internal/validation"
)

// TenantReconciler turns a Tenant into its environment and keeps the environment as the spec says.
type TenantReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold: Secrets outside the operator's namespace.
	APIReader client.Reader
	Recorder  recorder.EventRecorder
	Options   Options

	applier      *ssa.Applier
	backupChecks backupChecks
	reported     reportedConditions
	// uptime probes tenants; nil when probes are turned off.
	uptime *uptimeMonitor
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
	// certManagerMissing: cert-manager's CRDs are not installed.
	certManagerMissing bool
}

// tenantStep reconciles one part of a tenant's environment and sets that part's condition.
type tenantStep func(ctx context.Context, s *tenantScope) (ctrl.Result, error)

// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenants,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenants/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenants/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=resourcequotas;limitranges;configmaps;services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete;deletecollection
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings;clusterroles;clusterrolebindings,verbs=get;list;watch;create;update;patch;delete;deletecollection
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=admin;edit;view
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;clusterissuers,verbs=get;list;watch

// Reconcile reads the Tenant, carries out deletion or the steps in order, and writes the status
// once at the end.
func (r *TenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	tenant := &v1alpha1.Tenant{}
	if err := r.Get(ctx, req.NamespacedName, tenant); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := tenant.DeepCopy()
	scope := &tenantScope{tenant: tenant}
	specValid := true
	defer func() {
		if specValid {
			summarizeTenant(tenant)
		}
		// observedGeneration says the conditions describe this generation; while we retry after an
		// error they do not yet.
		if retErr == nil || errors.Is(retErr, reconcile.TerminalError(nil)) {
			tenant.Status.ObservedGeneration = tenant.Generation
		}
		r.recordConditionChanges(before, tenant)
		if tenant.DeletionTimestamp.IsZero() {
			r.metrics().SetConditions(tenant.Name, tenant.Status.Conditions)
		}
		if err := patchStatus(ctx, r.Client, before, tenant, func(t *v1alpha1.Tenant) any { return t.Status }); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
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

	// The webhook rejects these; a Tenant created while it was down gets a condition instead.
	if errs := validation.Tenant(tenant); len(errs) > 0 {
		specValid = false
		tenant.Status.Phase = v1alpha1.TenantPhaseDegraded
		invalidSpec(tenant, errs.ToAggregate().Error())
		return ctrl.Result{}, reconcile.TerminalError(errs.ToAggregate())
	}

	var results []ctrl.Result
	var errs []error
	for _, step := range r.steps() {
		res, err := step(ctx, scope)
		results = append(results, res)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// The error's back-off decides when to retry; a RequeueAfter beside it would be ignored.
		return ctrl.Result{}, kerrors.NewAggregate(errs)
	}
	return soonest(results), nil
}

// steps are the parts of a tenant's environment in the order they build on each other. Every step
// runs on every pass, so each part's condition is computed from what this pass observed.
func (r *TenantReconciler) steps() []tenantStep {
	return []tenantStep{
		r.reconcileNamespace,
		r.reconcileAccess,
		r.reconcileDatabase,
		r.reconcileFirewall,
		r.reconcileCertificate,
		r.reconcilePolicies,
		r.reconcileBackups,
		r.reconcileMonitoring,
	}
}

// soonest merges the steps' results into the earliest requeue.
func soonest(results []ctrl.Result) ctrl.Result {
	var out ctrl.Result
	for _, res := range results {
		if res.RequeueAfter > 0 && (out.RequeueAfter == 0 || res.RequeueAfter < out.RequeueAfter) {
			out.RequeueAfter = res.RequeueAfter
		}
	}
	return out
}

// recordConditionChanges emits one event per condition whose status or reason changed, with the
// condition's reason as the event's, so users see changes and a steady state stays quiet.
//
// The conditions compared with are those this manager last reported for the tenant, when it has:
// a pass that read the Tenant from a cache not yet showing the previous pass's status write would
// otherwise report the same changes twice. After a restart, the stored status serves.
func (r *TenantReconciler) recordConditionChanges(before, after *v1alpha1.Tenant) {
	if r.Recorder == nil {
		return
	}
	old := r.reported.swap(after)
	if old == nil {
		old = conditionStates(before.Status.Conditions)
	}
	for _, c := range after.Status.Conditions {
		if c.Type == v1alpha1.ConditionReconciling || c.Type == v1alpha1.ConditionStalled {
			continue // they repeat Ready's news for kstatus
		}
		o, existed := old[c.Type]
		if existed && o == (conditionState{c.Status, c.Reason}) {
			continue
		}
		warning := c.Status == metav1.ConditionFalse && !waitingReasons[c.Reason] && c.Reason != v1alpha1.ReasonDeleting
		// A condition appearing for the first time in a waiting state is not news (a new tenant
		// is on its way), nor is a part that appears good; a tenant that is Ready at once,
		// problems and changes of an existing condition are.
		if !existed && !warning && (c.Type != v1alpha1.ConditionReady || c.Status != metav1.ConditionTrue) {
			continue
		}
		eventType := corev1.EventTypeNormal
		if warning {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(after, nil, eventType, c.Reason, c.Type, "%s is %s: %s", c.Type, c.Status, c.Message)
	}
}

// conditionState is what a condition's events tell: its status and reason.
type conditionState struct {
	status metav1.ConditionStatus
	reason string
}

func conditionStates(conditions []metav1.Condition) map[string]conditionState {
	out := make(map[string]conditionState, len(conditions))
	for _, c := range conditions {
		out[c.Type] = conditionState{c.Status, c.Reason}
	}
	return out
}

// reportedConditions are, per tenant, the conditions as this manager last reported them in
// events.
type reportedConditions struct {
	mu       sync.Mutex
	byTenant map[string]map[string]conditionState
}

// swap records t's conditions as reported and returns those reported before, nil when none were.
// A tenant whose deletion is done is forgotten.
func (rc *reportedConditions) swap(t *v1alpha1.Tenant) map[string]conditionState {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	previous := rc.byTenant[t.Name]
	if !controllerutil.ContainsFinalizer(t, v1alpha1.TenantFinalizer) && !t.DeletionTimestamp.IsZero() {
		delete(rc.byTenant, t.Name)
		return previous
	}
	if rc.byTenant == nil {
		rc.byTenant = map[string]map[string]conditionState{}
	}
	rc.byTenant[t.Name] = conditionStates(t.Status.Conditions)
	return previous
}

// requeueWaiting is how soon to look again at something that is on its way (a pod starting, a
// certificate being issued) when no watch will tell us.
const requeueWaiting = 15 * time.Second

// SetupWithManager watches Tenants, the objects they own (mapped back by label) and the policies
// they reference (through the field indexes).
func (r *TenantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	// Watch events held back during an apply that turn out to be someone else's come back here.
	changedWhileApplying := make(chan event.GenericEvent, 1024)
	r.applier = &ssa.Applier{Client: r.Client, Owner: FieldOwner, Changed: func(obj client.Object) {
		changedWhileApplying <- event.GenericEvent{Object: obj}
	}}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Tenant{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, deletionPredicate()))).
		Watches(&v1alpha1.BackupPolicy{}, handler.EnqueueRequestsFromMapFunc(r.tenantsForPolicy(indexTenantBackupPolicy))).
		Watches(&v1alpha1.RetentionPolicy{}, handler.EnqueueRequestsFromMapFunc(r.tenantsForPolicy(indexTenantRetentionPolicy))).
		Watches(&corev1.Secret{}, r.ownedObjectHandler()).
		WatchesRawSource(source.Channel(changedWhileApplying, r.ownedObjectHandler()))
	// Owned objects are not owner-referenced (a retained namespace outlives its Tenant); they are
	// mapped back to their Tenant by label, so a hand edit or deletion is reverted at once.
	for _, obj := range ownedTypes() {
		if _, isCertificate := obj.(*cmapi.Certificate); isCertificate && !certManagerInstalled(mgr) {
			continue
		}
		b = b.Watches(obj, r.ownedObjectHandler())
	}
	if certManagerInstalled(mgr) {
		b = b.Watches(&cmapi.ClusterIssuer{}, handler.EnqueueRequestsFromMapFunc(r.allTenants)).
			Watches(&cmapi.Issuer{}, handler.EnqueueRequestsFromMapFunc(tenantOfNamespace))
	} else {
		// Watching kinds the API server does not serve would stop the manager; tenants report
		// CertManagerMissing instead, and a restart after installing cert-manager picks it up.
		mgr.GetLogger().Info("cert-manager CRDs not found; certificates will be reported as CertManagerMissing")
	}
	if r.uptime != nil {
		// The monitor wakes a tenant when its uptime status is due a write.
		b = b.WatchesRawSource(source.Channel(r.uptime.wake, &handler.EnqueueRequestForObject{}))
	}
	return b.Named("tenant").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.Options.MaxConcurrentReconciles)}).
		Complete(r)
}

// deletionPredicate lets through updates that start a deletion, which change no generation.
func deletionPredicate() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
	}}
}

// ownedObjectHandler enqueues an owned object's Tenant, except for creations and updates that only
// report our own apply: reconciling for them would change nothing, and skipping them keeps
// convergence cheap (see ssa.Applier.NeedsReconcile). Hand edits and status changes by other
// controllers carry another resourceVersion; deletions always enqueue, so a deleted object is put
// back.
func (r *TenantReconciler) ownedObjectHandler() handler.EventHandler {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		for _, req := range tenantOfObject(context.Background(), o) {
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if r.applier.NeedsReconcile(e.Object) {
				enqueue(q, e.Object)
			}
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if r.applier.NeedsReconcile(e.ObjectNew) {
				enqueue(q, e.ObjectNew)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.Object)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.Object)
		},
	}
}

// tenantOfObject maps an object to the Tenant named in its tenant label.
func tenantOfObject(_ context.Context, o client.Object) []ctrl.Request {
	if name := o.GetLabels()[builders.LabelTenant]; name != "" {
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Name: name}}}
	}
	return nil
}

// allTenants maps a ClusterIssuer to every Tenant: any of them may use it, by name or as default.
func (r *TenantReconciler) allTenants(ctx context.Context, _ client.Object) []ctrl.Request {
	tenants := &v1alpha1.TenantList{}
	if err := r.List(ctx, tenants); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List tenants for cluster issuer")
		return nil
	}
	requests := make([]ctrl.Request, 0, len(tenants.Items))
	for _, t := range tenants.Items {
		requests = append(requests, ctrl.Request{NamespacedName: types.NamespacedName{Name: t.Name}})
	}
	return requests
}

// tenantOfNamespace maps an object in a tenant's namespace, such as an Issuer the tenant's owner
// created, to the Tenant.
func tenantOfNamespace(_ context.Context, o client.Object) []ctrl.Request {
	if name, ok := strings.CutPrefix(o.GetNamespace(), builders.NamespacePrefix); ok {
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Name: name}}}
	}
	return nil
}

// certManagerInstalled tells whether the API server serves cert-manager's Certificate kind.
func certManagerInstalled(mgr ctrl.Manager) bool {
	_, err := mgr.GetRESTMapper().RESTMapping(cmapi.SchemeGroupVersion.WithKind("Certificate").GroupKind(), cmapi.SchemeGroupVersion.Version)
	return err == nil
}
