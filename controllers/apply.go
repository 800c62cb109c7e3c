package controllers

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// ownedObject is an object to apply, with what to call it in errors.
type ownedObject struct {
	kind, name string
	obj        runtime.ApplyConfiguration
}

// apply writes an owned object with server-side apply under the operator's field owner, taking
// over fields a person changed by hand so the object returns to what the spec says. An unchanged
// object applied before is not sent again (see package ssa), so a steady state makes no writes.
func (r *TenantReconciler) apply(ctx context.Context, o ownedObject) error {
	return r.applyAndRead(ctx, o, nil)
}

// applyAndRead applies o and fills current with the object as it now is.
func (r *TenantReconciler) applyAndRead(ctx context.Context, o ownedObject, current client.Object) error {
	if _, err := r.applier.Apply(ctx, o.obj, current); err != nil {
		return fmt.Errorf("apply %s %s: %w", o.kind, o.name, err)
	}
	return nil
}

// applyConcurrently applies objects that do not depend on each other at once and returns the
// first error in their order. A new tenant is two dozen round trips to the API server; made one
// after another they were most of the time a tenant took to converge.
func (r *TenantReconciler) applyConcurrently(ctx context.Context, objects []ownedObject) error {
	return firstError(concurrently(ctx, r.applyTasks(objects)...))
}

func (r *TenantReconciler) applyTasks(objects []ownedObject) []func(context.Context) error {
	tasks := make([]func(context.Context) error, len(objects))
	for i, o := range objects {
		tasks[i] = func(ctx context.Context) error { return r.apply(ctx, o) }
	}
	return tasks
}

// concurrently runs tasks at once and returns their errors in the tasks' order. Unlike errgroup,
// one failure does not cancel the others: the other parts' applies are still wanted.
func concurrently(ctx context.Context, tasks ...func(context.Context) error) []error {
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, task := range tasks {
		wg.Go(func() { errs[i] = task(ctx) })
	}
	wg.Wait()
	return errs
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteUnwanted deletes the tenant's objects of list's kind (what, in messages) in namespace (""
// for cluster-scoped kinds) whose names are not in keep, and returns the names it deleted. It reads the cache, which
// holds every object the operator labelled, so a steady tenant costs no request at all: a delete
// is sent only for an object the cache shows.
func (r *TenantReconciler) deleteUnwanted(ctx context.Context, t *v1alpha1.Tenant, what string, list client.ObjectList, namespace string, keep map[string]bool, opts ...client.DeleteOption) ([]string, error) {
	listOpts := []client.ListOption{client.MatchingLabels(builders.TenantLabels(t))}
	if namespace != "" {
		listOpts = append(listOpts, client.InNamespace(namespace))
	}
	if r.listsByTenant(list) {
		listOpts = append(listOpts, client.MatchingFields{indexTenantLabel: t.Name})
	}
	if err := r.List(ctx, list, listOpts...); err != nil {
		return nil, fmt.Errorf("list %ss of tenant %s: %w", what, t.Name, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, item := range items {
		obj := item.(client.Object)
		if keep[obj.GetName()] {
			continue
		}
		if err := r.Delete(ctx, obj, opts...); client.IgnoreNotFound(err) != nil {
			return deleted, fmt.Errorf("delete %s %s: %w", what, obj.GetName(), err)
		}
		deleted = append(deleted, obj.GetName())
	}
	return deleted, nil
}

// deleteCached deletes the object at key when the cache shows it: a tenant without it costs no
// request.
func (r *TenantReconciler) deleteCached(ctx context.Context, obj client.Object, key types.NamespacedName) error {
	switch err := r.Get(ctx, key, obj); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get %s: %w", key, err)
	}
	if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// ownedByTenant tells whether an object carries the labels the operator puts on a tenant's objects.
func ownedByTenant(obj client.Object, t *v1alpha1.Tenant) bool {
	for k, v := range builders.TenantLabels(t) {
		if obj.GetLabels()[k] != v {
			return false
		}
	}
	return true
}

// listsByTenant tells whether list is of a kind indexed by indexTenantLabel (tenantIndexed).
func (r *TenantReconciler) listsByTenant(list client.ObjectList) bool {
	listKind, err := apiutil.GVKForObject(list, r.Scheme())
	if err != nil {
		return false
	}
	for _, obj := range tenantIndexed() {
		if kind, err := apiutil.GVKForObject(obj, r.Scheme()); err == nil && kind.GroupVersion().WithKind(kind.Kind+"List") == listKind {
			return true
		}
	}
	return false
}
