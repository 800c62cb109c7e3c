package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/tenantops/tenant-operator/internal/storage"
)

// Backup is a complete backup as found in storage: its manifest and, when it has been verified, the
// latest verification.
type Backup struct {
	Manifest
	Verification *Verification `json:"verification,omitempty"`
	// Signature is what checking the manifest's signature found; SignatureUnchecked when the
	// backup was read without a Trust.
	Signature SignatureStatus `json:"signature,omitempty"`
}

// NotFoundError means no complete backup has the requested id (or, for "latest", none exists).
type NotFoundError struct {
	Tenant, Schedule, ID string
}

func (e *NotFoundError) Error() string {
	if e.ID == Latest {
		return fmt.Sprintf("no backups found for tenant %s schedule %s", e.Tenant, e.Schedule)
	}
	return fmt.Sprintf("backup %q not found for tenant %s schedule %s", e.ID, e.Tenant, e.Schedule)
}

// Latest selects the newest backup where an id is expected.
const Latest = "latest"

// maxMetadataSize bounds what we read of a manifest or verification, which are small; a huge one
// is corrupt and must not make the agent's memory grow.
const maxMetadataSize = 16 << 20

// ListOption changes what List and ListEntries do.
type ListOption func(*listOptions)

type listOptions struct {
	trust *Trust
	// owners, when set, are the tenant UIDs whose backups are listed; see WithTenantUIDs.
	owners map[string]bool
	// tolerant visits a manifest that cannot be read with no data instead of failing the walk
	// (erasure: a corrupt or oversized manifest must not keep a tenant's data from being erased).
	tolerant bool
	// listed, when set, receives the keys the walk's listing found (WithListedKeys).
	listed *[]string
}

// WithListedKeys stores in *keys the keys of the manifests, verifications and signatures of the
// backups the listing found (ListedKeys of it), whoever's backups they are. A storage that lists
// only part of what it holds and says the listing is complete cannot be caught by one listing;
// the operator compares these keys with those of its next listing (see backupcheck).
func WithListedKeys(keys *[]string) ListOption {
	return func(o *listOptions) { o.listed = keys }
}

// ListedKeys picks, from a listing of a tenant's schedule, what a backup is judged by: the keys
// of every manifest, and of the verifications and signatures beside a listed manifest. Data
// objects and the leftovers of unfinished backups are left out.
func ListedKeys(objs []storage.Object) []string {
	hasManifest := map[string]bool{}
	for _, o := range objs {
		if path.Base(o.Key) == ManifestObject && strings.Count(o.Key, "/") == 3 {
			hasManifest[path.Dir(o.Key)] = true
		}
	}
	var keys []string
	for _, o := range objs {
		switch path.Base(o.Key) {
		case ManifestObject, VerificationObject, SignatureObject:
			if strings.Count(o.Key, "/") == 3 && hasManifest[path.Dir(o.Key)] {
				keys = append(keys, o.Key)
			}
		}
	}
	return keys
}

// WithTenantUIDs lists only the backups made for these Tenant objects (Manifest.TenantUID): the
// current Tenant and those whose data it adopted. A Tenant deleted and created again under the
// same name is another customer: its predecessor's backups are not its own to count, prune or
// restore. Backups that recorded no UID (made before it was recorded) are listed for everyone.
func WithTenantUIDs(uids ...string) ListOption {
	return func(o *listOptions) {
		o.owners = map[string]bool{}
		for _, uid := range uids {
			o.owners[uid] = true
		}
	}
}

// owns says whether a backup made for tenantUID belongs to the listing.
func (o listOptions) owns(tenantUID string) bool {
	return o.owners == nil || tenantUID == "" || o.owners[tenantUID]
}

// WithTrust checks every listed backup's signature against trust and reports the outcome in the
// Signature field. Without it nothing is checked and every backup is SignatureUnchecked.
func WithTrust(trust Trust) ListOption {
	return func(o *listOptions) { o.trust = &trust }
}

// List returns the complete backups of a tenant and schedule, newest first. An empty schedule lists
// all schedules of the tenant, an empty tenant all tenants; then the order is by tenant, schedule,
// and newest first within each. Writes without a manifest (running, failed or killed backups) are
// not backups and are not listed.
func List(ctx context.Context, store storage.Store, tenant, schedule string, opts ...ListOption) ([]Backup, error) {
	var out []Backup
	o := listOpts(opts)
	err := walk(ctx, store, tenant, schedule, o, func(dir string, data []byte, v *Verification, sig SignatureStatus) error {
		m, err := DecodeManifest(data)
		if err != nil {
			return fmt.Errorf("manifest of %s: %w", dir, err)
		}
		if o.owns(m.TenantUID) {
			out = append(out, Backup{Manifest: m, Verification: v, Signature: sig})
		}
		return checkDir(dir, m)
	})
	if err != nil {
		return nil, err
	}
	sortNewestFirst(out, func(b Backup) Entry {
		return Entry{ID: b.ID, Tenant: b.Tenant, Schedule: b.Schedule, StartedAt: b.StartedAt}
	})
	return out, nil
}

