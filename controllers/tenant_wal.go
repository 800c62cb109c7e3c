package controllers

import (
	"context"
	"fmt"
	"maps"
	"time"

	"filippo.io/age"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch
// (Writing Deployments is the operator namespace's Role: config/manager/leader_election_role.yaml.)

// applyWALReceivers applies a WAL receiver per physical schedule of the policy, deletes the
// tenant's receivers the policy no longer asks for, and returns what each schedule's receiver
// shows. A receiver's Deployment is read back after the apply for its availability.
func (r *TenantReconciler) applyWALReceivers(ctx context.Context, t *v1alpha1.Tenant, policy *v1alpha1.BackupPolicy) (map[string]backupcheck.Receiver, error) {
	opts := r.builderOptions()
	keep := map[string]bool{}
	receivers := map[string]backupcheck.Receiver{}
	if builders.NeedsManifestKey(policy) {
		// Before the CronJobs' first run, which mounts it.
		if err := r.ensureManifestKey(ctx, t); err != nil {
			return nil, err
		}
	}
	for _, spec := range policy.Spec.Schedules {
		if !spec.IsPhysical() {
			continue
		}
		d, err := builders.WALReceiverDeployment(t, policy, spec, opts)
		if err != nil {
			return nil, err
		}
		name := builders.WALReceiverName(t, spec.Name)
		current := &appsv1.Deployment{}
		if err := r.applyAndRead(ctx, ownedObject{"deployment", name, d}, current); err != nil {
			return nil, err
		}
		keep[name] = true
		receivers[spec.Name] = receiverOf(current)
	}
	deleted, err := r.deleteUnwanted(ctx, t, "deployment", &appsv1.DeploymentList{}, r.Options.OperatorNamespace, keep)
	for _, name := range deleted {
		r.event(t, corev1.EventTypeNormal, "WALReceiverRemoved", fmt.Sprintf("Deleted WAL receiver %s/%s: its policy no longer has that physical schedule", r.Options.OperatorNamespace, name))
	}
	return receivers, err
}

// receiverOf is what a receiver's Deployment shows: available once its pod passed its probe, and
// since when its availability last changed (or it was made, before it has a say).
func receiverOf(d *appsv1.Deployment) backupcheck.Receiver {
	rc := backupcheck.Receiver{Name: d.Name, Since: d.CreationTimestamp.Time}
	if d.Status.ObservedGeneration < d.Generation {
		return rc
	}
	for _, c := range d.Status.Conditions {
		if c.Type != appsv1.DeploymentAvailable {
			continue
		}
		rc.Ready = c.Status == corev1.ConditionTrue && d.Status.AvailableReplicas > 0
		if !c.LastTransitionTime.IsZero() {
			rc.Since = c.LastTransitionTime.Time
		}
	}
	return rc
}

// ensureManifestKey makes the tenant's manifest key once, with crypto/rand, and never replaces it:
// the backup_manifest of every physical backup of the chain is encrypted to it. Create, not apply,
// so that two passes racing cannot both write a key.
func (r *TenantReconciler) ensureManifestKey(ctx context.Context, t *v1alpha1.Tenant) error {
	name := builders.ManifestKeySecretName(t)
	switch err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}, &corev1.Secret{}); {
	case err == nil:
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get secret %s: %w", name, err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return fmt.Errorf("generate manifest key: %w", err)
	}
	ac := builders.ManifestKeySecret(t, id.String(), r.builderOptions())
	if err := r.Apply(ctx, ac, FieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("save manifest key %s: %w", name, err)
	}
	return nil
}

// stopWALReceivers deletes the tenant's WAL receivers in the foreground (a Deployment stays until
// its pods are gone) and returns those still there: a receiver still running after an erasure
// would store WAL, and the wrapped data key, again. It reads the API server, not the cache.
func (r *TenantReconciler) stopWALReceivers(ctx context.Context, t *v1alpha1.Tenant) ([]string, error) {
	reader := client.Reader(r.Client)
	if r.APIReader != nil {
		reader = r.APIReader
	}
	list := &appsv1.DeploymentList{}
	selector := maps.Clone(builders.TenantLabels(t))
	selector[builders.LabelComponent] = builders.ComponentWALReceiver
	if err := reader.List(ctx, list, client.InNamespace(r.Options.OperatorNamespace), client.MatchingLabels(selector)); err != nil {
		return nil, fmt.Errorf("list WAL receivers of tenant %s: %w", t.Name, err)
	}
	var running []string
	for i := range list.Items {
		d := &list.Items[i]
		running = append(running, d.Name)
		if !d.DeletionTimestamp.IsZero() {
			continue
		}
		if err := r.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationForeground)); client.IgnoreNotFound(err) != nil {
			return nil, fmt.Errorf("delete deployment %s: %w", d.Name, err)
		}
	}
	return running, nil
}

// walRecheck is how soon a tenant whose receivers are not ready is looked at again, so that
// WALArchiving turns Failing on time without a watch event.
const walRecheck = time.Minute
