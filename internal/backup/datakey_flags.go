package backup

import (
	"github.com/tenantops/tenant-operator/internal/datakey"
)

// encryptionKeys are the age recipients an object is encrypted to: the tenant's data key only
// when there is one (its wrapped copy, stored beside the backups, is what the platform identity
// opens), else the recipients given.
func encryptionKeys(recipients []string, key *datakey.Key, tenantUID string) ([]string, error) {
	if key == nil {
		return recipients, nil
	}
	if len(recipients) > 0 {
		return nil, usageError("a tenant data key is the only recipient: no --recipient with --data-key")
	}
	if tenantUID == "" {
		return nil, usageError("--data-key needs --tenant-uid: the key is stored under the Tenant object it belongs to")
	}
	return []string{key.Recipient}, nil
}

// readDataKeyFlag reads --data-key's directory, as the operator mounts the tenant's key Secret.
func readDataKeyFlag(dir string) (*datakey.Key, error) {
	if dir == "" {
		return nil, nil
	}
	key, err := datakey.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return &key, nil
}