// Entry is what the operator keeps of a listed backup: enough to judge freshness, verification
// and retention. It holds the number of tables, never the manifest's table list, whose length the
// tenant controls: a hundred thousand tables must not become a hundred thousand rows in the
// operator's memory.
type Entry struct {
	ID, Tenant, Schedule  string
	StartedAt, FinishedAt time.Time
	// Size is the stored object's size.
	Size int64
	// Tables is how many tables the dump holds.
	Tables int
	// Verification is the latest verification, if any.
	Verification *Verification
	// Signature is what checking the manifest's signature found (with WithTrust). A backup whose
	// status is not Trusted was made or changed by someone without the signing key: it must not
	// count as fresh or verified, nor take a place that retention keeps (Candidates leaves it out).
	Signature SignatureStatus
	// Method is MethodLogical or MethodPhysical.
	Method string
	// Physical is a physical backup's LSNs, timeline and parent; nil for a logical one.
	Physical *PhysicalInfo
}

// ListEntries is List for the operator: each manifest is read, checked and reduced to an Entry
// before the next one is read, so memory is bounded by the number of backups, not by what
// their manifests list.
func ListEntries(ctx context.Context, store storage.Store, tenant, schedule string, opts ...ListOption) ([]Entry, error) {
	var out []Entry
	o := listOpts(opts)
	err := walk(ctx, store, tenant, schedule, o, func(dir string, data []byte, v *Verification, sig SignatureStatus) error {
		var lean struct {
			Manifest
			// Shadows Manifest.Tables: decoded into zero-size elements, it is counted, not held.
			Tables []struct{} `json:"tables"`
		}
		if err := json.Unmarshal(data, &lean); err != nil {
			return fmt.Errorf("manifest of %s is not valid JSON: %w", dir, err)
		}
		if err := lean.Manifest.check(); err != nil {
			return fmt.Errorf("manifest of %s: %w", dir, err)
		}
		m := lean.Manifest
		if o.owns(m.TenantUID) {
			out = append(out, Entry{ID: m.ID, Tenant: m.Tenant, Schedule: m.Schedule, StartedAt: m.StartedAt, FinishedAt: m.FinishedAt,
				Size: m.Object.Size, Tables: len(lean.Tables), Verification: v, Signature: sig, Method: m.MethodOf(), Physical: m.Physical})
		}
		return checkDir(dir, m)
	})
	if err != nil {
		return nil, err
	}
	sortNewestFirst(out, func(e Entry) Entry { return e })
	return out, nil
}

