package controllers

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/shard"
)

// Sharding (Options.Shard): each manager reconciles only the tenants its shard owns. The watches
// of every per-tenant controller drop the other shards' tenants, and every Reconcile refuses them
// again first, since a map function (a policy to its tenants) or a wake-up can name any tenant.
// What belongs to one tenant is judged by that tenant's name: a TenantRestore by its target, a
// TenantExport by its tenant, an ErasureRequest by its namespace's tenant, a kept-tenant record by
// the tenant it kept, an owned object by its tenant label. The controllers of what is not per
// tenant (the policies) run on the first shard only.

// ownTenants lets through the events of Tenants this shard owns.
func ownTenants(s shard.Shard) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool { return s.Owns(o.GetName()) })
}

// ownLabelled lets through the events of objects labelled with a tenant this shard owns, and of
// objects labelled with no tenant.
func ownLabelled(s shard.Shard) predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		tenant, ok := o.GetLabels()[builders.LabelTenant]
		return !ok || s.Owns(tenant)
	})
}

// ownRequests drops, from the requests of a map function that names Tenants, those of tenants
// this shard does not own.
func ownRequests(s shard.Shard, requests handler.MapFunc) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []ctrl.Request {
		all := requests(ctx, o)
		own := all[:0]
		for _, r := range all {
			if s.Owns(r.Name) {
				own = append(own, r)
			}
		}
		return own
	}
}

// ownsNamespace tells whether this shard owns the tenant of a namespace (an ErasureRequest's). A
// namespace that is no tenant's belongs to the first shard, which reports that once.
func ownsNamespace(s shard.Shard, namespace string) bool {
	if tenant, ok := strings.CutPrefix(namespace, builders.NamespacePrefix); ok {
		return s.Owns(tenant)
	}
	return s.RunsClusterWide()
}

// keptTenantOf is the tenant a kept-tenant record kept: its tenant label, which the record is
// written with (builders.KeptTenantConfigMap), or else the record's own account of it.
func keptTenantOf(cm *corev1.ConfigMap) string {
	if tenant := cm.Labels[builders.LabelTenant]; tenant != "" {
		return tenant
	}
	if kept, err := builders.KeptTenantOf(cm); err == nil {
		return kept.Tenant
	}
	return ""
}
