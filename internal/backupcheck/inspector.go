// Package backupcheck is the operator's look into backup storage: it lists every tenant's backups
// and prunes them by retention, outside the reconcile loop, and judges what it found (Judge) into
// the Tenant's backup status and conditions.
//
// Listing storage is the slow part of checking backups: a bucket far away, or one that does not
// answer, takes seconds. So the reconciler never waits for it. It asks the Inspector what was last
// found (Observe), which also queues a new look when one is due; a worker per storage location
// looks, and Notify brings the tenant back to the reconciler when the look is done. One slow bucket
// delays only the tenants whose backups are in it.
//
// The Inspector is the only code in the manager that opens storage. It keeps, per tenant and
// schedule, what it judges (catalog.Entry: ids, times, sizes, verification), never the manifests'
// table lists, so its memory does not grow with a tenant's schema.
package backupcheck

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Defaults of Options.
const (
	DefaultInterval           = 5 * time.Minute
	DefaultTimeout            = 30 * time.Second
	DefaultWorkersPerLocation = 2
	DefaultVolumeRoot         = "/var/lib/tenantops/volumes"
)

// orphanAge is how old an unfinished write (a killed backup's data, an abandoned upload) must be
// before a look removes it.
const orphanAge = 24 * time.Hour

// Options configure an Inspector.
type Options struct {
	// Secrets reads the storage credentials Secrets in OperatorNamespace.
	Secrets           client.Reader
	OperatorNamespace string
	// VolumeRoot is where volume storage claims are mounted into the manager, one directory per
	// claim name.
	VolumeRoot string
	// Interval between two looks at a tenant's storage, besides after every finished backup job.
	Interval time.Duration
	// Timeout bounds one look at one schedule's storage, pruning included.
	Timeout time.Duration
	// WorkersPerLocation is how many looks at one storage location run at once.
	WorkersPerLocation int
	Clock              clock.Clock
	// Notify is called with a tenant's name when a look at one of its schedules is done.
	Notify func(tenant string)
}

// Request is what a look at a tenant's storage needs, as the reconciler observed it.
type Request struct {
	Tenant string
	// Location is the time zone retention cuts days in.
	Location  *time.Location
	Policy    *v1alpha1.BackupPolicy
	Retention *v1alpha1.RetentionPolicy
	// FinishedJobs are the names of the tenant's backup and verification Jobs that have
	// finished: a new one means new backups or verifications to look for.
	FinishedJobs map[string]bool
	// TenantUIDs are the Tenant objects whose backups are the tenant's (builders.TenantUIDs): a
	// deleted predecessor of the same name is another customer, whose backups are not listed.
	TenantUIDs []string
	// Key names what the Inspector keeps of this request between looks, and is what Notify is
	// called with; the tenant's name when empty. A deleted tenant's kept backups are looked at
	// under a key of their own (KeptKey), so that a new Tenant of the same name is not mixed up
	// with them.
	Key string
}

// KeptKey is the Inspector key of a kept-tenant record.
func KeptKey(record string) string { return keptKeyPrefix + record }

// KeptRecordOf returns the record a key names, if it is a kept tenant's.
func KeptRecordOf(key string) (string, bool) { return strings.CutPrefix(key, keptKeyPrefix) }

// keptKeyPrefix cannot start a Tenant's name, which is a DNS label.
const keptKeyPrefix = "kept:"

func (r Request) stateKey() string {
	if r.Key != "" {
		return r.Key
	}
	return r.Tenant
}

// Listing is what one look at one schedule's storage found.
type Listing struct {
	// At is when the look started.
	At time.Time
	// Err, when set, means the storage could not be listed (fully).
	Err error
	// Entries are the complete backups, newest first.
	Entries []catalog.Entry
	// LastSeen is the newest backup any look found, kept when storage lists none any more, so
	// that backups that disappear are Missing, not pending a first one.
	LastSeen *catalog.Entry
	// NextPrune are the ids retention prunes next; PruneErr is why pruning failed.
	NextPrune []string
	PruneErr  error
	// WAL is what the look found of the WAL archive, for a physical schedule only.
	WAL *WALListing
}

