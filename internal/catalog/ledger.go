package catalog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// The erasure ledger is how an erasure request survives a restore. Every request the agent's
// forget command carries out against the live database is appended to the tenant's ledger in
// every storage location, one object per request, and every restore replays the requests made
// after its backup was taken before it reports success.
//
// An entry is one JSON object, written once and never replaced:
//
//	{"entry": {...LedgerHeader...}, "signature": {...Signature...}}
//
// The header names the tenant, its UID, the request's UID, the time and the data key the request
// is sealed to; the request itself (function and subject) is only in Sealed, age-encrypted to the
// tenant's data key, so crypto-erasure of the tenant makes the ledger unreadable with its
// backups. The signature is the policy's signing key's over the exact bytes of "entry", as for
// manifests: someone who can write the bucket can delete entries (a restore then replays fewer,
// which the header count in verify shows), but cannot add or change one.

// ledgerDir holds a tenant's ledger. Like keysDir it cannot be a schedule's directory.
const ledgerDir = ".ledger"

// ledgerSuffix ends every ledger entry's object name.
const ledgerSuffix = ".json"

// ledgerSigned is what a ledger entry's signature says it signs.
const ledgerSigned = "ledger-entry"

// LedgerFormatVersion is the format of ledger entries this agent writes and reads.
const LedgerFormatVersion = 1

// maxLedgerObject bounds what is read of one entry: a subject of at most MaxLedgerSubject bytes,
// sealed and base64-encoded, is far below it.
const maxLedgerObject = 64 << 10

// MaxLedgerSubject is the longest subject an entry holds, in bytes.
const MaxLedgerSubject = 1024

// ledgerTimeLayout names an entry by its time: fixed width, so that names sort as times do.
const ledgerTimeLayout = "2006-01-02T15:04:05.000000000Z"

// LedgerEntry is one erasure request, as the replay needs it and no more. It is stored only
// sealed (age, to the tenant's data key).
type LedgerEntry struct {
	// Time is when the request was carried out against the live database (after it committed).
	Time time.Time `json:"time"`
	// Request names the ErasureRequest: NAME/UID.
	Request string `json:"request"`
	// Function is the schema-qualified function called with the subject (ValidFunction).
	Function string `json:"function"`
	// Subject is the data subject's id, the function's one argument.
	Subject   string `json:"subject"`
	TenantUID string `json:"tenantUID"`
}

// LedgerHeader is the signed part of a ledger entry: what can be read without the tenant's key,
// and the sealed entry.
type LedgerHeader struct {
	FormatVersion int       `json:"formatVersion"`
	Tenant        string    `json:"tenant"`
	TenantUID     string    `json:"tenantUID"`
	RequestUID    string    `json:"requestUID"`
	Time          time.Time `json:"time"`
	// DataKeyID names the tenant data key Sealed is encrypted to; its escrow copy is beside the
	// backups (DataKeyObject).
	DataKeyID string `json:"dataKeyID"`
	// Sealed is the LedgerEntry's JSON, age-encrypted to the data key.
	Sealed []byte `json:"sealed"`
	// Key is where the entry was found (not stored).
	Key string `json:"-"`
}

type ledgerObject struct {
	Entry     json.RawMessage `json:"entry"`
	Signature json.RawMessage `json:"signature,omitempty"`
}

var functionRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$`)

// ValidFunction checks the function an erasure request calls: schema-qualified (so that the live
// database and a restored one resolve it alike, whatever the search_path), lowercase letters,
// digits and '_' in each part, so that quoting each part names the same function PostgreSQL would
// find unquoted.
func ValidFunction(fn string) error {
	if !functionRE.MatchString(fn) {
		return fmt.Errorf("invalid function %q: want schema.name, each part lowercase letters, digits and '_', not starting with a digit, at most 63 characters", fn)
	}
	return nil
}

// ValidSubject checks a data subject's id: not empty, UTF-8 without control characters, at most
// MaxLedgerSubject bytes.
func ValidSubject(s string) error {
	switch {
	case s == "":
		return errors.New("the subject is empty")
	case len(s) > MaxLedgerSubject:
		return fmt.Errorf("the subject is %d bytes, more than %d", len(s), MaxLedgerSubject)
	case !utf8.ValidString(s) || strings.IndexFunc(s, isControl) >= 0:
		return errors.New("the subject must be UTF-8 text without control characters")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// LedgerDir is the directory of one Tenant object's ledger.
func LedgerDir(tenant, tenantUID string) (string, error) {
	if err := ValidateName("tenant", tenant); err != nil {
		return "", err
	}
	if err := ValidateName("tenant UID", tenantUID); err != nil {
		return "", err
	}
	return storage.Join(tenant, ledgerDir, tenantUID), nil
}

// LedgerObject is where an entry is stored: its time first, so that a listing is in time order.
func LedgerObject(tenant, tenantUID string, at time.Time, requestUID string) (string, error) {
	dir, err := LedgerDir(tenant, tenantUID)
	if err != nil {
		return "", err
	}
	if err := ValidateName("request UID", requestUID); err != nil {
		return "", err
	}
	return storage.Join(dir, at.UTC().Format(ledgerTimeLayout)+"-"+requestUID+ledgerSuffix), nil
}

// WriteLedgerEntry appends an entry to a location's ledger, signed with key (unsigned when nil),
// and returns its object's key. An entry of the same request already there is kept, and its key
// returned: a retried request appends nothing twice, and nothing is ever overwritten.
func WriteLedgerEntry(ctx context.Context, store storage.Store, h LedgerHeader, key ed25519.PrivateKey) (string, error) {
	h.FormatVersion = LedgerFormatVersion
	if !datakey.ValidID(h.DataKeyID) {
		return "", fmt.Errorf("invalid data key ID %q", h.DataKeyID)
	}
	name, err := LedgerObject(h.Tenant, h.TenantUID, h.Time, h.RequestUID)
	if err != nil {
		return "", err
	}
	dir := path.Dir(name)
	objs, err := store.List(ctx, dir)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("list ledger of tenant %s: %w", h.Tenant, err)
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, "-"+h.RequestUID+ledgerSuffix) {
			return o.Key, nil
		}
	}
	entry, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	obj := ledgerObject{Entry: entry}
	if key != nil {
		if obj.Signature, err = sign(entry, ledgerSigned, key); err != nil {
			return "", err
		}
	}
	// Compact, not indented like other metadata: the entry's bytes as stored must be the bytes
	// signed, and indenting the whole object would reformat them.
	data, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	data = append(data, '\n')
	if _, err := store.Put(ctx, name, bytes.NewReader(data)); err != nil {
		return "", fmt.Errorf("store ledger entry: %w", err)
	}
	return name, nil
}

// LedgerError means a ledger could not be read whole: an entry is unreadable, unsigned, or its
// signature does not check. A restore that goes on without it might bring back data that was
// erased on request.
type LedgerError struct {
	Tenant string
	// Entries is how many entries the ledger lists (all of them count: an entry that cannot be
	// read cannot tell its time).
	Entries int
	Err     error
}

func (e *LedgerError) Error() string {
	return fmt.Sprintf("the erasure ledger of tenant %s cannot be read (%v): %d erasure requests might be undone by this restore; fix the ledger, or pass --ignore-ledger to restore without replaying them",
		e.Tenant, e.Err, e.Entries)
}

func (e *LedgerError) Unwrap() error { return e.Err }

// ReadLedger reads and checks every entry of one Tenant object's ledger in a location, oldest
// first. Any entry that cannot be read or whose signature does not check against trust fails the
// whole read with a *LedgerError: a ledger read in part would silently undo erasures.
func ReadLedger(ctx context.Context, store storage.Store, tenant, tenantUID string, trust Trust) ([]LedgerHeader, error) {
	dir, err := LedgerDir(tenant, tenantUID)
	if err != nil {
		return nil, err
	}
	objs, err := store.List(ctx, dir)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, &LedgerError{Tenant: tenant, Err: fmt.Errorf("list: %w", err)}
	}
	var out []LedgerHeader
	for _, o := range objs {
		h, err := readLedgerEntry(ctx, store, o.Key, tenant, tenantUID, trust)
		if err != nil {
			return nil, &LedgerError{Tenant: tenant, Entries: len(objs), Err: err}
		}
		out = append(out, h)
	}
	slices.SortStableFunc(out, func(a, b LedgerHeader) int { return a.Time.Compare(b.Time) })
	return out, nil
}

func readLedgerEntry(ctx context.Context, store storage.Store, key, tenant, tenantUID string, trust Trust) (LedgerHeader, error) {
	var h LedgerHeader
	data, err := readSmall(ctx, store, key, maxLedgerObject)
	if err != nil {
		return h, fmt.Errorf("read %s: %w", key, err)
	}
	var obj ledgerObject
	if err := json.Unmarshal(data, &obj); err != nil || len(obj.Entry) == 0 {
		return h, fmt.Errorf("entry %s is not a ledger entry", path.Base(key))
	}
	var sig []byte
	if len(obj.Signature) > 0 {
		sig = obj.Signature
	}
	if status, reason := trust.checkSigned(ledgerSigned, obj.Entry, sig); !status.Trusted() {
		return h, fmt.Errorf("entry %s is refused: %s", path.Base(key), reason)
	}
	if err := json.Unmarshal(obj.Entry, &h); err != nil {
		return h, fmt.Errorf("entry %s: %w", path.Base(key), err)
	}
	if h.FormatVersion != LedgerFormatVersion {
		return h, fmt.Errorf("entry %s has format version %d; this agent knows %d", path.Base(key), h.FormatVersion, LedgerFormatVersion)
	}
	// The name is not signed, the header is: an entry copied under another name or tenant is
	// not the entry it pretends to be.
	want, err := LedgerObject(h.Tenant, h.TenantUID, h.Time, h.RequestUID)
	if err != nil || h.Tenant != tenant || h.TenantUID != tenantUID || !strings.HasSuffix(key, want) || !datakey.ValidID(h.DataKeyID) {
		return h, fmt.Errorf("entry %s does not belong where it is stored", path.Base(key))
	}
	h.Key = key
	return h, nil
}

// CountLedger counts the objects in one Tenant object's ledger without reading them.
func CountLedger(ctx context.Context, store storage.Store, tenant, tenantUID string) (int, error) {
	dir, err := LedgerDir(tenant, tenantUID)
	if err != nil {
		return 0, err
	}
	objs, err := store.List(ctx, dir)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("list ledger of tenant %s: %w", tenant, err)
	}
	return len(objs), nil
}

// LedgerTenantUIDs lists the Tenant objects that have a ledger under tenant in a location.
func LedgerTenantUIDs(ctx context.Context, store storage.Store, tenant string) ([]string, error) {
	if err := ValidateName("tenant", tenant); err != nil {
		return nil, err
	}
	prefix := storage.Join(tenant, ledgerDir)
	objs, err := store.List(ctx, prefix)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("list ledger of tenant %s: %w", tenant, err)
	}
	var uids []string
	for _, o := range objs {
		uid, _, ok := strings.Cut(strings.TrimPrefix(o.Key, prefix+"/"), "/")
		if ok && !slices.Contains(uids, uid) {
			uids = append(uids, uid)
		}
	}
	return uids, nil
}

// DeleteLedger deletes one Tenant object's ledger in a location and returns how many entries it
// held.
func DeleteLedger(ctx context.Context, store storage.Store, tenant, tenantUID string) (int, error) {
	dir, err := LedgerDir(tenant, tenantUID)
	if err != nil {
		return 0, err
	}
	objs, err := store.List(ctx, dir)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("list ledger of tenant %s: %w", tenant, err)
	}
	for i, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			return i, fmt.Errorf("delete ledger entry %s: %w", path.Base(o.Key), err)
		}
	}
	return len(objs), nil
}
