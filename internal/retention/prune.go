package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// IncompleteListingError means the backups of a schedule could not all be listed (storage failed to
// answer, a manifest or verification could not be read), so nothing was pruned: a backup missing
// from the listing might be the newest or the newest verified one.
type IncompleteListingError struct {
	Tenant, Schedule string
	Err              error
}

func (e *IncompleteListingError) Error() string {
	return fmt.Sprintf("nothing pruned: the backups of tenant %s schedule %s could not all be listed: %v", e.Tenant, e.Schedule, e.Err)
}

func (e *IncompleteListingError) Unwrap() error { return e.Err }

// Result is what one pruning run decided and did.
type Result struct {
	Decision
	// Deleted holds the ids removed, oldest first. When the run failed partway, it holds those
	// removed before the failure; the rest of Decision.Prune is still there.
	Deleted []string
}

// Plan lists the backups of one tenant and schedule and decides what policy prunes at now, with
// days cut in loc (UTC when nil). It deletes nothing: it is what status can show between runs.
// A listing that fails is an *IncompleteListingError.
func Plan(ctx context.Context, store storage.Store, tenant, schedule string, policy v1alpha1.RetentionPolicySpec, now time.Time, loc *time.Location) (Decision, error) {
	listed, err := list(ctx, store, tenant, schedule)
	if err != nil {
		return Decision{}, err
	}
	return planListed(tenant, schedule, listed, policy, now, loc)
}

// list lists the backups of one tenant and schedule; a failure is an *IncompleteListingError.
func list(ctx context.Context, store storage.Store, tenant, schedule string) ([]backup.Backup, error) {
	// backup.List reads an empty schedule as "every schedule", which would mix the backups of
	// several schedules into one decision; refuse it rather than prune across schedules.
	for kind, v := range map[string]string{"tenant": tenant, "schedule": schedule} {
		if err := backup.ValidateName(kind, v); err != nil {
			return nil, fmt.Errorf("plan pruning: %w", err)
		}
	}
	listed, err := backup.List(ctx, store, tenant, schedule)
	if err != nil {
		return nil, &IncompleteListingError{Tenant: tenant, Schedule: schedule, Err: err}
	}
	return listed, nil
}

// planListed decides what policy prunes of backups already listed for one tenant and schedule.
func planListed(tenant, schedule string, listed []backup.Backup, policy v1alpha1.RetentionPolicySpec, now time.Time, loc *time.Location) (Decision, error) {
	candidates := make([]Candidate, 0, len(listed))
	for _, b := range listed {
		if b.Tenant != tenant || b.Schedule != schedule {
			err := fmt.Errorf("backup %s belongs to tenant %s schedule %s", b.ID, b.Tenant, b.Schedule)
			return Decision{}, &IncompleteListingError{Tenant: tenant, Schedule: schedule, Err: err}
		}
		candidates = append(candidates, candidateOf(b))
	}
	d, err := Decide(policy, candidates, now, loc)
	if err != nil {
		return Decision{}, fmt.Errorf("plan pruning of tenant %s schedule %s: %w", tenant, schedule, err)
	}
	return d, nil
}

// candidateOf is how retention sees a listed backup. Every listed backup is complete (its manifest
// exists), hence successful. It counts as verified only when its latest verification succeeded
// and is about this backup: a failed drill does not protect a backup.
func candidateOf(b backup.Backup) Candidate {
	v := b.Verification
	return Candidate{ID: b.ID, Time: b.StartedAt, Verified: v != nil && v.OK && v.BackupID == b.ID}
}

// Prune applies policy to the backups of one tenant and schedule: it plans as Plan does and deletes
// what the plan prunes, oldest first, each with backup.Delete (manifest first, so an interruption
// leaves an orphan, never a manifest without data). It stops at the first failure. When the
// listing is incomplete it deletes nothing and returns an *IncompleteListingError.
func Prune(ctx context.Context, store storage.Store, tenant, schedule string, policy v1alpha1.RetentionPolicySpec, now time.Time, loc *time.Location) (Result, error) {
	listed, err := list(ctx, store, tenant, schedule)
	if err != nil {
		return Result{}, err
	}
	return PruneListed(ctx, store, tenant, schedule, listed, policy, now, loc)
}

// PruneListed is Prune for a caller that has just listed the schedule's backups with
// backup.List (the operator, which shows them in status too), so storage is listed once.
func PruneListed(ctx context.Context, store storage.Store, tenant, schedule string, listed []backup.Backup, policy v1alpha1.RetentionPolicySpec, now time.Time, loc *time.Location) (Result, error) {
	d, err := planListed(tenant, schedule, listed, policy, now, loc)
	if err != nil {
		return Result{}, err
	}
	r := Result{Decision: d}
	for _, c := range d.Prune {
		if err := backup.Delete(ctx, store, tenant, schedule, c.ID); err != nil {
			return r, fmt.Errorf("pruned %d of %d backups of tenant %s schedule %s, then: %w", len(r.Deleted), len(d.Prune), tenant, schedule, err)
		}
		r.Deleted = append(r.Deleted, c.ID)
	}
	return r, nil
}