// Pruned is what one look deleted from one schedule's storage, by which RetentionPolicy.
type Pruned struct {
	Schedule, Policy string
	// IDs of the deleted backups, oldest first.
	IDs []string
}

// Inspection is the latest look at each schedule of a tenant.
type Inspection map[string]Listing

// Inspector looks into tenants' backup storage on a bounded set of workers; see the package doc.
type Inspector struct {
	opts   Options
	stores storeCache
	// openStore opens a schedule's storage: open, or a failing store in a test.
	openStore func(ctx context.Context, s v1alpha1.BackupStorage) (storage.Store, error)

	mu      sync.Mutex
	tenants map[string]*tenantState
	// locations each have their own queue and workers; started holds the context they run in
	// once Start was called.
	locations map[string]*locationQueue
	started   context.Context
	// erasures are the erasures asked for, by EraseRequest.key.
	erasures map[string]*erasureState
}

// tenantState is what the Inspector knows of one tenant between passes.
type tenantState struct {
	listings map[string]Listing
	// key identifies the policies of the last request; a change looks again at once.
	key          string
	lastQueued   time.Time
	finishedJobs map[string]bool
	// pending counts the schedules queued and not yet looked at.
	pending int
	request Request
	// pruned is what looks deleted since the reconciler last took it.
	pruned []Pruned
	// unrecorded are, per schedule, the records of prunings that could not be stored yet; each
	// look tries again (see record).
	unrecorded map[string][]catalog.PruneRecord
	// listed are, per schedule, the keys of the backups' manifests, verifications and
	// signatures that looks found (catalog.ListedKeys) and did not delete: what the next
	// listing is checked against (see checkListing).
	listed map[string]map[string]bool
}

// locationQueue is one storage location's queue of tenant schedules to look at.
type locationQueue struct {
	queue workqueue.TypedInterface[scheduleKey]
}

// scheduleKey names one schedule of one tenant.
type scheduleKey struct{ tenant, schedule string }

// New returns an Inspector; Start runs its workers.
func New(opts Options) *Inspector {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.WorkersPerLocation <= 0 {
		opts.WorkersPerLocation = DefaultWorkersPerLocation
	}
	if opts.VolumeRoot == "" {
		opts.VolumeRoot = DefaultVolumeRoot
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Notify == nil {
		opts.Notify = func(string) {}
	}
	i := &Inspector{opts: opts, tenants: map[string]*tenantState{}, locations: map[string]*locationQueue{}}
	i.openStore = i.open
	return i
}

// Interval is the time between two looks at a tenant's storage when nothing else asks for one.
func (i *Inspector) Interval() time.Duration { return i.opts.Interval }

// Observe returns the latest look at each schedule of the tenant (an empty Inspection until the
// first is done) and queues a new look when one is due: never looked, the policies changed, the
// interval passed, or a job finished since. It never waits for storage.
func (i *Inspector) Observe(req Request) Inspection {
	i.mu.Lock()
	defer i.mu.Unlock()
	st := i.tenants[req.stateKey()]
	if st == nil {
		st = &tenantState{listings: map[string]Listing{}, unrecorded: map[string][]catalog.PruneRecord{}, listed: map[string]map[string]bool{}}
		i.tenants[req.stateKey()] = st
	}
	key := policyKey(req.Policy, req.Retention) + "@" + strings.Join(req.TenantUIDs, ",")
	if st.pending == 0 && i.due(st, key, req.FinishedJobs) {
		st.key, st.finishedJobs, st.request = key, req.FinishedJobs, req
		st.lastQueued = i.opts.Clock.Now()
		for _, s := range req.Policy.Spec.Schedules {
			loc, err := locationKey(s.Storage)
			if err != nil {
				st.listings[s.Name] = Listing{At: st.lastQueued, Err: err}
				continue
			}
			st.pending++
			i.location(loc).queue.Add(scheduleKey{req.stateKey(), s.Name})
		}
	}
	out := make(Inspection, len(st.listings))
	for name, l := range st.listings {
		out[name] = l
	}
	return out
}

func (i *Inspector) due(st *tenantState, key string, finished map[string]bool) bool {
	if st.key != key || i.opts.Clock.Since(st.lastQueued) >= i.opts.Interval {
		return true
	}
	for name := range finished {
		if !st.finishedJobs[name] {
			return true
		}
	}
	return false
}

// TakePruned returns what was pruned from the tenant's storage since the last call, once, so that
// each deletion is told once.
func (i *Inspector) TakePruned(tenant string) []Pruned {
	i.mu.Lock()
	defer i.mu.Unlock()
	st := i.tenants[tenant]
	if st == nil {
		return nil
	}
	out := st.pruned
	st.pruned = nil
	return out
}

// NextLook is when the tenant's storage is next looked at unless something asks sooner.
func (i *Inspector) NextLook(tenant string) time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	if st := i.tenants[tenant]; st != nil {
		return st.lastQueued.Add(i.opts.Interval)
	}
	return i.opts.Clock.Now()
}