func listOpts(opts []ListOption) listOptions {
	var o listOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// walk hands every complete backup under tenant and schedule to visit: its directory, its
// manifest's bytes, its verification when it has one, and, with a trust, what its signature
// check found.
func walk(ctx context.Context, store storage.Store, tenant, schedule string, o listOptions, visit func(dir string, manifest []byte, v *Verification, sig SignatureStatus) error) error {
	if tenant == "" && schedule != "" {
		return errors.New("a schedule needs a tenant")
	}
	dir := ""
	if tenant != "" {
		if err := ValidateName("tenant", tenant); err != nil {
			return err
		}
		if schedule != "" {
			if err := ValidateName("schedule", schedule); err != nil {
				return err
			}
		}
		dir = Dir(tenant, schedule, "")
	}
	objs, err := store.List(ctx, dir)
	if err != nil {
		return fmt.Errorf("list backups: %w", err)
	}
	if o.listed != nil {
		*o.listed = ListedKeys(objs)
	}
	verified, signed := map[string]bool{}, map[string]bool{}
	for _, obj := range objs {
		switch path.Base(obj.Key) {
		case VerificationObject:
			verified[path.Dir(obj.Key)] = true
		case SignatureObject:
			signed[path.Dir(obj.Key)] = true
		}
	}
	for _, obj := range objs {
		if path.Base(obj.Key) != ManifestObject || strings.Count(obj.Key, "/") != 3 {
			continue
		}
		d := path.Dir(obj.Key)
		data, err := readSmall(ctx, store, obj.Key, maxMetadataSize)
		if err != nil && o.tolerant && ctx.Err() == nil {
			if err := visit(d, nil, nil, SignatureUnchecked); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("read manifest of %s: %w", d, err)
		}
		var v *Verification
		if verified[d] && !o.tolerant {
			if v, err = readVerification(ctx, store, d); err != nil {
				return err
			}
		}
		sig := SignatureUnchecked
		if o.trust != nil {
			var sigData []byte
			if signed[d] {
				if sigData, err = readSignature(ctx, store, d); err != nil {
					return err
				}
			}
			sig, _ = o.trust.check(data, sigData)
		}
		if err := visit(d, data, v, sig); err != nil {
			return err
		}
	}
	return nil
}

func sortNewestFirst[T any](bs []T, key func(T) Entry) {
	sort.SliceStable(bs, func(i, j int) bool {
		a, b := key(bs[i]), key(bs[j])
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Schedule != b.Schedule {
			return a.Schedule < b.Schedule
		}
		if !a.StartedAt.Equal(b.StartedAt) {
			return a.StartedAt.After(b.StartedAt)
		}
		return a.ID > b.ID
	})
}

// Get returns one backup by id, or the newest with Latest. A missing backup is a *NotFoundError.
func Get(ctx context.Context, store storage.Store, tenant, schedule, id string, opts ...ListOption) (Backup, error) {
	for kind, v := range map[string]string{"tenant": tenant, "schedule": schedule} {
		if err := ValidateName(kind, v); err != nil {
			return Backup{}, err
		}
	}
	if id == Latest {
		all, err := List(ctx, store, tenant, schedule, opts...)
		if err != nil {
			return Backup{}, err
		}
		if len(all) == 0 {
			return Backup{}, &NotFoundError{Tenant: tenant, Schedule: schedule, ID: id}
		}
		return all[0], nil
	}
	if err := ValidateName("backup id", id); err != nil {
		return Backup{}, err
	}
	b, err := load(ctx, store, Dir(tenant, schedule, id), true)
	if errors.Is(err, storage.ErrNotFound) {
		return Backup{}, &NotFoundError{Tenant: tenant, Schedule: schedule, ID: id}
	}
	if err == nil && !listOpts(opts).owns(b.TenantUID) {
		return Backup{}, fmt.Errorf("backup %s of tenant %s schedule %s was made for another Tenant of that name (uid %s), not this one", id, tenant, schedule, b.TenantUID)
	}
	return b, err
}

func load(ctx context.Context, store storage.Store, dir string, withVerification bool) (Backup, error) {
	data, err := readSmall(ctx, store, storage.Join(dir, ManifestObject), maxMetadataSize)
	if err != nil {
		return Backup{}, fmt.Errorf("read manifest of %s: %w", dir, err)
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return Backup{}, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	if err := checkDir(dir, m); err != nil {
		return Backup{}, err
	}
	b := Backup{Manifest: m}
	if withVerification {
		if b.Verification, err = readVerification(ctx, store, dir); err != nil {
			return Backup{}, err
		}
	}
	return b, nil
}

// checkDir refuses a manifest found elsewhere than where it says its backup is.
func checkDir(dir string, m Manifest) error {
	if Dir(m.Tenant, m.Schedule, m.ID) != dir {
		return fmt.Errorf("manifest of %s names backup %s/%s/%s; it was moved or tampered with", dir, m.Tenant, m.Schedule, m.ID)
	}
	return nil
}

// readVerification reads a backup's verification; nil when it has none.
func readVerification(ctx context.Context, store storage.Store, dir string) (*Verification, error) {
	data, err := readSmall(ctx, store, storage.Join(dir, VerificationObject), maxMetadataSize)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read verification of %s: %w", dir, err)
	}
	var v Verification
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("verification of %s is not valid JSON: %w", dir, err)
	}
	return &v, nil
}

func readSmall(ctx context.Context, store storage.Store, key string, limit int64) ([]byte, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return data, nil
}

// WriteManifest stores a backup's manifest unsigned, which makes it a backup: write it only once
// the data object is stored whole. Restore and verify refuse unsigned backups unless told to
// accept them; the agent writes WriteSignedManifest when it has a signing key.
func WriteManifest(ctx context.Context, store storage.Store, m Manifest) error {
	return putJSON(ctx, store, storage.Join(Dir(m.Tenant, m.Schedule, m.ID), ManifestObject), m)
}

