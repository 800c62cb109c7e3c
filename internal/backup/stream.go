package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ChecksumMismatchError means the stored object is not the one the manifest describes.
type ChecksumMismatchError struct {
	Got, Want         string
	GotSize, WantSize int64
}

func (e *ChecksumMismatchError) Error() string {
	msg := fmt.Sprintf("checksum mismatch: stored object sha256 %s, manifest says %s", e.Got, e.Want)
	if e.GotSize != e.WantSize {
		msg += fmt.Sprintf(" (%d bytes stored, manifest says %d)", e.GotSize, e.WantSize)
	}
	return msg
}

// WrongIdentityError means none of the given identities can decrypt the backup.
type WrongIdentityError struct {
	Have []string // fingerprints of the identities given
	Want []string // the backup's recipients
	// DataKeyID is the tenant data key the backup is encrypted to, when it is: then no identity
	// was one the key was wrapped to either.
	DataKeyID string
}

func (e *WrongIdentityError) Error() string {
	if e.DataKeyID != "" {
		return fmt.Sprintf("wrong identity: the backup is encrypted to tenant data key %s, and no identity given is one of the platform identities that key was wrapped to", e.DataKeyID)
	}
	return "wrong identity: no identity matches the backup's recipients"
}

// verifyingReader passes the stored object through while hashing it, and holds back its very last
// byte until the whole object has been read and matches the manifest's size and sha256. Whatever
// consumes the stream therefore never sees the complete object unless it is the right one: age
// cannot authenticate its final chunk, so pg_restore cannot finish and commit, when the object was
// swapped, truncated or extended.
type verifyingReader struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	wantSize int64
	wantSum  string
	done     bool
	err      error
}

func newVerifyingReader(r io.Reader, size int64, sum string) *verifyingReader {
	return &verifyingReader{r: r, h: sha256.New(), wantSize: size, wantSum: sum}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if v.n < v.wantSize-1 {
		if rest := v.wantSize - 1 - v.n; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := v.r.Read(p)
		v.h.Write(p[:n])
		v.n += int64(n)
		if errors.Is(err, io.EOF) {
			v.err = v.mismatch() // shorter than the manifest says
			return n, v.err
		}
		if err != nil {
			v.err = err
		}
		return n, err
	}
	// The last byte, if the object ends where the manifest says.
	var last [1]byte
	n, err := io.ReadFull(v.r, last[:])
	v.h.Write(last[:n])
	v.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		v.err = err
		return 0, err
	}
	// Anything after it is a mismatch too; read it all so the message can give the real checksum.
	extra, err := io.Copy(v.h, v.r)
	v.n += extra
	if err != nil {
		v.err = err
		return 0, err
	}
	if e := v.mismatch(); e != nil {
		v.err = e
		return 0, e
	}
	v.done = true
	p[0] = last[0]
	return 1, nil
}

// mismatch returns nil when what was read is exactly the manifest's object.
func (v *verifyingReader) mismatch() error {
	got := hex.EncodeToString(v.h.Sum(nil))
	if v.n == v.wantSize && got == v.wantSum {
		return nil
	}
	return &ChecksumMismatchError{Got: got, Want: v.wantSum, GotSize: v.n, WantSize: v.wantSize}
}

// drain reads the rest of the object so that a failure further down the stream (a corrupt chunk
// that age rejects) can be reported as what it is, a checksum mismatch. It returns nil when the
// object turns out to match.
func (v *verifyingReader) drain() error {
	_, err := io.Copy(io.Discard, v)
	return err
}

// countingWriter counts and hashes what passes through to w.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	c.n += int64(n)
	return n, err
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