// Forget drops what is known of a tenant (deleted, or no longer backed up).
func (i *Inspector) Forget(tenant string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.tenants, tenant)
}

// location returns the queue of a storage location, starting its workers when the Inspector
// runs. Called with i.mu held.
func (i *Inspector) location(key string) *locationQueue {
	q := i.locations[key]
	if q == nil {
		q = &locationQueue{queue: workqueue.NewTyped[scheduleKey]()}
		i.locations[key] = q
		if i.started != nil {
			i.startWorkers(i.started, q)
		}
	}
	return q
}

// Start runs the workers until ctx ends. It needs the leader: looks prune.
func (i *Inspector) Start(ctx context.Context) error {
	i.mu.Lock()
	i.started = ctx
	for _, q := range i.locations {
		i.startWorkers(ctx, q)
	}
	i.mu.Unlock()
	<-ctx.Done()
	i.mu.Lock()
	for _, q := range i.locations {
		q.queue.ShutDown()
	}
	i.mu.Unlock()
	return nil
}

// NeedLeaderElection is true: only the leader prunes.
func (i *Inspector) NeedLeaderElection() bool { return true }

func (i *Inspector) startWorkers(ctx context.Context, q *locationQueue) {
	for range i.opts.WorkersPerLocation {
		go func() {
			for {
				k, shutdown := q.queue.Get()
				if shutdown {
					return
				}
				i.look(ctx, k)
				q.queue.Done(k)
			}
		}()
	}
}

// look lists one schedule of a tenant, prunes it, records what it found and tells the tenant.
func (i *Inspector) look(ctx context.Context, k scheduleKey) {
	i.mu.Lock()
	st := i.tenants[k.tenant]
	if st == nil { // forgotten meanwhile
		i.mu.Unlock()
		return
	}
	req := st.request
	previous := st.listings[k.schedule]
	unrecorded := st.unrecorded[k.schedule]
	known := st.listed[k.schedule]
	i.mu.Unlock()

	var listing Listing
	var pruned []string
	var run lookResult
	if spec, ok := scheduleOf(req.Policy, k.schedule); ok {
		ctx, cancel := context.WithTimeout(ctx, i.opts.Timeout)
		held := map[string]bool{}
		for _, r := range unrecorded {
			if r.Intent != "" {
				held[r.Intent] = true
			}
		}
		listing, run = i.lookAt(ctx, req, spec, known, held)
		if run.pruned != nil {
			unrecorded = append(unrecorded, *run.pruned)
			for _, b := range run.pruned.Pruned {
				pruned = append(pruned, b.ID)
			}
		}
		if run.store != nil && len(unrecorded) > 0 {
			unrecorded = i.record(ctx, run.store, req, spec.Name, unrecorded)
		}
		cancel()
	} else {
		listing = Listing{At: i.opts.Clock.Now(), Err: fmt.Errorf("schedule %s is not in BackupPolicy %s", k.schedule, req.Policy.Name)}
	}
	listing.LastSeen = previous.LastSeen
	if len(listing.Entries) > 0 {
		newest := listing.Entries[0]
		listing.LastSeen = &newest
	}

	i.mu.Lock()
	if st := i.tenants[k.tenant]; st != nil {
		st.listings[k.schedule] = listing
		st.pending--
		if len(pruned) > 0 {
			st.pruned = append(st.pruned, Pruned{Schedule: k.schedule, Policy: req.Retention.Name, IDs: pruned})
		}
		if len(unrecorded) > 0 {
			st.unrecorded[k.schedule] = unrecorded
		} else {
			delete(st.unrecorded, k.schedule)
		}
		if run.listed != nil {
			st.listed[k.schedule] = run.listed
		}
	}
	i.mu.Unlock()
	i.opts.Notify(k.tenant)
}

