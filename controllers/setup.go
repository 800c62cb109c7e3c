// Package controllers holds one reconciler per kind of the tenancy API.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/cachemeta"
	"github.com/tenantops/tenant-operator/internal/manager"
	"github.com/tenantops/tenant-operator/internal/probes"
	"github.com/tenantops/tenant-operator/internal/ssa"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// FieldOwner is the field manager of everything the operator writes with server-side apply.
const FieldOwner = client.FieldOwner("tenant-operator")

// Field indexes that map a policy or Secret to the objects referring to it.
const (
	indexTenantBackupPolicy    = "spec.backupPolicyRef.name"
	indexTenantRetentionPolicy = "spec.retentionPolicyRef.name"
	indexBackupPolicySecrets   = "spec.secretNames"
	// indexTenantLabel indexes owned objects of the kinds tenantIndexed lists by their tenant
	// label.
	indexTenantLabel = "metadata.labels.tenant"
)

// tenantIndexed are the owned kinds whose lists of one tenant's objects go through
// indexTenantLabel: those listed cluster-wide or in the operator's namespace, where every
// tenant's objects sit together. A label selector alone makes such a list read all of them, so
// each tenant's pass read every tenant's cluster roles: at 10,000 tenants that was an eighth of
// the manager's CPU, growing with every tenant added. Lists within a tenant's namespace use the
// cache's namespace index instead.
func tenantIndexed() []client.Object {
	return []client.Object{&rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{}, &appsv1.Deployment{}, &batchv1.CronJob{}}
}

// tenantLabelOf is indexTenantLabel's value of an object.
func tenantLabelOf(o client.Object) []string {
	if name := o.GetLabels()[builders.LabelTenant]; name != "" {
		return []string{name}
	}
	return nil
}

// Options are the manager's settings (package manager).
type Options = manager.Options

// AddToScheme registers every API the manager reads or writes.
var AddToScheme = manager.AddToScheme

// GatewayAPIServed asks the API server whether it serves the Gateway API kinds the operator writes.
var GatewayAPIServed = manager.GatewayAPIServed

// CertManagerServed asks the API server whether it serves cert-manager's Certificate.
var CertManagerServed = manager.CertManagerServed

// CacheOptions limits what the manager caches. Objects the operator owns carry its managed-by
// label, so only those are cached; Secrets are cached in the operator's namespace (policy Secrets)
// and, elsewhere, only the database credentials we created, so other tenants' Secrets never sit in
// the operator's memory.
func CacheOptions(opts Options) cache.Options {
	owned := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{builders.LabelManagedBy: builders.ManagedByValue})}
	byObject := map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Namespaces: map[string]cache.Config{
			opts.OperatorNamespace: {},
			cache.AllNamespaces:    {LabelSelector: owned.Label},
		}, Transform: keepSecretWhatIsRead},
	}
	// Kinds the operator applies whole and reads back only for names, labels and
	// resourceVersions (and a StatefulSet's status) are cached without their contents: for a
	// thousand tenants that is most of the cache. (ByObject is keyed by pointer, so each kind
	// gets its one entry here: a second key of the same kind would replace the label selector.)
	for _, obj := range ownedTypes(opts) {
		entry := owned
		entry.Transform = keepWriters
		if readsOnlyMetadata(obj) {
			entry.Transform = keepWhatIsRead
		}
		byObject[obj] = entry
	}
	// Managed fields are most of a server-side-applied object's size; owned objects keep only who
	// wrote them (keepWriters), the rest none, which keeps a thousand tenants' objects small.
	return cache.Options{ByObject: byObject, DefaultTransform: compactUnowned}
}

// keepWriters drops the field sets of an owned object's managed fields and keeps who wrote it,
// which the applier reads after a restart, and shares the strings every tenant's objects repeat
// (cachemeta.Compact).
func keepWriters(obj any) (any, error) {
	if o, ok := obj.(client.Object); ok {
		cachemeta.Compact(o)
	}
	return obj, nil
}

// keepSecretWhatIsRead is keepWriters, and for a TLS Secret (cert-manager's, for a tenant's
// URL or database) it drops the certificate and the private key: the operator reads only the CA
// from them, and a thousand tenants' private keys have no business in its memory.
func keepSecretWhatIsRead(obj any) (any, error) {
	if s, ok := obj.(*corev1.Secret); ok && s.Type == corev1.SecretTypeTLS {
		delete(s.Data, corev1.TLSPrivateKeyKey)
		delete(s.Data, corev1.TLSCertKey)
	}
	return keepWriters(obj)
}

// stripManagedFields is client-go's transform that drops every object's managed fields.
var stripManagedFields = cache.TransformStripManagedFields()

// compactUnowned is the transform of kinds the operator does not apply (Tenants, policies):
// nothing reads who wrote them, so their managed fields go whole.
func compactUnowned(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if o, ok := obj.(client.Object); ok && err == nil {
		cachemeta.Compact(o)
	}
	return obj, err
}

