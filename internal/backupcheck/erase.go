package backupcheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// eraseRetry is how long a failed erasure waits before the next request starts it again.
const eraseRetry = 30 * time.Second

// eraseTimeout bounds the erasure of one location. It is longer than a storage check's timeout:
// a tenant with years of backups takes a while to delete, and the keys, destroyed first, do not
// wait for it.
const eraseTimeout = 10 * time.Minute

// EraseRequest asks for a tenant's data to be erased from every storage location of a policy.
type EraseRequest struct {
	Tenant string
	// TenantUIDs are the Tenant objects whose keys and backups go; another Tenant's of the same
	// name stay.
	TenantUIDs []string
	// OwnedSince is when the erased Tenant was created: backups that recorded no UID and began
	// earlier are a predecessor's of the same name, and stay.
	OwnedSince time.Time
	Policy     *v1alpha1.BackupPolicy
	// Key is what Notify is called with when the erasure ends; the tenant's name when empty
	// (KeptKey for a kept tenant's record).
	Key string
}

func (r EraseRequest) key() string { return r.Tenant + "/" + strings.Join(r.TenantUIDs, ",") }

// Erasure is the state of an erasure: running, or done with what it destroyed in each location,
// or failed.
type Erasure struct {
	// Done is true once every location was erased; Err, when set, is why the last attempt failed.
	Done bool
	Err  error
	// Locations are what each location held and no longer does.
	Locations []LocationErasure
	// FinishedAt is when the last attempt ended.
	FinishedAt time.Time
}

// LocationErasure is what was erased from one storage location.
type LocationErasure struct {
	// Location names the storage (never with credentials); Schedules are the policy's schedules
	// that write there.
	Location  string
	Schedules []string
	Plan      catalog.ErasurePlan
}

type erasureState struct {
	running bool
	result  Erasure
}

// Erase starts erasing, or reports on an erasure started before. It never waits for storage:
// the erasure runs on its own goroutine and Notify tells the tenant when it ends. A failed one is
// started again by a request at least eraseRetry after it ended. Only a started Inspector (the
// leader) erases.
func (i *Inspector) Erase(req EraseRequest) Erasure {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.erasures == nil {
		i.erasures = map[string]*erasureState{}
	}
	st := i.erasures[req.key()]
	switch {
	case st != nil && (st.running || st.result.Done):
		return st.result
	case st != nil && i.opts.Clock.Since(st.result.FinishedAt) < eraseRetry:
		return st.result
	case i.started == nil:
		return Erasure{}
	}
	if st == nil {
		st = &erasureState{}
		i.erasures[req.key()] = st
	}
	st.running = true
	ctx := i.started
	previous := st.result
	go func() {
		result := i.erase(ctx, req, previous)
		i.mu.Lock()
		st.running, st.result = false, result
		i.mu.Unlock()
		if req.Key != "" {
			i.opts.Notify(req.Key)
		} else {
			i.opts.Notify(req.Tenant)
		}
	}()
	return st.result
}

// ForgetErasure drops the record of a finished erasure, once its outcome is kept elsewhere.
func (i *Inspector) ForgetErasure(req EraseRequest) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if st := i.erasures[req.key()]; st != nil && !st.running {
		delete(i.erasures, req.key())
	}
}

// erase erases each location the policy's schedules write to, one after another; schedules that
// share a location are erased once. What an earlier, failed attempt erased is carried over, so
// the outcome lists everything the erasure destroyed.
func (i *Inspector) erase(ctx context.Context, req EraseRequest, previous Erasure) Erasure {
	var out Erasure
	byLocation := map[string]*LocationErasure{}
	var order []string
	for _, s := range req.Policy.Spec.Schedules {
		loc, err := locationKey(s.Storage)
		if err != nil {
			out.Err = fmt.Errorf("schedule %s: %w", s.Name, err)
			out.FinishedAt = i.opts.Clock.Now()
			return out
		}
		if le := byLocation[loc]; le != nil {
			le.Schedules = append(le.Schedules, s.Name)
			continue
		}
		byLocation[loc] = &LocationErasure{Location: loc, Schedules: []string{s.Name}}
		order = append(order, loc)
	}
	for _, loc := range order {
		le := byLocation[loc]
		spec, _ := scheduleOf(req.Policy, le.Schedules[0])
		err := i.eraseLocation(ctx, req, spec.Storage, le)
		for _, p := range previous.Locations {
			if p.Location == loc {
				le.Plan = mergePlans(p.Plan, le.Plan)
			}
		}
		out.Locations = append(out.Locations, *le)
		if err != nil {
			out.Err = fmt.Errorf("erase tenant %s from %s: %w", req.Tenant, loc, err)
			break
		}
	}
	out.Done = out.Err == nil
	out.FinishedAt = i.opts.Clock.Now()
	return out
}

// eraseLocation destroys the tenant's keys in one location first, then plans and deletes its
// backups: what makes the backups unreadable never waits on listing them.
func (i *Inspector) eraseLocation(ctx context.Context, req EraseRequest, s v1alpha1.BackupStorage, le *LocationErasure) error {
	ctx, cancel := context.WithTimeout(ctx, max(eraseTimeout, i.opts.Timeout))
	defer cancel()
	store, err := i.open(ctx, s)
	if err != nil {
		return err
	}
	destroyed, err := catalog.DestroyDataKeys(ctx, store, req.Tenant, slices.Clone(req.TenantUIDs))
	le.Plan = catalog.ErasurePlan{Tenant: req.Tenant, TenantUIDs: req.TenantUIDs, DataKeys: destroyed}
	if err != nil {
		return err
	}
	plan, err := catalog.PlanErasure(ctx, store, req.Tenant, slices.Clone(req.TenantUIDs), req.OwnedSince)
	plan.DataKeys = union(destroyed, plan.DataKeys)
	le.Plan = plan
	if err != nil {
		return err
	}
	return catalog.Erase(ctx, store, plan)
}

// mergePlans is the union of two plans of the same location.
func mergePlans(a, b catalog.ErasurePlan) catalog.ErasurePlan {
	out := b
	out.DataKeys = union(a.DataKeys, b.DataKeys)
	out.Unreadable = union(a.Unreadable, b.Unreadable)
	out.Plain = union(a.Plain, b.Plain)
	out.Unowned, out.LeftLegacy = max(a.Unowned, b.Unowned), max(a.LeftLegacy, b.LeftLegacy)
	out.WALSystems = union(a.WALSystems, b.WALSystems)
	out.Exports = union(a.Exports, b.Exports)
	out.LedgerEntries = max(a.LedgerEntries, b.LedgerEntries)
	out.Records = max(a.Records, b.Records)
	return out
}

func union[T comparable](a, b []T) []T {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
