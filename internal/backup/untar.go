package backup

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// untar writes pg_basebackup's tar of a data directory into dir, which exists and is empty. It
// takes only what such a tar holds, directories and regular files at relative paths inside dir,
// and refuses anything else (links, devices, a path that climbs out), whoever wrote the archive.
func untar(r io.Reader, dir string) (files int, bytes int64, err error) {
	tr := tar.NewReader(r)
	buf := bufio.NewWriterSize(nil, 1<<20)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, bytes, nil
		}
		if err != nil {
			return files, bytes, fmt.Errorf("read the base backup's tar: %w", err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || name == "." {
			return files, bytes, fmt.Errorf("the base backup's tar holds %q, outside the data directory", h.Name)
		}
		target := filepath.Join(dir, name)
		mode := os.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return files, bytes, fmt.Errorf("restore %s: %w", name, err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return files, bytes, fmt.Errorf("restore %s: %w", name, err)
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o600)
			if err != nil {
				return files, bytes, fmt.Errorf("restore %s: %w", name, err)
			}
			buf.Reset(f)
			n, err := io.Copy(buf, tr)
			if err == nil {
				err = buf.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return files, bytes, fmt.Errorf("restore %s: %w", name, err)
			}
			files++
			bytes += n
		default:
			// pg_basebackup -D - refuses clusters with tablespaces, so its tar has no links.
			return files, bytes, fmt.Errorf("the base backup's tar holds %q of type %q, which a data directory's tar does not", h.Name, h.Typeflag)
		}
	}
}

// emptyDir makes dir, or accepts it when it exists and is empty; the data directory of a
// restore must hold nothing else.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("make the data directory: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("data directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("data directory %s is not empty; restore into a new or empty directory", dir)
	}
	return os.Chmod(dir, 0o700)
}
