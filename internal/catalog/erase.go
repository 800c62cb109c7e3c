package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
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
	// LeftLegacy counts backups that recorded no Tenant UID and began before the erased Tenant
	// existed: a predecessor's of the same name, another customer's; they are left.
	LeftLegacy int
	// WALSystems are the database systems whose WAL archive (<tenant>/wal/<system id>/) is the
	// tenant's, judged by the first description found there; all of it is deleted.
	WALSystems []string
	// Exports are the IDs of the tenant's stored exports (<tenant>/exports/), each deleted with its
	// record: encrypted to the customer, but the platform keeps nothing of a tenant it erased.
	Exports []string
	// LedgerEntries counts the entries of the tenant's erasure ledger (<tenant>/.ledger/<UID>/):
	// sealed to its data keys, unreadable once they are destroyed, and deleted besides.
	LedgerEntries int
	// Records counts the tenant's prune and restore records (<tenant>/.prunes/<UID>/,
	// <tenant>/.restores/<UID>/; see records.go), deleted with its backups: once they are gone
	// the records account for nothing left, nothing would ever expire them, and the erasure
	// record in the cluster is what remains.
	Records int
}

// PlanErasure lists what erasing the tenant's UIDs from a location destroys: the backups recorded
// under those UIDs, and those that recorded no UID (made before it was recorded) and began at or
// after ownedSince, the erased Tenant's creation. A predecessor's or successor's of the same name
// stays, whether recorded under its own UID or before the erased Tenant existed. A manifest that
// cannot be read is counted in Unowned, never a reason to stop.
func PlanErasure(ctx context.Context, store storage.Store, tenant string, tenantUIDs []string, ownedSince time.Time) (ErasurePlan, error) {
	plan := ErasurePlan{Tenant: tenant, TenantUIDs: tenantUIDs}
	o := listOpts([]ListOption{WithTenantUIDs(tenantUIDs...)})
	o.tolerant = true
	for _, uid := range tenantUIDs {
		ids, err := ListDataKeys(ctx, store, tenant, uid)
		if err != nil {
			return plan, err
		}
		plan.DataKeys = append(plan.DataKeys, ids...)
		n, err := CountLedger(ctx, store, tenant, uid)
		if err != nil {
			return plan, err
		}
		plan.LedgerEntries += n
		if n, err = CountRecords(ctx, store, tenant, uid); err != nil {
			return plan, err
		}
		plan.Records += n
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
		if m.TenantUID == "" && m.StartedAt.Before(ownedSince) {
			plan.LeftLegacy++
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
	if err != nil {
		return plan, err
	}
	if plan.WALSystems, err = ownedWALSystems(ctx, store, tenant, o); err != nil {
		return plan, err
	}
	plan.Exports, err = ownedExports(ctx, store, tenant, o)
	return plan, err
}

// ownedWALSystems returns the systems of the tenant's WAL archive whose descriptions name one of
// the owners. A system is one database cluster, so one description tells whose it is; a system
// whose description cannot be read, or names no UID, is left.
func ownedWALSystems(ctx context.Context, store storage.Store, tenant string, o listOptions) ([]string, error) {
	prefix := WALPrefix(tenant, "")
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list WAL archive of tenant %s: %w", tenant, err)
	}
	judged := map[string]bool{}
	var owned []string
	for _, obj := range objs {
		parts := strings.Split(strings.TrimPrefix(obj.Key, prefix+"/"), "/")
		if len(parts) != 3 || !strings.HasSuffix(parts[2], walSidecarSuffix) || judged[parts[0]] {
			continue
		}
		data, err := readSmall(ctx, store, obj.Key, maxMetadataSize)
		if err != nil {
			continue // the next description of the system may tell
		}
		info, _, err := decodeWALSidecar(data, nil)
		if err != nil || info.Tenant != tenant || info.SystemID != parts[0] {
			continue
		}
		judged[parts[0]] = true
		if info.TenantUID != "" && o.owns(info.TenantUID) {
			owned = append(owned, parts[0])
		}
	}
	return owned, nil
}

// ownedExports returns the IDs of the tenant's exports whose records name one of the owners.
func ownedExports(ctx context.Context, store storage.Store, tenant string, o listOptions) ([]string, error) {
	objs, err := store.List(ctx, ExportsDir(tenant))
	if err != nil {
		return nil, fmt.Errorf("list exports of tenant %s: %w", tenant, err)
	}
	var owned []string
	for _, obj := range objs {
		id, ok := strings.CutSuffix(path.Base(obj.Key), ".json")
		if !ok {
			continue
		}
		data, err := readSmall(ctx, store, obj.Key, maxMetadataSize)
		if err != nil {
			continue
		}
		var r ExportRecord
		if json.Unmarshal(data, &r) != nil || r.Tenant != tenant || r.ID != id || r.TenantUID == "" || !o.owns(r.TenantUID) {
			continue
		}
		owned = append(owned, id)
	}
	return owned, nil
}

// DestroyDataKeys deletes every escrowed data key of the tenant's UIDs in a location and returns
// their IDs. It lists only the keys' own directory, so it is quick whatever the tenant's backups:
// erasure calls it before anything else, so that a slow or failing walk over the backups never
// leaves the keys in place.
func DestroyDataKeys(ctx context.Context, store storage.Store, tenant string, tenantUIDs []string) ([]string, error) {
	var destroyed []string
	for _, uid := range tenantUIDs {
		ids, err := ListDataKeys(ctx, store, tenant, uid)
		if err != nil {
			return destroyed, err
		}
		for _, id := range ids {
			name, err := DataKeyObject(tenant, uid, id)
			if err != nil {
				return destroyed, err
			}
			if err := store.Delete(ctx, name); err != nil {
				return destroyed, fmt.Errorf("destroy data key %s: %w", id, err)
			}
			destroyed = append(destroyed, id)
		}
	}
	return destroyed, nil
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
	}
	// Keys written since the plan (a backup that was still running) go too.
	if _, err := DestroyDataKeys(ctx, store, plan.Tenant, plan.TenantUIDs); err != nil {
		return err
	}
	// The erasure ledger, sealed to the keys just destroyed: it names the subjects of the
	// tenant's erasure requests, and nothing is left to replay it into.
	for _, uid := range plan.TenantUIDs {
		if _, err := DeleteLedger(ctx, store, plan.Tenant, uid); err != nil {
			return err
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
	for _, system := range plan.WALSystems {
		objs, err := store.List(ctx, WALPrefix(plan.Tenant, system))
		if err != nil {
			return fmt.Errorf("list WAL archive of system %s: %w", system, err)
		}
		for _, obj := range objs {
			if err := store.Delete(ctx, obj.Key); err != nil {
				return fmt.Errorf("delete WAL %s: %w", obj.Key, err)
			}
		}
	}
	for _, id := range plan.Exports {
		// The archive first: a record without its archive is an export already gone.
		for _, key := range []string{ExportObject(plan.Tenant, id), ExportRecordObject(plan.Tenant, id)} {
			if err := store.Delete(ctx, key); err != nil {
				return fmt.Errorf("delete export %s: %w", id, err)
			}
		}
	}
	// The account of prunings and restores goes last: while backups are left (an erasure that
	// failed halfway), what was pruned from among them is still worth telling.
	for _, uid := range plan.TenantUIDs {
		if _, err := DeleteRecords(ctx, store, plan.Tenant, uid); err != nil {
			return err
		}
	}
	return nil
}
