package backup

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/klauspost/compress/flate"
)

// exportArchive is the archive the customer receives: a zip, encrypted with age as it is written.
// A zip can be written as a stream: each entry's sizes and CRC follow its data (a data
// descriptor), zip64 takes over past 4 GiB, and the directory comes last, so no entry needs to be
// known, sized or held before it is written. Each entry is counted and hashed on its way in, for
// the manifest.
type exportArchive struct {
	enc      io.WriteCloser
	zw       *zip.Writer
	modified time.Time
	files    []ExportFile
	cur      *countingWriter // the open entry, nil between entries
	curName  string
}

// exportCompression is flate's level for the entries: SQL and CSV shrink about fivefold at the
// fastest levels already, and compression must not be what makes an export slow.
const exportCompression = 3

func newExportArchive(w io.Writer, recipients []age.Recipient, modified time.Time) (*exportArchive, error) {
	enc, err := age.Encrypt(w, recipients...)
	if err != nil {
		return nil, fmt.Errorf("encrypt export: %w", err)
	}
	zw := zip.NewWriter(enc)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, exportCompression)
	})
	return &exportArchive{enc: enc, zw: zw, modified: modified}, nil
}

// create starts the entry name, ending the one before.
func (a *exportArchive) create(name string) (io.Writer, error) {
	a.finish()
	w, err := a.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: a.modified})
	if err != nil {
		return nil, fmt.Errorf("export archive entry %s: %w", name, err)
	}
	a.cur, a.curName = &countingWriter{w: w, h: sha256.New()}, name
	return a.cur, nil
}

// finish records the open entry, if any.
func (a *exportArchive) finish() {
	if a.cur == nil {
		return
	}
	a.files = append(a.files, ExportFile{Name: a.curName, Size: a.cur.n, SHA256: hex.EncodeToString(a.cur.h.Sum(nil))})
	a.cur = nil
}

// close ends the zip and the encryption. Until it returns nil, what was written is not a whole
// archive: age authenticates its last chunk, so a cut-off export does not decrypt.
func (a *exportArchive) close() error {
	a.finish()
	if err := a.zw.Close(); err != nil {
		return fmt.Errorf("finish export archive: %w", err)
	}
	if err := a.enc.Close(); err != nil {
		return fmt.Errorf("finish export encryption: %w", err)
	}
	return nil
}

// tableFileNames gives each table's CSV a file name that every file system takes: schema and table
// joined by a dot, with the bytes that some file system refuses (/ \ : * ? " < > |, control
// characters) and % itself written as %XX, unique even where case does not count (a suffix ~2,
// ~3 ...), and at most maxFileName bytes. The manifest maps every file to its exact table.
type tableFileNames struct {
	used map[string]bool
}

const maxFileName = 200

func (n *tableFileNames) name(schema, table string) string {
	if n.used == nil {
		n.used = map[string]bool{}
	}
	base := escapeFileName(schema) + "." + escapeFileName(table)
	if len(base) > maxFileName {
		sum := sha256.Sum256([]byte(schema + "\x00" + table))
		base = truncateUTF8(base, maxFileName-9) + "-" + hex.EncodeToString(sum[:4])
	}
	name := "tables/" + base + ".csv"
	for i := 2; n.used[strings.ToLower(name)]; i++ {
		name = fmt.Sprintf("tables/%s~%d.csv", base, i)
	}
	n.used[strings.ToLower(name)] = true
	return name
}

// escapeFileName escapes as tableFileNames says, and bytes that are not UTF-8 (names in a
// database of another encoding), which zip tools would show as something else.
func escapeFileName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`/\:*?"<>|%`, r) || (r == utf8.RuneError && size == 1) {
			fmt.Fprintf(&b, "%%%02X", s[i])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func truncateUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
