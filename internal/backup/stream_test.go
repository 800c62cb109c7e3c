package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestVerifyingReader(t *testing.T) {
	data := make([]byte, 100_000)
	_, _ = rand.Read(data)
	flipped := bytes.Clone(data)
	flipped[500] ^= 1

	tests := []struct {
		name       string
		stored     []byte
		wantOK     bool
		wantPrefix int // bytes handed on before the failure, at most
	}{
		{"intact", data, true, len(data)},
		{"one flipped byte", flipped, false, len(data) - 1},
		{"truncated", data[:len(data)-10], false, len(data) - 10},
		{"extended", append(bytes.Clone(data), 'x'), false, len(data) - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// OneByteReader and small reads exercise the boundary handling.
			v := newVerifyingReader(iotest.HalfReader(bytes.NewReader(tt.stored)), int64(len(data)), sum(data))
			got, err := io.ReadAll(v)
			if tt.wantOK {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("intact object: %d bytes, %v", len(got), err)
				}
				return
			}
			var mismatch *ChecksumMismatchError
			if !errors.As(err, &mismatch) {
				t.Fatalf("err = %v, want a checksum mismatch", err)
			}
			if mismatch.Want != sum(data) || mismatch.Got != sum(tt.stored) || mismatch.GotSize != int64(len(tt.stored)) {
				t.Fatalf("mismatch = %+v", mismatch)
			}
			// The whole object is never handed on: the consumer cannot finish with it.
			if len(got) > tt.wantPrefix || len(got) == len(data) {
				t.Fatalf("handed on %d bytes of a bad object", len(got))
			}
			if !strings.HasPrefix(err.Error(), "checksum mismatch: stored object sha256 "+sum(tt.stored)+", manifest says "+sum(data)) {
				t.Fatalf("message %q", err)
			}
		})
	}
}

func TestHoldLastByte(t *testing.T) {
	data := []byte("the whole archive")
	h := &holdLastByte{br: bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16)}
	got, err := io.ReadAll(h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("clean stream: %q, %v", got, err)
	}

	boom := errors.New("authentication failed")
	h = &holdLastByte{br: bufio.NewReaderSize(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), 16)}
	got, err = io.ReadAll(h)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the source's", err)
	}
	if !bytes.Equal(got, data[:len(data)-1]) {
		t.Fatalf("a failing stream handed on %q, want all but its last byte", got)
	}
}

// TestDumpPipelineRoundTrip runs the backup and restore stream stages back to back, without
// PostgreSQL or storage: what goes in comes out, and the manifest's numbers are right.
func TestDumpPipelineRoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	input := bytes.Repeat([]byte("row 1\tsome text\trepeats well\n"), 100_000)
	var stored bytes.Buffer
	pl, err := newDumpPipeline(bytes.NewReader(input), &stored, []age.Recipient{id.Recipient()}, zstd.SpeedDefault)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(pl.enc, pl.dumped); err != nil {
		t.Fatal(err)
	}
	if err := pl.finish(); err != nil {
		t.Fatal(err)
	}
	if pl.dumped.n != int64(len(input)) || pl.stored.n != int64(stored.Len()) || pl.compressed.n >= pl.dumped.n || pl.stored.n <= pl.compressed.n {
		t.Fatalf("sizes: dumped %d compressed %d stored %d (buffer %d)", pl.dumped.n, pl.compressed.n, pl.stored.n, stored.Len())
	}
	if got := hex.EncodeToString(pl.stored.h.Sum(nil)); got != sum(stored.Bytes()) {
		t.Fatalf("streamed sha256 %s, stored object's %s", got, sum(stored.Bytes()))
	}

	gate := newVerifyingReader(bytes.NewReader(stored.Bytes()), int64(stored.Len()), sum(stored.Bytes()))
	plain, err := age.Decrypt(gate, id)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := io.ReadAll(&holdLastByte{br: bufio.NewReader(zr)})
	if err != nil || !bytes.Equal(out, input) {
		t.Fatalf("round trip: %d bytes, %v", len(out), err)
	}

	other, _ := age.GenerateX25519Identity()
	m := catalog.Manifest{Recipients: []string{Fingerprint(id.Recipient())}}
	var wrong *WrongIdentityError
	if err := checkIdentities(m, []age.Identity{other}); !errors.As(err, &wrong) {
		t.Fatalf("checkIdentities(other key) = %v", err)
	}
	if err := checkIdentities(m, []age.Identity{other, id}); err != nil {
		t.Fatalf("checkIdentities with the right key among others: %v", err)
	}
}

