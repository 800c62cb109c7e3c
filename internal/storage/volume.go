package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Volume stores objects as files under a directory, typically a mounted PersistentVolume.
type Volume struct {
	root string
}

// A file being written is named ".<name>.partial-<random>" next to its final name, so that a
// listing can skip it and a later run can find what a killed process left behind.
const partialMarker = ".partial-"

// OpenVolume opens the store at root, which must exist: a missing directory usually means the volume
// is not mounted, and writing into the container's own file system instead would lose the backup.
func OpenVolume(root string) (*Volume, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, &UnreachableError{Location: "file://" + root, Err: fmt.Errorf("volume path does not exist or cannot be read (is the volume mounted?): %w", err)}
	}
	if !fi.IsDir() {
		return nil, &UnreachableError{Location: "file://" + root, Err: errors.New("volume path is not a directory")}
	}
	return &Volume{root: root}, nil
}

func (v *Volume) String() string { return "file://" + v.root }

func (v *Volume) path(key string) string { return filepath.Join(v.root, filepath.FromSlash(key)) }

// Put writes to a temporary file in the destination directory and renames it into place only after
// the data is synced, so the final name never holds a partial object, even across a crash.
func (v *Volume) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	dst := v.path(key)
	dir := filepath.Dir(dst)
	if err := v.mkdirDurable(dir); err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(dst)+partialMarker+"*")
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx: ctx, r: r})
	if err != nil {
		return n, fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return n, fmt.Errorf("put %s: close: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return n, fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return n, fmt.Errorf("put %s: %w", key, err)
	}
	committed = true
	// The rename is durable only once the directory is synced: a caller told the object is stored
	// (PostgreSQL told a WAL file is archived) must not lose it in a crash.
	if err := syncDir(dir); err != nil {
		return n, fmt.Errorf("put %s: %w", key, err)
	}
	return n, nil
}

// mkdirDurable creates dir and its missing parents, syncing each parent after it gains an entry,
// so that a new directory survives a crash with what is put in it.
func (v *Volume) mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	var missing []string
	for d := dir; d != v.root && d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, d := range missing {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func (v *Volume) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(v.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return f, nil
}

func (v *Volume) Stat(ctx context.Context, key string) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	fi, err := os.Stat(v.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return Object{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, fmt.Errorf("stat %s: %w", key, ErrNotFound)
	}
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (v *Volume) List(ctx context.Context, dir string) ([]Object, error) {
	var out []Object
	err := v.walk(ctx, dir, func(key string, fi fs.FileInfo) error {
		if !strings.Contains(filepath.Base(key), partialMarker) {
			out = append(out, Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (v *Volume) walk(ctx context.Context, dir string, fn func(key string, fi fs.FileInfo) error) error {
	if err := checkDir(dir); err != nil {
		return err
	}
	start := v.root
	if dir != "" {
		start = v.path(dir)
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(v.root, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), fi)
	})
	if errors.Is(err, fs.ErrNotExist) && dir != "" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", v.String(), err)
	}
	return nil
}

// Delete removes key and then the directories it leaves empty, so deleted backups leave no trace.
func (v *Volume) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	p := v.path(key)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	v.pruneEmptyDirs(filepath.Dir(p))
	return nil
}

func (v *Volume) pruneEmptyDirs(dir string) {
	for dir != v.root && strings.HasPrefix(dir, v.root+string(filepath.Separator)) {
		if os.Remove(dir) != nil { // fails when not empty, which is where we stop
			return
		}
		dir = filepath.Dir(dir)
	}
}

func (v *Volume) RemoveIncomplete(ctx context.Context, dir string, olderThan time.Time) ([]string, error) {
	var removed []string
	err := v.walk(ctx, dir, func(key string, fi fs.FileInfo) error {
		base := filepath.Base(key)
		i := strings.Index(base, partialMarker)
		if i < 1 || !fi.ModTime().Before(olderThan) {
			return nil
		}
		p := v.path(key)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// Report the key the write was meant for.
		removed = append(removed, filepath.ToSlash(filepath.Join(filepath.Dir(key), base[1:i])))
		v.pruneEmptyDirs(filepath.Dir(p))
		return nil
	})
	return removed, err
}

// ctxReader stops a copy when ctx is cancelled, so a cancelled backup does not finish its file.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
