package backupcheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// locationKey names the storage location a schedule writes to; schedules of many tenants share
// it, and so share its queue.
func locationKey(s v1alpha1.BackupStorage) (string, error) {
	if s.Volume != nil {
		return "volume:" + s.Volume.ClaimName, nil
	}
	return builders.StorageLocation(s)
}

// storeCache keeps one open store per location and credentials, so a look reuses the S3 client's
// connections and does not check the bucket again.
type storeCache struct {
	mu     sync.Mutex
	stores map[string]storage.Store
}

// open opens a schedule's storage with the policy's credentials from the operator's namespace. A
// volume is read where it is mounted into the manager, under Options.VolumeRoot.
func (i *Inspector) open(ctx context.Context, s v1alpha1.BackupStorage) (storage.Store, error) {
	switch {
	case s.S3 != nil:
		// Through the agent's own LOCATION and its parser, so the operator reads exactly where
		// the jobs write, with the same defaults and checks.
		location, err := builders.StorageLocation(s)
		if err != nil {
			return nil, err
		}
		loc, err := storage.ParseLocation(location)
		if err != nil {
			return nil, err
		}
		// The pruner's credential: it may list and delete, and write nothing but its prune
		// records (.prunes/), so the operator cannot be made to forge a backup.
		secret := &corev1.Secret{}
		name := s.S3.PrunerSecretName()
		if err := i.opts.Secrets.Get(ctx, types.NamespacedName{Namespace: i.opts.OperatorNamespace, Name: name}, secret); err != nil {
			return nil, fmt.Errorf("get storage credentials %s: %w", name, err)
		}
		key := location + "@" + name + "/" + secret.ResourceVersion
		if store := i.stores.get(key); store != nil {
			return store, nil
		}
		store, err := storage.OpenS3(ctx, loc, storage.Credentials{
			AccessKeyID:     string(secret.Data["AWS_ACCESS_KEY_ID"]),
			SecretAccessKey: string(secret.Data["AWS_SECRET_ACCESS_KEY"]),
		})
		if err != nil {
			return nil, err
		}
		i.stores.put(location+"@"+name+"/", key, store)
		return store, nil
	case s.Volume != nil:
		dir := filepath.Join(i.opts.VolumeRoot, s.Volume.ClaimName)
		if _, err := os.Stat(dir); err != nil {
			return nil, &storage.UnreachableError{Location: "volume " + s.Volume.ClaimName,
				Err: fmt.Errorf("claim %s is not mounted into the operator at %s, so its backups cannot be checked", s.Volume.ClaimName, dir)}
		}
		return storage.OpenVolume(dir)
	}
	return nil, errors.New("storage names neither s3 nor volume")
}

func (c *storeCache) get(key string) storage.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[key]
}

// put keeps store under key, dropping stores of the same location opened with an older version
// of the credentials.
func (c *storeCache) put(prefix, key string, store storage.Store) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stores == nil {
		c.stores = map[string]storage.Store{}
	}
	for k := range c.stores {
		if strings.HasPrefix(k, prefix) {
			delete(c.stores, k)
		}
	}
	c.stores[key] = store
}