// WriteVerification stores the outcome of a verification next to the backup's manifest.
func WriteVerification(ctx context.Context, store storage.Store, tenant, schedule string, v Verification) error {
	return putJSON(ctx, store, storage.Join(Dir(tenant, schedule, v.BackupID), VerificationObject), v)
}

func putJSON(ctx context.Context, store storage.Store, key string, v any) error {
	data, err := encodeJSON(v)
	if err != nil {
		return err
	}
	_, err = store.Put(ctx, key, bytes.NewReader(data))
	return err
}

// encodeJSON is how metadata objects are stored: indented for people, with a final newline.
func encodeJSON(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Delete removes one backup. The manifest goes first, so that a deletion interrupted halfway leaves
// data without a manifest — not a backup, and removed by DeleteOrphans — never a manifest whose
// data is gone. A failure after the manifest went is an *UnfinishedDeleteError.
func Delete(ctx context.Context, store storage.Store, tenant, schedule, id string) error {
	for kind, v := range map[string]string{"tenant": tenant, "schedule": schedule, "backup id": id} {
		if err := ValidateName(kind, v); err != nil {
			return err
		}
	}
	dir := Dir(tenant, schedule, id)
	if err := store.Delete(ctx, storage.Join(dir, ManifestObject)); err != nil {
		return fmt.Errorf("delete backup %s: %w", dir, err)
	}
	objs, err := store.List(ctx, dir)
	if err != nil {
		return &UnfinishedDeleteError{Dir: dir, Err: err}
	}
	for _, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			return &UnfinishedDeleteError{Dir: dir, Err: err}
		}
	}
	return nil
}

// UnfinishedDeleteError means a backup's manifest was deleted and some of its other objects were
// not. It is no longer a backup (nothing lists or restores it); what is left of it is an orphan,
// which DeleteOrphans removes.
type UnfinishedDeleteError struct {
	Dir string
	Err error
}

func (e *UnfinishedDeleteError) Error() string {
	return fmt.Sprintf("delete backup %s: its manifest is deleted, the rest is left for the cleanup of orphans: %v", e.Dir, e.Err)
}

func (e *UnfinishedDeleteError) Unwrap() error { return e.Err }

// DeleteOrphans cleans up after backups that never completed, under one tenant and schedule:
// objects in backup directories without a manifest, and unfinished uploads, when they are older
// than olderThan. The age threshold keeps a backup that is still running safe: its upload is young.
// It returns the keys removed.
func DeleteOrphans(ctx context.Context, store storage.Store, tenant, schedule string, olderThan time.Time) ([]string, error) {
	for kind, v := range map[string]string{"tenant": tenant, "schedule": schedule} {
		if err := ValidateName(kind, v); err != nil {
			return nil, err
		}
	}
	dir := Dir(tenant, schedule, "")
	removed, err := store.RemoveIncomplete(ctx, dir, olderThan)
	if err != nil {
		return removed, fmt.Errorf("remove unfinished uploads under %s: %w", dir, err)
	}
	objs, err := store.List(ctx, dir)
	if err != nil {
		return removed, fmt.Errorf("list %s: %w", dir, err)
	}
	hasManifest := map[string]bool{}
	for _, o := range objs {
		if path.Base(o.Key) == ManifestObject {
			hasManifest[path.Dir(o.Key)] = true
		}
	}
	// A directory whose manifest the listing lacks is asked about its manifest once more, by key:
	// a storage that lists only part of what it holds (a faulty gateway, a listing that lags the
	// writes) must not have a complete backup's data deleted as a leftover.
	noManifest := map[string]bool{}
	for _, o := range objs {
		// Only what lies in a backup's directory: a schedule named like ExportsDir's last part
		// shares its directory with the tenant's exports, which are not backups.
		if strings.Count(o.Key, "/") != 3 || hasManifest[path.Dir(o.Key)] || !o.ModTime.Before(olderThan) {
			continue
		}
		d := path.Dir(o.Key)
		orphan, checked := noManifest[d]
		if !checked {
			_, err := store.Stat(ctx, storage.Join(d, ManifestObject))
			switch {
			case errors.Is(err, storage.ErrNotFound):
				orphan = true
			case err != nil:
				return removed, fmt.Errorf("check the manifest of %s: %w", d, err)
			}
			noManifest[d] = orphan
		}
		if !orphan {
			continue
		}
		if err := store.Delete(ctx, o.Key); err != nil {
			return removed, fmt.Errorf("delete orphan %s: %w", o.Key, err)
		}
		removed = append(removed, o.Key)
	}
	return removed, nil
}