// readsOnlyMetadata tells the owned kinds keepWhatIsRead reduces.
func readsOnlyMetadata(obj client.Object) bool {
	switch obj.(type) {
	case *corev1.ResourceQuota, *corev1.LimitRange, *corev1.Service, *appsv1.StatefulSet, *rbacv1.RoleBinding, *rbacv1.ClusterRole,
		*rbacv1.ClusterRoleBinding, *networkingv1.NetworkPolicy, *networkingv1.Ingress, *batchv1.CronJob, *appsv1.Deployment:
		return true
	}
	return false
}

// keepWhatIsRead reduces a cached object to what the reconcilers read of its kind. Nothing writes
// such an object back whole: owned objects are server-side applied from their builders, and the
// one patch of a cached object (stopping a retained database) is a merge patch of spec.replicas.
func keepWhatIsRead(obj any) (any, error) {
	if o, ok := obj.(client.Object); ok {
		cachemeta.Compact(o)
	}
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		return &appsv1.StatefulSet{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta,
			Spec: appsv1.StatefulSetSpec{Replicas: o.Spec.Replicas}, Status: o.Status}, nil
	case *appsv1.Deployment:
		return &appsv1.Deployment{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, Status: o.Status}, nil
	case *corev1.ResourceQuota:
		// Its status says what is used up; the spec is what the builder applies.
		return &corev1.ResourceQuota{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, Status: o.Status}, nil
	case *corev1.LimitRange:
		return &corev1.LimitRange{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta}, nil
	case *corev1.Service:
		return &corev1.Service{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta}, nil
	case *rbacv1.RoleBinding:
		return &rbacv1.RoleBinding{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, RoleRef: o.RoleRef}, nil
	case *rbacv1.ClusterRole:
		return &rbacv1.ClusterRole{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta}, nil
	case *rbacv1.ClusterRoleBinding:
		return &rbacv1.ClusterRoleBinding{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta, RoleRef: o.RoleRef}, nil
	case *networkingv1.NetworkPolicy:
		return &networkingv1.NetworkPolicy{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta}, nil
	case *batchv1.CronJob:
		return &batchv1.CronJob{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta}, nil
	case *networkingv1.Ingress:
		return &networkingv1.Ingress{TypeMeta: o.TypeMeta, ObjectMeta: o.ObjectMeta}, nil
	}
	return obj, nil
}

// ownedTypes are the kinds of objects the Tenant controller creates and watches; Gateway API's only
// where the API server serves them.
func ownedTypes(opts Options) []client.Object {
	types := []client.Object{
		&corev1.Namespace{}, &corev1.ResourceQuota{}, &corev1.LimitRange{}, &corev1.ConfigMap{},
		&corev1.Service{}, &corev1.PersistentVolumeClaim{}, &appsv1.StatefulSet{},
		&rbacv1.RoleBinding{}, &rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{},
		&networkingv1.NetworkPolicy{}, &networkingv1.Ingress{},
		&batchv1.CronJob{}, &batchv1.Job{}, &appsv1.Deployment{},
	}
	if !opts.CertManagerMissing {
		types = append(types, &cmapi.Certificate{})
	}
	if opts.GatewayAPI {
		types = append(types, &gwv1.HTTPRoute{}, &gwv1beta1.ReferenceGrant{})
	}
	return types
}

// WarmCaches creates the informers of every kind the controllers watch before the manager starts,
// so that they fill on every replica, the standbys too (a standby that takes over starts
// reconciling at once instead of first listing every kind), and CachesSynced can tell when they
// are full.
func WarmCaches(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	kinds := append([]client.Object{&v1alpha1.Tenant{}, &v1alpha1.BackupPolicy{}, &v1alpha1.RetentionPolicy{},
		&v1alpha1.TenantRestore{}, &v1alpha1.TenantExport{}, &v1alpha1.ErasureRequest{}, &corev1.Secret{}}, ownedTypes(opts)...)
	for _, obj := range kinds {
		if _, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	return nil
}

// CachesSynced is a readiness check that passes once every informer created so far has synced:
// with WarmCaches, once the manager holds the whole cluster's state it needs.
func CachesSynced(mgr ctrl.Manager) func(*http.Request) error {
	var synced atomic.Bool
	return func(req *http.Request) error {
		if synced.Load() {
			return nil
		}
		ctx, cancel := context.WithTimeout(req.Context(), 100*time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the caches have not synced yet")
		}
		synced.Store(true)
		return nil
	}
}

// SetupWithManager registers the field indexes, every reconciler, and the uptime Monitor and
// backup Inspector that run beside them on the leader. A shard (Options.Shard) runs the policies'
// controllers only if it is the first, as they are not per tenant.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	opts = opts.WithDefaults()
	if err := setupIndexes(context.Background(), mgr); err != nil {
		return err
	}
	if opts.Shard.RunsClusterWide() {
		if err := (&BackupPolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Options: opts}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up BackupPolicy controller: %w", err)
		}
		if err := (&RetentionPolicyReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up RetentionPolicy controller: %w", err)
		}
	}
	if err := (&ErasureRequestReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Options: opts}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up ErasureRequest controller: %w", err)
	}
	tenants, err := NewTenantReconciler(mgr.GetClient(), mgr.GetAPIReader(), mgr.GetEventRecorder("tenant-operator"), opts)
	if err != nil {
		return err
	}
	// Both need the leader: one replica probes and prunes.
	if err := mgr.Add(tenants.backups); err != nil {
		return fmt.Errorf("add backup inspector: %w", err)
	}
	if tenants.monitor != nil {
		if err := mgr.Add(tenants.monitor); err != nil {
			return fmt.Errorf("add uptime monitor: %w", err)
		}
	}
	if err := tenants.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up Tenant controller: %w", err)
	}
	if err := (&KeptTenantReconciler{tenants}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up kept-tenant controller: %w", err)
	}
	if err := (&TenantExportReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tenant-operator"), Options: opts}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up TenantExport controller: %w", err)
	}
	if err := (&TenantRestoreReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tenant-operator"), Options: opts}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up TenantRestore controller: %w", err)
	}
	return nil
}

