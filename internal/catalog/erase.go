package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tenantops/tenant-operator/internal/storage"
)

// BackupRef names one backup in a location.
type BackupRef struct {
	Schedule string `json:"schedule"`
	ID       string `json:"id"`
}

// ErasurePlan is what erasing a tenant's data from one location takes: its data keys' escrow
// copies and its backups, told apart by whether destroying the keys already makes them unreadable.
type ErasurePlan struct {
	Tenant     string
	TenantUIDs []string
	// DataKeys are the IDs of the escrowed keys of the tenant's UIDs.
	DataKeys []string
	// Unreadable are the backups encrypted to one of the tenant's data keys: once the keys are
	// gone, nobody can decrypt them; they are deleted besides.
	Unreadable []BackupRef
	// Plain are the backups encrypted to the platform's recipients directly (made before
	// per-tenant keys, or by hand): only deleting them erases them.
	Plain []BackupRef
	// Unowned counts manifests that could not be read, whose owner is unknown; they are left.
	Unowned int
}

// PlanErasure lists what erasing the tenant's UIDs from a location destroys. Backups that recorded
// no UID belong to whoever holds the name and are included; a predecessor's or successor's of
// the same name, recorded under another UID, are not.
func PlanErasure(ctx context.Context, store storage.Store, tenant string, tenantUIDs []string) (ErasurePlan, error) {
	plan := ErasurePlan{Tenant: tenant, TenantUIDs: tenantUIDs}
	o := listOpts([]ListOption{WithTenantUIDs(tenantUIDs...)})
	for _, uid := range tenantUIDs {
		ids, err := ListDataKeys(ctx, store, tenant, uid)
		if err != nil {
			return plan, err
		}
		plan.DataKeys = append(plan.DataKeys, ids...)
	}
	err := walk(ctx, store, tenant, "", o, func(dir string, data []byte, _ *Verification, _ SignatureStatus) error {
		var m Manifest
		if json.Unmarshal(data, &m) != nil || m.check() != nil || checkDir(dir, m) != nil {
			plan.Unowned++
			return nil
		}
		if !o.owns(m.TenantUID) {
			return nil
		}
		ref := BackupRef{Schedule: m.Schedule, ID: m.ID}
		if m.DataKeyID != "" {
			plan.Unreadable = append(plan.Unreadable, ref)
		} else {
			plan.Plain = append(plan.Plain, ref)
		}
		return nil
	})
	return plan, err
}

// Erase carries out a plan. The data keys go first: from that moment the backups encrypted to
// them are unreadable wherever copies of them may be, even if deleting the backups themselves
// fails halfway (a retry finishes it). Then the backups, then any unfinished uploads under the
// tenant's schedules.
func Erase(ctx context.Context, store storage.Store, plan ErasurePlan) error {
	for _, uid := range plan.TenantUIDs {
		for _, id := range plan.DataKeys {
			name, err := DataKeyObject(plan.Tenant, uid, id)
			if err != nil {
				return err
			}
			if err := store.Delete(ctx, name); err != nil {
				return fmt.Errorf("destroy data key %s: %w", id, err)
			}
		}
		// Keys written since the plan (a backup that was still running) go too.
		ids, err := ListDataKeys(ctx, store, plan.Tenant, uid)
		if err != nil {
			return err
		}
		for _, id := range ids {
			name, _ := DataKeyObject(plan.Tenant, uid, id)
			if err := store.Delete(ctx, name); err != nil {
				return fmt.Errorf("destroy data key %s: %w", id, err)
			}
		}
	}
	schedules := map[string]bool{}
	for _, refs := range [][]BackupRef{plan.Unreadable, plan.Plain} {
		for _, b := range refs {
			if err := Delete(ctx, store, plan.Tenant, b.Schedule, b.ID); err != nil {
				return err
			}
			schedules[b.Schedule] = true
		}
	}
	for s := range schedules {
		if _, err := store.RemoveIncomplete(ctx, Dir(plan.Tenant, s, ""), time.Now()); err != nil {
			return fmt.Errorf("remove unfinished uploads of schedule %s: %w", s, err)
		}
	}
	return nil
}