// lookResult is what a look did besides listing: the storage it opened, and the record of what
// it pruned, not stored yet.
type lookResult struct {
	store  storage.Store
	pruned *catalog.PruneRecord
	// listed is what the next look's listing is checked against; nil keeps the last.
	listed map[string]bool
}

// lookAt lists one schedule's storage and, with a RetentionPolicy, prunes it. It reads storage
// itself rather than trusting job status: a job that succeeded against the wrong bucket, or
// backups deleted by hand, show here. known is what earlier looks listed (nil before the first),
// which the listing is checked against before anything is judged or pruned by it. held are the
// intents of prunings whose record this Inspector holds, not stored yet.
func (i *Inspector) lookAt(ctx context.Context, req Request, spec v1alpha1.BackupSchedule, known, held map[string]bool) (listing Listing, run lookResult) {
	now := i.opts.Clock.Now()
	listing = Listing{At: now}
	trust, err := builders.SigningTrust(req.Policy)
	if err != nil {
		listing.Err = err
		return listing, run
	}
	store, err := i.openStore(ctx, spec.Storage)
	if err != nil {
		listing.Err = err
		return listing, run
	}
	run.store = store
	opts := []catalog.ListOption{catalog.WithTrust(trust)}
	if len(req.TenantUIDs) > 0 {
		opts = append(opts, catalog.WithTenantUIDs(req.TenantUIDs...))
	}
	prunes := req.Retention != nil && len(req.TenantUIDs) > 0
	previous := known
	var before map[string]bool
	if known == nil && prunes {
		// Nothing to check the first listing against: a listing of its own, made first, so that
		// a backup stored in between is in the one that is judged.
		objs, err := store.List(ctx, catalog.Dir(req.Tenant, spec.Name, ""))
		if err != nil {
			listing.Err = &catalog.IncompleteListingError{Tenant: req.Tenant, Schedule: spec.Name, Err: err}
			return listing, run
		}
		before = setOf(catalog.ListedKeys(objs))
		known = before
	}
	known = maps.Clone(known)
	if known == nil {
		known = map[string]bool{}
	}
	var keys []string
	listed, err := catalog.ListEntries(ctx, store, req.Tenant, spec.Name, append(opts, catalog.WithListedKeys(&keys))...)
	if err != nil {
		listing.Err = err
		return listing, run
	}
	// A backup seen for the first time may have its verification (or, under a policy that signs,
	// its signature) left out of every listing so far: judged unverified (unsigned), retention
	// could let it go. Those are asked for by key too, once per backup.
	for _, k := range slices.Concat(keys, slices.Collect(maps.Keys(known))) {
		if path.Base(k) != catalog.ManifestObject || previous[k] {
			continue
		}
		known[path.Join(path.Dir(k), catalog.VerificationObject)] = true
		if len(trust.Keys) > 0 {
			known[path.Join(path.Dir(k), catalog.SignatureObject)] = true
		}
	}
	gone, err := checkListing(ctx, store, req.Tenant, spec.Name, known, keys)
	if err != nil {
		// Judged, this listing could call a backup missing or stale that is there; pruned by,
		// it could delete what retention keeps. It is an error, and what it lacks is still
		// expected of the next.
		listing.Err = err
		run.listed = setOf(keys)
		for k := range known {
			if !gone[k] {
				run.listed[k] = true
			}
		}
		return listing, run
	}
	run.listed = setOf(keys)
	listing.Entries = listed
	// The first look prunes only when its two listings agree: one that lacked what the other
	// shows says the storage answers listings inconsistently (or a backup was stored in between),
	// and then both may lack the same backup. The next look has this one to go by.
	var disagree error
	for _, k := range keys {
		if before != nil && !before[k] {
			disagree = &catalog.IncompleteListingError{Tenant: req.Tenant, Schedule: spec.Name,
				Err: fmt.Errorf("a listing made just before left out %s; pruning waits for the next look", k)}
			break
		}
	}
	// Retention and the leftovers' age go by the storage's clock when ours is ahead of it.
	now = judgeAt(ctx, now, store)
	if spec.IsPhysical() {
		// The WAL is looked at after the backups, with the backups that survived pruning: the
		// archive keeps what they need. Only a complete, successful pruning lets WAL go.
		defer func() {
			listing.WAL = i.lookAtWAL(ctx, store, req, spec, listing.Entries, opts,
				listing.Err == nil && listing.PruneErr == nil && req.Retention != nil)
		}()
	}
	if req.Retention == nil {
		return listing, run
	}
	if len(req.TenantUIDs) == 0 {
		// Every pruning is recorded under the Tenant object's UID (catalog.PruneRecordsDir);
		// a pruning that cannot be recorded does not happen.
		listing.PruneErr = fmt.Errorf("nothing pruned: the UID of tenant %s is not known, so a pruning could not be recorded", req.Tenant)
		return listing, run
	}
	if disagree != nil {
		listing.PruneErr = disagree
		return listing, run
	}
	// A pruner stopped between its deletions and its record (a manager killed) left the
	// pruning's intent: its record comes first, before this pruning deletes what it names.
	completed, err := catalog.CompletePruneIntents(ctx, store, req.Tenant, req.TenantUIDs[0], spec.Name, held, i.opts.Clock.Now())
	if len(completed) > 0 {
		ctrl.LoggerFrom(ctx).Info("Recorded the backups an interrupted pruning deleted", "tenant", req.Tenant, "schedule", spec.Name, "records", completed)
	}
	if err != nil {
		listing.PruneErr = fmt.Errorf("nothing pruned: the record of an interrupted pruning could not be completed: %w", err)
		return listing, run
	}
	d, err := catalog.Decide(req.Tenant, spec.Name, catalog.Candidates(listed), req.Retention.Spec, now, req.Location)
	if err != nil {
		listing.PruneErr = err
		return listing, run
	}
	// The intent, written before the first deletion, is what tells a later look what this
	// pruning deleted should the manager stop before its record is stored. Without it (the
	// storage refuses the write) the pruning goes ahead: the backups are promised to go, and the
	// record is held until it can be stored.
	intent := ""
	if len(d.Prune) > 0 {
		all := catalog.PruneResult{Decision: d}
		for _, c := range d.Prune {
			all.Deleted = append(all.Deleted, c.ID)
		}
		if intent, err = catalog.WritePruneIntent(ctx, store, *i.pruneRecord(req, spec.Name, all, now)); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Record the intent of a pruning; pruning without it", "tenant", req.Tenant, "schedule", spec.Name)
		}
	}
	res, err := catalog.PruneDecided(ctx, store, req.Tenant, spec.Name, d)
	for _, c := range res.Next {
		listing.NextPrune = append(listing.NextPrune, c.ID)
	}
	for _, id := range res.Deleted {
		dir := catalog.Dir(req.Tenant, spec.Name, id) + "/"
		for k := range run.listed {
			if strings.HasPrefix(k, dir) {
				delete(run.listed, k)
			}
		}
	}
	run.pruned = i.pruneRecord(req, spec.Name, res, now)
	switch {
	case run.pruned != nil:
		run.pruned.Intent = intent
	case intent != "":
		// Nothing deleted: nothing to record. An intent left behind is removed by the next look.
		if derr := store.Delete(ctx, intent); derr != nil {
			ctrl.LoggerFrom(ctx).Error(derr, "Remove the intent of a pruning that deleted nothing", "tenant", req.Tenant, "schedule", spec.Name)
		}
	}
	if err != nil {
		listing.PruneErr = err
		ctrl.LoggerFrom(ctx).Error(err, "Prune backups", "tenant", req.Tenant, "schedule", spec.Name)
		// A delete that failed halfway may have removed a manifest: list again for the truth.
		listing.Entries, listing.Err = catalog.ListEntries(ctx, store, req.Tenant, spec.Name, opts...)
		return listing, run
	}
	// Backup jobs with a writer's credential cannot clean up after a killed run; the pruner can.
	// A day is far longer than any run, so nothing still being written is taken.
	removed, err := catalog.DeleteOrphans(ctx, store, req.Tenant, spec.Name, now.Add(-orphanAge))
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Remove unfinished backups", "tenant", req.Tenant, "schedule", spec.Name)
	}
	if len(removed) > 0 {
		ctrl.LoggerFrom(ctx).Info("Removed unfinished backups", "tenant", req.Tenant, "schedule", spec.Name, "objects", removed)
	}
	deleted := map[string]bool{}
	for _, id := range res.Deleted {
		deleted[id] = true
	}
	listing.Entries = listing.Entries[:0:0]
	for _, e := range listed {
		if !deleted[e.ID] {
			listing.Entries = append(listing.Entries, e)
		}
	}
	return listing, run
}

