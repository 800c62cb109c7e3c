package backup

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// ForgetOptions for one erasure request.
type ForgetOptions struct {
	// Stores are every storage location of the tenant's schedules: each gets the ledger entry.
	Stores    []storage.Store
	Tenant    string
	TenantUID string
	// DataKey is the tenant's data key, which the entry is sealed to; its wrapped copy is stored
	// beside it (as a backup does), so that every location holding the entry holds its key.
	DataKey datakey.Key
	// DSN connects as the application's role.
	DSN string
	// Function is the schema-qualified function to call with the subject (catalog.ValidFunction).
	Function string
	Subject  string
	// Request names the ErasureRequest: NAME/UID.
	Request string
	// SigningKey signs the entry; nil leaves it unsigned.
	SigningKey ed25519.PrivateKey
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	Log io.Writer
}

// ForgetResult is what an erasure request did.
type ForgetResult struct {
	Entry catalog.LedgerEntry
	// Keys are the ledger entry's object in each location, in the order of Stores.
	Keys []string
}

// Forget carries out an erasure request: it calls the application's function with the subject as
// a bound parameter, in a transaction of its own, as the role the DSN names; once that committed,
// it appends the request to the tenant's ledger in every location, so that every later restore of
// an earlier backup replays it. A failure after the commit says so: the erasure stands in the live
// database, but a restore could undo it until a retry (the function must be idempotent) records it.
func Forget(ctx context.Context, o ForgetOptions) (ForgetResult, error) {
	var res ForgetResult
	sql, err := callSQL(o.Function)
	if err != nil {
		return res, err
	}
	if err := catalog.ValidSubject(o.Subject); err != nil {
		return res, err
	}
	name, uid, ok := strings.Cut(o.Request, "/")
	if !ok || name == "" || catalog.ValidateName("request UID", uid) != nil {
		return res, fmt.Errorf("invalid request %q: want NAME/UID", o.Request)
	}
	if err := catalog.ValidateName("tenant UID", o.TenantUID); err != nil {
		return res, err
	}
	if o.DataKey.ID != datakey.ID(o.DataKey.Recipient) {
		return res, errors.New("the data key does not match its recipient")
	}
	if len(o.Stores) == 0 {
		return res, errors.New("no storage: pass --storage for every location of the tenant's schedules")
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	ci, err := parseConnInfo(o.DSN)
	if err != nil {
		return res, err
	}
	conn, err := ci.connect(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("begin: %s", ci.scrub(err.Error()))
	}
	if _, err := tx.Exec(ctx, sql, o.Subject); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return res, fmt.Errorf("erasure request %s: %s failed, nothing was erased: %s", o.Request, o.Function, ci.scrub(err.Error()))
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("erasure request %s: commit: %s", o.Request, ci.scrub(err.Error()))
	}
	at := now().UTC()
	logf(o.Log, "forget %s: %s committed at %s", o.Request, o.Function, at.Format(time.RFC3339Nano))
	res.Entry = catalog.LedgerEntry{Time: at, Request: o.Request, Function: o.Function, Subject: o.Subject, TenantUID: o.TenantUID}
	sealed, err := sealLedgerEntry(res.Entry, o.DataKey.Recipient)
	if err != nil {
		return res, err
	}
	h := catalog.LedgerHeader{Tenant: o.Tenant, TenantUID: o.TenantUID, RequestUID: uid, Time: at, DataKeyID: o.DataKey.ID, Sealed: sealed}
	for _, store := range o.Stores {
		if err := catalog.WriteDataKey(ctx, store, o.Tenant, o.TenantUID, o.DataKey); err != nil {
			return res, notRecorded(o.Request, store, err)
		}
		key, err := catalog.WriteLedgerEntry(ctx, store, h, o.SigningKey)
		if err != nil {
			return res, notRecorded(o.Request, store, err)
		}
		logf(o.Log, "forget %s: ledger entry %s in %s", o.Request, key, store)
		res.Keys = append(res.Keys, key)
	}
	return res, nil
}

func notRecorded(request string, store storage.Store, err error) error {
	return fmt.Errorf("erasure request %s was carried out in the live database but is not recorded in the ledger of %s, so a restore there could undo it; run it again (%w)", request, store, err)
}