// NewTenantReconciler returns the Tenant reconciler with its backup Inspector and, unless probes
// are off, its uptime Monitor; the caller runs those (mgr.Add).
func NewTenantReconciler(c client.Client, apiReader client.Reader, recorder recorder.EventRecorder, opts Options) (*TenantReconciler, error) {
	opts = opts.WithDefaults()
	ranges, err := builders.ClusterRanges(opts.Options)
	if err != nil {
		return nil, fmt.Errorf("the cluster's address ranges: %w", err)
	}
	r := &TenantReconciler{Client: c, APIReader: apiReader, Recorder: recorder, Options: opts, wake: &wakeSource{},
		keptWake: &wakeSource{namespace: opts.OperatorNamespace}, clusterRanges: ranges}
	r.applier = &ssa.Applier{Client: c, Owner: FieldOwner}
	r.backups = backupcheck.New(backupcheck.Options{Secrets: c, OperatorNamespace: opts.OperatorNamespace,
		VolumeRoot: opts.BackupVolumeRoot, Interval: opts.BackupCheckInterval, Clock: opts.Clock, Notify: func(key string) {
			if record, ok := backupcheck.KeptRecordOf(key); ok {
				r.keptWake.Wake(record)
				return
			}
			r.wake.Wake(key)
		}})
	if !opts.DisableUptimeProbes {
		r.monitor = uptime.NewMonitor(uptime.MonitorOptions{
			HTTP:     probes.NewHTTPProber(probes.HTTPOptions{RootCAs: opts.ProbeRootCAs, Clock: opts.Clock}),
			Database: probes.NewPostgresProber(probes.PostgresOptions{Clock: opts.Clock}),
			Clock:    opts.Clock, Metrics: opts.Metrics, Notify: r.wake.Wake,
			// Each shard keeps the histories of its own tenants, in ConfigMaps of its own.
			Store: &uptime.ConfigMapStore{Client: c, Reader: apiReader, Namespace: opts.OperatorNamespace, Owner: FieldOwner,
				Set: opts.Shard.String(), Owns: opts.Shard.Owns},
		})
	}
	return r, nil
}

// builderOptions are the settings the builders need.
func (r *TenantReconciler) builderOptions() builders.Options { return r.Options.Options }

func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, &v1alpha1.Tenant{}, indexTenantBackupPolicy, func(o client.Object) []string {
		if ref := o.(*v1alpha1.Tenant).Spec.BackupPolicyRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index tenants by backup policy: %w", err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.Tenant{}, indexTenantRetentionPolicy, func(o client.Object) []string {
		if ref := o.(*v1alpha1.Tenant).Spec.RetentionPolicyRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index tenants by retention policy: %w", err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.BackupPolicy{}, indexBackupPolicySecrets, func(o client.Object) []string {
		return backupPolicySecretNames(o.(*v1alpha1.BackupPolicy))
	}); err != nil {
		return fmt.Errorf("index backup policies by secret: %w", err)
	}
	for _, obj := range tenantIndexed() {
		if err := indexer.IndexField(ctx, obj, indexTenantLabel, tenantLabelOf); err != nil {
			return fmt.Errorf("index %T by tenant: %w", obj, err)
		}
	}
	return nil
}

// enqueuePolicyOfTenant enqueues the policy a Tenant references, before and after an update, so
// that both the policy it left and the one it joined recount their tenants.
func enqueuePolicyOfTenant(ref func(*v1alpha1.Tenant) *v1alpha1.LocalObjectReference) handler.EventHandler {
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		if t, ok := o.(*v1alpha1.Tenant); ok {
			if r := ref(t); r != nil {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: r.Name}})
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.ObjectOld)
			add(q, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
	}
}
