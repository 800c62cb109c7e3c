package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// keysDir holds a tenant's wrapped data keys. It cannot be a schedule's directory: ValidateName
// refuses names that start with a dot.
const keysDir = ".keys"

// dataKeySuffix ends every escrow object's name.
const dataKeySuffix = ".age"

// DataKeyObject is where the escrow copy of a tenant's data key is stored in a location.
func DataKeyObject(tenant, tenantUID, keyID string) (string, error) {
	if err := ValidateName("tenant", tenant); err != nil {
		return "", err
	}
	if err := ValidateName("tenant UID", tenantUID); err != nil {
		return "", err
	}
	if !datakey.ValidID(keyID) {
		return "", fmt.Errorf("invalid data key ID %q", keyID)
	}
	return storage.Join(tenant, keysDir, tenantUID, keyID+dataKeySuffix), nil
}

func dataKeysDir(tenant, tenantUID string) (string, error) {
	if err := ValidateName("tenant", tenant); err != nil {
		return "", err
	}
	if err := ValidateName("tenant UID", tenantUID); err != nil {
		return "", err
	}
	return storage.Join(tenant, keysDir, tenantUID), nil
}

// WriteDataKey stores the escrow copy of a tenant's data key. The backup agent writes it before
// each backup, so every location that holds a backup holds the key that opens it; the content is
// the same each time, since a new key has a new ID.
func WriteDataKey(ctx context.Context, store storage.Store, tenant, tenantUID string, key datakey.Key) error {
	if key.ID != datakey.ID(key.Recipient) {
		return fmt.Errorf("data key %s does not match its recipient", key.ID)
	}
	name, err := DataKeyObject(tenant, tenantUID, key.ID)
	if err != nil {
		return err
	}
	if _, err := store.Put(ctx, name, bytes.NewReader(key.Wrapped)); err != nil {
		return fmt.Errorf("store data key %s: %w", key.ID, err)
	}
	return nil
}

// DataKeyDestroyedError means a backup's data key is in none of the places it was kept: it was
// destroyed (the tenant was erased), or this location never held it. Nobody can decrypt the
// backup.
type DataKeyDestroyedError struct {
	Tenant, TenantUID, KeyID, BackupID string
}

func (e *DataKeyDestroyedError) Error() string {
	return fmt.Sprintf("backup %s of tenant %s cannot be decrypted by anyone: its data key %s is destroyed (the tenant's data was erased) or missing from this storage", e.BackupID, e.Tenant, e.KeyID)
}

// ReadDataKey reads the escrow copy of the data key a backup names.
func ReadDataKey(ctx context.Context, store storage.Store, m Manifest) ([]byte, error) {
	name, err := DataKeyObject(m.Tenant, m.TenantUID, m.DataKeyID)
	if err != nil {
		return nil, err
	}
	data, err := readSmall(ctx, store, name, maxMetadataSize)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &DataKeyDestroyedError{Tenant: m.Tenant, TenantUID: m.TenantUID, KeyID: m.DataKeyID, BackupID: m.ID}
	}
	if err != nil {
		return nil, fmt.Errorf("read data key %s: %w", m.DataKeyID, err)
	}
	return data, nil
}

// ListDataKeys returns the IDs of the data keys a location holds for one Tenant object.
func ListDataKeys(ctx context.Context, store storage.Store, tenant, tenantUID string) ([]string, error) {
	dir, err := dataKeysDir(tenant, tenantUID)
	if err != nil {
		return nil, err
	}
	objs, err := store.List(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("list data keys of tenant %s: %w", tenant, err)
	}
	var ids []string
	for _, o := range objs {
		if id, ok := strings.CutSuffix(path.Base(o.Key), dataKeySuffix); ok && datakey.ValidID(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
