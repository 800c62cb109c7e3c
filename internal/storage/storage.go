// Package storage is where backups live: one small interface with an S3-compatible implementation
// and a mounted-volume implementation, chosen by a LOCATION string.
//
// Keys are slash-separated and relative to the location's prefix (or directory), so callers never
// see the bucket or the mount point. An object is visible under its key only once it was written
// completely: the S3 store aborts its multipart upload and the volume store removes its temporary
// file when the input fails, so a reader never sees half an object.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Store is a flat namespace of immutable objects.
type Store interface {
	// Put streams r into key and returns the number of bytes stored. The object appears only when r
	// reaches io.EOF without error and ctx is still live; on any failure nothing is left under key
	// (a replaced object keeps its old content).
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens key for reading. A missing key is ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes key. A missing key is ErrNotFound.
	Stat(ctx context.Context, key string) (Object, error)
	// List returns every complete object whose key is under dir ("" for all), in key order.
	List(ctx context.Context, dir string) ([]Object, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// RemoveIncomplete discards writes under dir that were started before olderThan and never
	// finished (multipart uploads of a killed process, temporary files), returning their keys.
	RemoveIncomplete(ctx context.Context, dir string, olderThan time.Time) ([]string, error)
	// String names the location for messages; it never contains credentials.
	String() string
}

// Object describes one stored object.
type Object struct {
	Key     string    `json:"key"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
}

// ErrNotFound is returned (wrapped) for a key that does not exist.
var ErrNotFound = errors.New("not found")

// ErrAccessDenied is returned (wrapped) when the storage refuses a request to the credential it was
// given. With credentials split by purpose (a backup writer may put but not list or delete) this is
// an expected answer for some operations, which callers tell apart from failures with errors.Is.
var ErrAccessDenied = errors.New("access denied")

// UnreachableError means the storage could not be talked to at all (connection refused, DNS, a
// volume that is not mounted), as opposed to an answer that something is missing or forbidden.
type UnreachableError struct {
	Location string
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("storage unreachable: %s: %v", e.Location, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Join builds a key from parts; it exists so that every caller agrees on the separator.
func Join(parts ...string) string { return path.Join(parts...) }

// Open returns the store that location names; see ParseLocation for the syntax. The options apply
// to S3 locations only. Opening checks that
// the storage answers, so a wrong endpoint fails here with an UnreachableError rather than halfway
// through a backup.
func Open(ctx context.Context, location string, s3opts ...S3Option) (Store, error) {
	loc, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case SchemeS3:
		return OpenS3(ctx, loc, CredentialsFromEnv(), s3opts...)
	case SchemeFile:
		return OpenVolume(loc.Path)
	}
	return nil, fmt.Errorf("unsupported storage scheme %q", loc.Scheme)
}

// checkKey rejects keys that would escape the store's root or address a directory.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || path.Clean(key) != key || key == ".." || strings.HasPrefix(key, "../") {
		return fmt.Errorf("invalid storage key %q", key)
	}
	return nil
}

func checkDir(dir string) error {
	if dir == "" {
		return nil
	}
	return checkKey(dir)
}
