// Package webhook serves the validating admission webhook for the tenancy API: it rejects, with a
// message naming the field, what the CRDs' OpenAPI and CEL rules cannot express.
//
// The webhook never stands in the way of deletion: DELETE is not registered, the configuration's
// matchCondition skips objects that are being deleted (so removing a finalizer is never sent here,
// even while the webhook is down), and an update that leaves the spec alone is always allowed.
package webhook

import (
	"context"
	"fmt"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/validation"
)

// Option configures the webhooks.
type Option func(*config)

type config struct {
	builderOptions builders.Options
}

// WithBuilderOptions passes the operator's builder options, whose cluster ranges
// (Options.Networks) the Tenant webhook checks firewall CIDRs against (validation.Firewall).
// Without it the webhook uses builders.DefaultOptions, as the firewall builder does when the
// operator sets no ranges.
func WithBuilderOptions(o builders.Options) Option {
	return func(c *config) { c.builderOptions = o }
}

// SetupWithManager registers the validating webhooks of all three kinds with the manager.
func SetupWithManager(mgr ctrl.Manager, opts ...Option) error {
	cfg := config{builderOptions: builders.DefaultOptions()}
	for _, o := range opts {
		o(&cfg)
	}
	ranges, err := builders.ClusterRanges(cfg.builderOptions)
	if err != nil {
		return fmt.Errorf("cluster ranges for the Tenant webhook: %w", err)
	}
	validateTenant := func(t *v1alpha1.Tenant) field.ErrorList {
		return append(validation.Tenant(t), validation.Firewall(t, ranges)...)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.Tenant{}).
		WithValidator(specValidator[*v1alpha1.Tenant]{kind: "Tenant", validate: validateTenant, spec: func(t *v1alpha1.Tenant) any { return t.Spec }}).
		Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.BackupPolicy{}).
		WithValidator(specValidator[*v1alpha1.BackupPolicy]{kind: "BackupPolicy", validate: validation.BackupPolicy, spec: func(p *v1alpha1.BackupPolicy) any { return p.Spec }}).
		Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &v1alpha1.RetentionPolicy{}).
		WithValidator(specValidator[*v1alpha1.RetentionPolicy]{kind: "RetentionPolicy", validate: validation.RetentionPolicy, spec: func(p *v1alpha1.RetentionPolicy) any { return p.Spec }}).
		Complete()
}

// +kubebuilder:webhook:path=/validate-tenancy-tenantops-io-v1alpha1-tenant,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenancy.tenantops.io,resources=tenants,verbs=create;update,versions=v1alpha1,name=vtenant.tenancy.tenantops.io,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"matchConditions":[{"name":"not-being-deleted","expression":"!has(object.metadata.deletionTimestamp)"}]}`
// +kubebuilder:webhook:path=/validate-tenancy-tenantops-io-v1alpha1-backuppolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenancy.tenantops.io,resources=backuppolicies,verbs=create;update,versions=v1alpha1,name=vbackuppolicy.tenancy.tenantops.io,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"matchConditions":[{"name":"not-being-deleted","expression":"!has(object.metadata.deletionTimestamp)"}]}`
// +kubebuilder:webhook:path=/validate-tenancy-tenantops-io-v1alpha1-retentionpolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=tenancy.tenantops.io,resources=retentionpolicies,verbs=create;update,versions=v1alpha1,name=vretentionpolicy.tenancy.tenantops.io,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"matchConditions":[{"name":"not-being-deleted","expression":"!has(object.metadata.deletionTimestamp)"}]}`

// specValidator validates one kind with the checks of package validation.
type specValidator[T client.Object] struct {
	kind     string
	validate func(T) field.ErrorList
	spec     func(T) any
}

func (v specValidator[T]) ValidateCreate(_ context.Context, obj T) (admission.Warnings, error) {
	return nil, v.invalid(obj, v.validate(obj))
}

func (v specValidator[T]) ValidateUpdate(_ context.Context, oldObj, newObj T) (admission.Warnings, error) {
	// Metadata-only updates (labels, finalizers) must go through even for an object that slipped
	// past admission with a bad spec; the controller reports that spec in a condition.
	if newObj.GetDeletionTimestamp() != nil || apiequality.Semantic.DeepEqual(v.spec(oldObj), v.spec(newObj)) {
		return nil, nil
	}
	return nil, v.invalid(newObj, v.validate(newObj))
}

func (v specValidator[T]) ValidateDelete(context.Context, T) (admission.Warnings, error) {
	return nil, nil
}

func (v specValidator[T]) invalid(obj T, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	gk := schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: v.kind}
	return apierrors.NewInvalid(gk, obj.GetName(), errs)
}