// clockTolerance is how far the manager's clock may run ahead of the storage's before retention
// goes by the storage's: more than the second of a Date header and a slow answer's latency.
const clockTolerance = time.Minute

// storageClock is a store that can tell how far its clock is from the manager's (S3, by the Date
// of its answers).
type storageClock interface {
	ClockOffset() (time.Duration, bool)
}

// judgeAt is the time a look prunes at: now by the manager's clock, or the storage's time when the
// storage's clock is behind by more than clockTolerance. The backups' times are the agent's and
// the storage's; a manager whose clock runs hours ahead would otherwise see every backup hours
// older than it is, and maxAge would prune it hours early (and a leftover go before it is a day
// old). A manager whose clock is behind prunes late, which loses nothing, so the earlier of the
// two clocks is taken: neither one running ahead prunes early.
func judgeAt(ctx context.Context, now time.Time, store storage.Store) time.Time {
	c, ok := store.(storageClock)
	if !ok {
		return now
	}
	offset, ok := c.ClockOffset()
	if !ok || offset >= -clockTolerance {
		return now
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Storage clock behind ours; pruning by the storage's", "storage", store.String(), "behind", -offset)
	return now.Add(offset)
}

// checkListing checks a listing's keys (catalog.ListedKeys) against those earlier listings found
// and this look has not deleted (known). A storage may answer a listing with part of what it holds
// and say it is complete; retention over part of the backups can prune one it keeps over all of
// them (the newest hidden, older ones count towards minKeep), and a hidden manifest makes its
// backup look missing. So each key missing from the listing is asked about by key: gone (deleted
// by hand, or by another pruner) is fine and returned in gone; still stored, or not answered, makes
// the listing incomplete, an *catalog.IncompleteListingError. A key the storage never listed to
// this manager cannot be checked: a storage that hides a backup from the first listing onwards
// goes unnoticed.
func checkListing(ctx context.Context, store storage.Store, tenant, schedule string, known map[string]bool, keys []string) (gone map[string]bool, err error) {
	have := setOf(keys)
	var missing []string
	for k := range known {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	// Manifests first: a backup deleted by hand takes its verification and signature with it.
	slices.SortFunc(missing, func(a, b string) int {
		am, bm := path.Base(a) == catalog.ManifestObject, path.Base(b) == catalog.ManifestObject
		if am != bm {
			if am {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	gone = map[string]bool{}
	for _, k := range missing {
		if gone[path.Join(path.Dir(k), catalog.ManifestObject)] {
			gone[k] = true
			continue
		}
		_, err := store.Stat(ctx, k)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			gone[k] = true
		case err != nil:
			return gone, &catalog.IncompleteListingError{Tenant: tenant, Schedule: schedule,
				Err: fmt.Errorf("%s, listed before, is missing from the listing, and asking for it failed: %w", k, err)}
		default:
			return gone, &catalog.IncompleteListingError{Tenant: tenant, Schedule: schedule,
				Err: fmt.Errorf("the storage left %s out of its listing, though it holds it", k)}
		}
	}
	return gone, nil
}

func setOf(keys []string) map[string]bool {
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[k] = true
	}
	return out
}

// pruneRecord is the record of a pruning run that deleted something: exactly the backups it
// deleted, each with why the rules let it go; nil when it deleted nothing.
func (i *Inspector) pruneRecord(req Request, schedule string, res catalog.PruneResult, decidedAt time.Time) *catalog.PruneRecord {
	if len(res.Deleted) == 0 {
		return nil
	}
	taken := make(map[string]time.Time, len(res.Prune))
	for _, c := range res.Prune {
		taken[c.ID] = c.Time
	}
	r := &catalog.PruneRecord{Tenant: req.Tenant, TenantUID: req.TenantUIDs[0], Schedule: schedule,
		RetentionPolicy: req.Retention.Name, RetentionPolicyGeneration: req.Retention.Generation, Rules: req.Retention.Spec,
		TimeZone: req.Location.String(), DecidedAt: decidedAt.UTC(), PrunedAt: i.opts.Clock.Now().UTC(), Due: len(res.Prune)}
	for _, id := range res.Deleted {
		r.Pruned = append(r.Pruned, catalog.PrunedBackup{ID: id, StartedAt: taken[id].UTC(), Why: res.Why[id]})
	}
	return r
}

// record stores the records of prunings, oldest first, and returns those it could not store,
// which the next look of the schedule tries again: the backups are gone whether or not their
// record could be written (the customer is promised they go), so the record is kept until it
// can be. A restart before then leaves the pruning's intent, from which the next look completes
// the record (catalog.CompletePruneIntents); only a pruning whose intent could not be stored
// either loses its record, and the log says what it held. Once a record is stored, the records
// of the schedule that have outlived catalog.RecordsKeptUntil go.
func (i *Inspector) record(ctx context.Context, store storage.Store, req Request, schedule string, records []catalog.PruneRecord) []catalog.PruneRecord {
	log := ctrl.LoggerFrom(ctx).WithValues("tenant", req.Tenant, "schedule", schedule)
	var left []catalog.PruneRecord
	stored := false
	for _, r := range records {
		key, err := catalog.WritePruneRecord(ctx, store, r)
		if err != nil {
			ids := make([]string, len(r.Pruned))
			for j, b := range r.Pruned {
				ids[j] = b.ID
			}
			log.Error(err, "Record pruned backups; trying again at the next look", "pruned", ids, "prunedAt", r.PrunedAt)
			left = append(left, r)
			continue
		}
		log.V(1).Info("Recorded pruned backups", "record", key)
		stored = true
	}
	if stored && req.Retention != nil {
		for _, uid := range req.TenantUIDs {
			if _, err := catalog.ExpireRecords(ctx, store, req.Tenant, uid, schedule, req.Retention.Spec, i.opts.Clock.Now()); err != nil {
				log.Error(err, "Remove expired prune and restore records")
			}
		}
	}
	return left
}

func scheduleOf(p *v1alpha1.BackupPolicy, name string) (v1alpha1.BackupSchedule, bool) {
	for _, s := range p.Spec.Schedules {
		if s.Name == name {
			return s, true
		}
	}
	return v1alpha1.BackupSchedule{}, false
}

// policyKey identifies the policies a look is made under.
func policyKey(policy *v1alpha1.BackupPolicy, retention *v1alpha1.RetentionPolicy) string {
	key := policy.Name + "/" + policy.ResourceVersion
	if retention != nil {
		key += "+" + retention.Name + "/" + retention.ResourceVersion
	}
	return key
}
