package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/validation"
)

// Keys a storage credentials Secret must hold.
var s3CredentialKeys = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

// BackupPolicyReconciler checks that a BackupPolicy is valid and its Secrets exist, and counts
// the Tenants that use it. The backups themselves are scheduled per tenant by the Tenant controller.
type BackupPolicyReconciler struct {
	client.Client
	// APIReader confirms a cache miss before a signing key is made.
	APIReader client.Reader
	Options   Options
}

// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=backuppolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=backuppolicies/status,verbs=patch
// Secrets: see the Tenant controller, which needs them in tenant namespaces too.

// Reconcile sets Ready and the tenant count of one BackupPolicy.
func (r *BackupPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	policy := &v1alpha1.BackupPolicy{}
	if err := r.Get(ctx, req.NamespacedName, policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := policy.DeepCopy()
	defer func() {
		if err := patchStatus(ctx, r.Client, before, policy, func(p *v1alpha1.BackupPolicy) any { return p.Status }); err != nil && retErr == nil {
			retErr = err
		}
	}()

	tenants := &v1alpha1.TenantList{}
	if err := r.List(ctx, tenants, client.MatchingFields{indexTenantBackupPolicy: policy.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list tenants of backup policy %s: %w", policy.Name, err)
	}
	policy.Status.Tenants = int32(len(tenants.Items))
	names := make([]string, 0, len(policy.Spec.Schedules))
	for _, s := range policy.Spec.Schedules {
		names = append(names, s.Name)
	}
	policy.Status.Schedules = strings.Join(names, ",")

	if errs := validation.BackupPolicy(policy); len(errs) > 0 {
		setPolicyReady(&policy.Status.Conditions, policy.Generation, v1alpha1.ReasonInvalidSpec, errs.ToAggregate().Error())
		policy.Status.ObservedGeneration = policy.Generation
		return ctrl.Result{}, reconcile.TerminalError(errs.ToAggregate())
	}
	if err := r.ensureSigningKey(ctx, policy); err != nil {
		return ctrl.Result{}, err
	}
	missing, err := r.missingSecrets(ctx, policy)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(missing) > 0 {
		// The Secret watch brings us back when they appear; no requeue needed.
		setPolicyReady(&policy.Status.Conditions, policy.Generation, v1alpha1.ReasonSecretNotFound,
			fmt.Sprintf("Secrets missing in namespace %s: %s", r.Options.OperatorNamespace, strings.Join(missing, "; ")))
		policy.Status.ObservedGeneration = policy.Generation
		return ctrl.Result{}, nil
	}
	setPolicyReady(&policy.Status.Conditions, policy.Generation, v1alpha1.ReasonSucceeded,
		fmt.Sprintf("%d schedules valid and their Secrets present", len(policy.Spec.Schedules)))
	policy.Status.ObservedGeneration = policy.Generation
	return ctrl.Result{}, nil
}

// missingSecrets describes each referenced Secret, or key in it, that does not exist.
func (r *BackupPolicyReconciler) missingSecrets(ctx context.Context, policy *v1alpha1.BackupPolicy) ([]string, error) {
	var missing []string
	check := func(name string, keys ...string) error {
		secret := &corev1.Secret{}
		err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}, secret)
		if apierrors.IsNotFound(err) {
			missing = append(missing, fmt.Sprintf("%s not found", name))
			return nil
		}
		if err != nil {
			return fmt.Errorf("get secret %s/%s: %w", r.Options.OperatorNamespace, name, err)
		}
		for _, k := range keys {
			if len(secret.Data[k]) == 0 {
				missing = append(missing, fmt.Sprintf("%s has no key %s", name, k))
			}
		}
		return nil
	}
	for _, name := range storageSecretNames(policy) {
		if err := check(name, s3CredentialKeys...); err != nil {
			return nil, err
		}
	}
	if ref := policy.Spec.Encryption.IdentitySecretRef; ref != nil {
		key := ref.Key
		if key == "" {
			key = "identity"
		}
		if err := check(ref.Name, key); err != nil {
			return nil, err
		}
	}
	sort.Strings(missing)
	return dedupe(missing), nil
}

// storageSecretNames are the S3 credentials Secrets a policy names for all its tenants: the
// default, the pruner's, and a writer's or reader's shared by all tenants. Per-tenant ones
// (<name>-<tenant>) are the tenants' to check.
func storageSecretNames(p *v1alpha1.BackupPolicy) []string {
	var names []string
	for _, sched := range p.Spec.Schedules {
		s3 := sched.Storage.S3
		if s3 == nil {
			continue
		}
		names = append(names, s3.CredentialsSecretRef.Name, s3.PrunerSecretName())
		for _, ref := range []*v1alpha1.StorageCredentialsReference{s3.WriterCredentialsSecretRef, s3.ReaderCredentialsSecretRef} {
			if ref != nil && !ref.PerTenant {
				names = append(names, ref.Name)
			}
		}
	}
	return names
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// backupPolicySecretNames lists the Secrets a policy references, for the field index.
func backupPolicySecretNames(p *v1alpha1.BackupPolicy) []string {
	names := append(storageSecretNames(p), builders.BackupSigningSecretName(p))
	if ref := p.Spec.Encryption.IdentitySecretRef; ref != nil {
		names = append(names, ref.Name)
	}
	sort.Strings(names)
	return dedupe(names)
}

// SetupWithManager watches BackupPolicies, the Tenants that reference them (for the count) and
// the Secrets they name in the operator's namespace.
func (r *BackupPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.BackupPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.Tenant{}, enqueuePolicyOfTenant(func(t *v1alpha1.Tenant) *v1alpha1.LocalObjectReference { return t.Spec.BackupPolicyRef })).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.policiesForSecret)).
		Named("backuppolicy").
		Complete(r)
}

func (r *BackupPolicyReconciler) policiesForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.Options.OperatorNamespace {
		return nil
	}
	policies := &v1alpha1.BackupPolicyList{}
	if err := r.List(ctx, policies, client.MatchingFields{indexBackupPolicySecrets: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List backup policies for secret", "secret", o.GetName())
		return nil
	}
	requests := make([]reconcile.Request, 0, len(policies.Items))
	for _, p := range policies.Items {
		requests = append(requests, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	}
	return requests
}
