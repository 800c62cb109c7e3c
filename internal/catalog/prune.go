package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/retention"
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

// PruneResult is what one pruning run decided and did.
type PruneResult struct {
	retention.Decision
	// Deleted holds the ids removed, oldest first. When the run failed partway, it holds those
	// removed before the failure, and the one whose deletion failed after its manifest went (an
	// *UnfinishedDeleteError: it is no longer a backup); the rest of Decision.Prune is still there.
	Deleted []string
}

// Plan lists the backups of one tenant and schedule and decides what policy prunes at now, with
// days cut in loc (UTC when nil). It deletes nothing. A listing that fails is an
// *IncompleteListingError. With WithTrust, backups whose signature does not check are left out of
// the decision (see Candidates).
func Plan(ctx context.Context, store storage.Store, tenant, schedule string, policy v1alpha1.RetentionPolicySpec, now time.Time, loc *time.Location, opts ...ListOption) (retention.Decision, error) {
	listed, err := listSchedule(ctx, store, tenant, schedule, opts)
	if err != nil {
		return retention.Decision{}, err
	}
	return Decide(tenant, schedule, Candidates(listed), policy, now, loc)
}

// Prune applies policy to the backups of one tenant and schedule: it plans as Plan does and deletes
// what the plan prunes (see PruneDecided). When the listing is incomplete it deletes nothing and
// returns an *IncompleteListingError.
func Prune(ctx context.Context, store storage.Store, tenant, schedule string, policy v1alpha1.RetentionPolicySpec, now time.Time, loc *time.Location, opts ...ListOption) (PruneResult, error) {
	d, err := Plan(ctx, store, tenant, schedule, policy, now, loc, opts...)
	if err != nil {
		return PruneResult{}, err
	}
	return PruneDecided(ctx, store, tenant, schedule, d)
}

// PruneDecided deletes what a decision prunes, oldest first, each with Delete (manifest first, so
// an interruption leaves an orphan, never a manifest without data). It stops at the first failure.
// It is Prune for a caller that has just listed the schedule and decided (the operator, which
// shows the listing in status too), so storage is listed once.
func PruneDecided(ctx context.Context, store storage.Store, tenant, schedule string, d retention.Decision) (PruneResult, error) {
	r := PruneResult{Decision: d}
	for _, c := range d.Prune {
		if err := Delete(ctx, store, tenant, schedule, c.ID); err != nil {
			done := len(r.Deleted)
			var unfinished *UnfinishedDeleteError
			if errors.As(err, &unfinished) {
				// Gone as a backup: the record of this run must name it, or nothing ever will.
				r.Deleted = append(r.Deleted, c.ID)
			}
			return r, fmt.Errorf("pruned %d of %d backups of tenant %s schedule %s, then: %w", done, len(d.Prune), tenant, schedule, err)
		}
		r.Deleted = append(r.Deleted, c.ID)
	}
	return r, nil
}

// Decide is retention.Decide over one schedule's candidates, refusing candidates of another tenant
// or schedule: a listing that mixes them cannot be judged and prunes nothing.
func Decide(tenant, schedule string, candidates []Candidate, policy v1alpha1.RetentionPolicySpec, now time.Time, loc *time.Location) (retention.Decision, error) {
	plain := make([]retention.Candidate, 0, len(candidates))
	for _, c := range candidates {
		if c.Tenant != tenant || c.Schedule != schedule {
			err := fmt.Errorf("backup %s belongs to tenant %s schedule %s", c.ID, c.Tenant, c.Schedule)
			return retention.Decision{}, &IncompleteListingError{Tenant: tenant, Schedule: schedule, Err: err}
		}
		plain = append(plain, c.Candidate)
	}
	d, err := retention.Decide(policy, plain, now, loc)
	if err != nil {
		return retention.Decision{}, fmt.Errorf("plan pruning of tenant %s schedule %s: %w", tenant, schedule, err)
	}
	return d, nil
}

// Candidate is how retention sees a listed backup, with where it was found.
type Candidate struct {
	retention.Candidate
	Tenant, Schedule string
}

// Candidates are the listed backups as retention sees them. Every listed backup is complete (its
// manifest exists), hence successful. It counts as verified only when its latest verification
// succeeded and is about this backup: a failed drill does not protect a backup.
//
// A backup whose signature does not check (Entry.Signature not Trusted) is left out: it is
// neither kept nor pruned. Counted, a few forged backups newer than the real ones would take the
// places retention keeps and push the real ones out to be deleted; pruned, a real backup whose
// key was wrongly dropped from the trust would be lost. It stays until a person looks.
func Candidates(listed []Entry) []Candidate {
	out := make([]Candidate, 0, len(listed))
	for _, e := range listed {
		if !e.Signature.Trusted() {
			continue
		}
		v := e.Verification
		c := Candidate{
			Candidate: retention.Candidate{ID: e.ID, Time: e.StartedAt, Verified: v != nil && v.OK && v.BackupID == e.ID},
			Tenant:    e.Tenant, Schedule: e.Schedule,
		}
		if e.Physical != nil {
			c.Needs = e.Physical.Parent // an incremental backup keeps its chain
		}
		out = append(out, c)
	}
	return out
}

// listSchedule lists the backups of one tenant and schedule; a failure is an
// *IncompleteListingError.
func listSchedule(ctx context.Context, store storage.Store, tenant, schedule string, opts []ListOption) ([]Entry, error) {
	// List reads an empty schedule as "every schedule", which would mix the backups of several
	// schedules into one decision; refuse it rather than prune across schedules.
	for kind, v := range map[string]string{"tenant": tenant, "schedule": schedule} {
		if err := ValidateName(kind, v); err != nil {
			return nil, fmt.Errorf("plan pruning: %w", err)
		}
	}
	listed, err := ListEntries(ctx, store, tenant, schedule, opts...)
	if err != nil {
		return nil, &IncompleteListingError{Tenant: tenant, Schedule: schedule, Err: err}
	}
	return listed, nil
}