func TestParseConnInfo(t *testing.T) {
	tests := []struct {
		dsn, noSecret, password string
	}{
		{"postgres://app:s3cr%40t@db:5432/shop?sslmode=require", "postgres://app@db:5432/shop?sslmode=require", "s3cr@t"},
		{"postgresql://app@db/shop?password=pw&sslmode=disable", "postgresql://app@db/shop?sslmode=disable", "pw"},
		{"postgres://app@db/shop", "postgres://app@db/shop", ""},
		{"host=db dbname=shop password=plain user=app", "host=db dbname=shop user=app", "plain"},
		{`host=db password='with space \' quote' dbname=shop`, "host=db dbname=shop", "with space ' quote"},
	}
	for _, tt := range tests {
		ci, err := parseConnInfo(tt.dsn)
		if err != nil {
			t.Fatalf("parseConnInfo(%q): %v", tt.dsn, err)
		}
		if ci.noSecret != tt.noSecret || ci.password != tt.password {
			t.Errorf("parseConnInfo(%q) = %q, %q; want %q, %q", tt.dsn, ci.noSecret, ci.password, tt.noSecret, tt.password)
		}
		if tt.password != "" {
			if strings.Contains(ci.Redacted(), tt.password) {
				t.Errorf("Redacted() shows the password: %s", ci.Redacted())
			}
			env := ci.env(nil)
			if len(env) != 1 || env[0] != "PGPASSWORD="+tt.password {
				t.Errorf("env = %v", env)
			}
			if got := ci.scrub("oops " + tt.password); strings.Contains(got, tt.password) {
				t.Errorf("scrub left the password: %s", got)
			}
		}
	}
	if _, err := parseConnInfo("postgres://u:pa ss@%zz/db"); err == nil || strings.Contains(err.Error(), "pa ss") {
		t.Errorf("an invalid URL gives %v", err)
	}
}

func TestCompareCounts(t *testing.T) {
	m := catalog.Manifest{
		Tables:       []catalog.TableRows{{Schema: "public", Name: "a", Rows: 10}, {Schema: "public", Name: "b", Rows: 0}, {Schema: "s", Name: "c", Rows: 5}},
		LargeObjects: 2,
	}
	if p := compareCounts(m, []catalog.TableRows{{Schema: "public", Name: "a", Rows: 10}, {Schema: "public", Name: "b", Rows: 0}, {Schema: "s", Name: "c", Rows: 5}}, 2); len(p) != 0 {
		t.Fatalf("equal counts reported %v", p)
	}
	p := problemStrings(compareCounts(m, []catalog.TableRows{{Schema: "public", Name: "a", Rows: 9}, {Schema: "s", Name: "c", Rows: 5}, {Schema: "s", Name: "extra", Rows: 1}}, 1))
	want := []string{
		`RowCountMismatch: table "public.a" has 9 rows after restore, manifest says 10`,
		`TableMissing: table "public.b" is missing after restore`,
		`UnexpectedTable: table "s.extra" appears after restore but is not in the manifest`,
		`LargeObjectCountMismatch: 1 large objects after restore, manifest says 2`,
	}
	if strings.Join(p, "|") != strings.Join(want, "|") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(p, "\n"), strings.Join(want, "\n"))
	}
	if s := summary(p); !strings.HasSuffix(s, "; and 1 more") {
		t.Fatalf("summary %q", s)
	}
}

func TestRunCommandUsage(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		wantLine string
	}{
		{nil, 2, "error: no command"},
		{[]string{"frobnicate"}, 2, `error: unknown command "frobnicate"`},
		{[]string{"backups"}, 2, `error: unknown command "backups"; want "backups list" or "backups window"`},
		{[]string{"backup", "--bogus"}, 2, "error: backup: flag provided but not defined: -bogus"},
		{[]string{"backup", "--storage", "file:///tmp"}, 2, "error: backup: --dsn is required"},
		{[]string{"restore", "--storage", "file:///tmp", "--tenant", "t", "--schedule", "s", "--backup", "latest", "--identity-file", "/nonexistent", "--dsn", "postgres://x@y/z"}, 1, "error: read identity file: open /nonexistent"},
		{[]string{"backups", "list", "--storage", "file:///tmp", "--schedule", "s"}, 2, "error: backups list: --schedule needs --tenant"},
		{[]string{"backups", "list", "--storage", "file:///tmp", "-o", "yaml"}, 2, `error: backups list: -o "yaml": want table or json`},
		{[]string{"backups", "list", "--storage", "gs://bucket"}, 1, `unsupported scheme "gs"`},
		{[]string{"backup", "--dsn", "postgres://u:hunter2@127.0.0.1:1/db", "--storage", "file:///tmp", "--tenant", "../x", "--schedule", "s", "--recipient", "age1x"}, 1, `error: invalid tenant "../x"`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := RunCommand(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), tt.wantLine) {
			t.Errorf("RunCommand(%q) = %d, stdout %q, stderr %q; want %d and one line containing %q", tt.args, code, stdout.String(), stderr.String(), tt.code, tt.wantLine)
		}
		if strings.Contains(stderr.String(), "hunter2") {
			t.Errorf("RunCommand(%q) printed the password: %s", tt.args, stderr.String())
		}
	}

	var stdout, stderr bytes.Buffer
	if code := RunCommand(context.Background(), []string{"verify", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "usage: tenant-operator verify") {
		t.Errorf("verify -h = %d, %q", code, stderr.String())
	}
}

func TestErrorLine(t *testing.T) {
	mismatch := &ChecksumMismatchError{Got: "aa", Want: "bb", GotSize: 1, WantSize: 1}
	wrapped := errors.Join(errors.New("ignored"), mismatch)
	if got := errorLine(wrapped); got != "error: checksum mismatch: stored object sha256 aa, manifest says bb" {
		t.Fatalf("errorLine = %q", got)
	}
	if got := errorLine(errors.New("two\nlines")); got != "error: two lines" {
		t.Fatalf("errorLine = %q", got)
	}
}
