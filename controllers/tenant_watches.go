package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/ssa"
)

// SetupWithManager watches Tenants, the objects they own (mapped back by label), the policies
// they reference (through the field indexes), and the news of the Monitor and the Inspector; of
// each, only what concerns the tenants of this manager's shard.
func (r *TenantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	own := r.Options.Shard
	// Watch events held back during an apply that turn out to be someone else's come back here.
	changedWhileApplying := make(chan event.GenericEvent, 1024)
	r.applier = &ssa.Applier{Client: r.Client, Owner: FieldOwner, Changed: func(obj client.Object) {
		changedWhileApplying <- event.GenericEvent{Object: obj}
	}}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Tenant{}, builder.WithPredicates(ownTenants(own),
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletionPredicate()))).
		Watches(&v1alpha1.BackupPolicy{}, handler.EnqueueRequestsFromMapFunc(ownRequests(own, r.tenantsForPolicy(indexTenantBackupPolicy)))).
		Watches(&v1alpha1.RetentionPolicy{}, handler.EnqueueRequestsFromMapFunc(ownRequests(own, r.tenantsForPolicy(indexTenantRetentionPolicy)))).
		Watches(&corev1.Secret{}, r.ownedObjectHandler()).
		WatchesRawSource(source.Channel(changedWhileApplying, r.ownedObjectHandler())).
		WatchesRawSource(r.wake)
	// Owned objects are not owner-referenced (a retained namespace outlives its Tenant); they are
	// mapped back to their Tenant by label, so a hand edit or deletion is reverted at once.
	// Without cert-manager, ownedTypes leaves Certificate out: watching a kind the API server
	// does not serve would stop the manager.
	for _, obj := range ownedTypes(r.Options) {
		b = b.Watches(obj, r.ownedObjectHandler())
	}
	installed := !r.Options.CertManagerMissing
	if installed {
		for _, w := range r.issuerWatches() {
			b = b.Watches(w.obj, w.handler)
		}
	}
	c, err := b.Named("tenant").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.Options.MaxConcurrentReconciles)}).
		Build(r)
	if err != nil || installed {
		return err
	}
	// Watching kinds the API server does not serve would stop the manager: until cert-manager is
	// installed tenants report CertManagerMissing, and its watches start when it is.
	mgr.GetLogger().Info("cert-manager CRDs not found; certificates will be reported as CertManagerMissing until it is installed")
	return mgr.Add(&certManagerWatches{mgr: mgr, controller: c, r: r, interval: certManagerPoll})
}

// kindWatch is a kind and what its events enqueue.
type kindWatch struct {
	obj     client.Object
	handler handler.EventHandler
}

// issuerWatches map cert-manager's issuers to the tenants of this shard that may use them: a
// ClusterIssuer to every tenant, an Issuer to its namespace's.
func (r *TenantReconciler) issuerWatches() []kindWatch {
	own := r.Options.Shard
	return []kindWatch{
		{&cmapi.ClusterIssuer{}, handler.EnqueueRequestsFromMapFunc(ownRequests(own, r.allTenants))},
		{&cmapi.Issuer{}, handler.EnqueueRequestsFromMapFunc(ownRequests(own, tenantOfNamespace))},
	}
}

// certManagerPoll is how often a manager started without cert-manager looks for it.
const certManagerPoll = 15 * time.Second

// certManagerWatches adds the watches of cert-manager's kinds to the tenant controller once the
// API server serves them, and brings every tenant back, so that installing cert-manager after the
// operator needs no restart.
type certManagerWatches struct {
	mgr        ctrl.Manager
	controller controller.Controller
	r          *TenantReconciler
	interval   time.Duration
}

func (w *certManagerWatches) NeedLeaderElection() bool { return true }

func (w *certManagerWatches) Start(ctx context.Context) error {
	own := w.r.Options.Shard
	for {
		// Discovery, not the RESTMapper, which may keep its answer.
		served, err := CertManagerServed(w.mgr.GetConfig())
		if served {
			break
		}
		if err != nil {
			w.mgr.GetLogger().Error(err, "Look for cert-manager")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.interval):
		}
	}
	watches := append([]kindWatch{{&cmapi.Certificate{}, w.r.ownedObjectHandler()}}, w.r.issuerWatches()...)
	for _, kw := range watches {
		if err := w.controller.Watch(source.Kind(w.mgr.GetCache(), kw.obj, kw.handler)); err != nil {
			return fmt.Errorf("watch cert-manager's kinds: %w", err)
		}
	}
	w.mgr.GetLogger().Info("cert-manager CRDs found; watching its kinds and reconciling every tenant")
	for _, req := range ownRequests(own, w.r.allTenants)(ctx, nil) {
		w.r.wake.Wake(req.Name)
	}
	return nil
}

// wakeSource enqueues tenants by name for the Monitor and the Inspector, which tell from their own
// goroutines. It never blocks them nor drops a tenant: the queue dedups, so a tenant told about
// many times while waiting is reconciled once.
type wakeSource struct {
	queue atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]
	// namespace is that of the objects woken; none for Tenants.
	namespace string
}

// Start is the source.Source the controller starts with its queue.
func (w *wakeSource) Start(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	w.queue.Store(&q)
	return nil
}

// Wake enqueues a tenant. Before the controller started, every tenant is reconciled anyway.
func (w *wakeSource) Wake(tenant string) {
	if q := w.queue.Load(); q != nil {
		(*q).Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: w.namespace, Name: tenant}})
	}
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
// back. Objects of another shard's tenants are dropped.
func (r *TenantReconciler) ownedObjectHandler() handler.EventHandler {
	enqueue := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		if name := o.GetLabels()[builders.LabelTenant]; name != "" && r.Options.Shard.Owns(name) {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
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
			r.applier.Forget(e.Object)
			enqueue(q, e.Object)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(q, e.Object)
		},
	}
}

// allTenants maps a ClusterIssuer to every Tenant: any of them may use it, by name or as default.
func (r *TenantReconciler) allTenants(ctx context.Context, _ client.Object) []ctrl.Request {
	tenants := &v1alpha1.TenantList{}
	if err := r.List(ctx, tenants); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List tenants for cluster issuer")
		return nil
	}
	return requestsFor(tenants.Items)
}

// tenantsForPolicy maps a policy to the tenants that reference it, through the field index.
func (r *TenantReconciler) tenantsForPolicy(index string) func(context.Context, client.Object) []ctrl.Request {
	return func(ctx context.Context, o client.Object) []ctrl.Request {
		tenants := &v1alpha1.TenantList{}
		if err := r.List(ctx, tenants, client.MatchingFields{index: o.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "List tenants for policy", "policy", o.GetName())
			return nil
		}
		return requestsFor(tenants.Items)
	}
}

func requestsFor(tenants []v1alpha1.Tenant) []ctrl.Request {
	requests := make([]ctrl.Request, 0, len(tenants))
	for _, t := range tenants {
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
