package backup

import (
	"context"
	"errors"
	"fmt"

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// identitiesFor returns the identities that decrypt a backup, failing before any download when
// none will. An identity among the backup's recipients decrypts it directly (a backup made before
// per-tenant keys, or a tenant key given by hand). Otherwise a backup encrypted to a tenant data
// key is opened through the key's escrow copy in the same storage, unwrapped with the platform
// identities: restore and verify take the same identity file as before per-tenant keys.
func identitiesFor(ctx context.Context, store storage.Store, m catalog.Manifest, ids []age.Identity) ([]age.Identity, error) {
	direct := checkIdentities(m, ids)
	if direct == nil || m.DataKeyID == "" {
		return ids, direct
	}
	wrapped, err := catalog.ReadDataKey(ctx, store, m)
	if err != nil {
		return nil, err
	}
	key, err := datakey.Unwrap(wrapped, m.DataKeyID, ids)
	if errors.Is(err, datakey.ErrNoPlatformIdentity) {
		return nil, &WrongIdentityError{Have: direct.(*WrongIdentityError).Have, Want: m.Recipients, DataKeyID: m.DataKeyID}
	}
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", m.ID, err)
	}
	return []age.Identity{key}, nil
}
