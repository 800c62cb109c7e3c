package backup

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ExportFormatVersion is written into every export's manifest.
const ExportFormatVersion = 1

// Names of the files in an export archive besides the tables' CSVs.
const (
	exportReadme   = "README.txt"
	exportDump     = "dump.sql"
	exportManifest = "manifest.json"
	exportSums     = "SHA256SUMS"
)

// ExportManifest is manifest.json in an export archive: what the archive holds and where it
// comes from, for the customer and their tools.
type ExportManifest struct {
	FormatVersion int    `json:"formatVersion"`
	Tenant        string `json:"tenant"`
	TenantUID     string `json:"tenantUID,omitempty"`
	Schedule      string `json:"schedule"`
	BackupID      string `json:"backupId"`
	// BackupStartedAt is when the backup's snapshot was taken: the data is as of then.
	BackupStartedAt  time.Time `json:"backupStartedAt"`
	BackupFinishedAt time.Time `json:"backupFinishedAt"`
	Database         string    `json:"database"`
	PostgresVersion  string    `json:"postgresVersion"`
	PgDumpVersion    string    `json:"pgDumpVersion"`
	ExportedAt       time.Time `json:"exportedAt"`
	// Encoding is the character encoding of dump.sql and the CSVs: the database's.
	Encoding string    `json:"encoding"`
	CSV      CSVFormat `json:"csv"`
	// Files are every file of the archive but this manifest and SHA256SUMS, in archive order.
	Files []ExportFile `json:"files"`
	// Tables are the tables whose rows are in dump.sql, each with its CSV.
	Tables []ExportTable `json:"tables"`
	// LargeObjects are in dump.sql only.
	LargeObjects int64 `json:"largeObjects"`
	// Recipients are the fingerprints of the age recipients the archive was encrypted to.
	Recipients []string `json:"recipients"`
}

// ExportFile is one file of the archive.
type ExportFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ExportTable is one table and its CSV.
type ExportTable struct {
	Schema  string   `json:"schema"`
	Name    string   `json:"name"`
	File    string   `json:"file"`
	Columns []string `json:"columns"`
	Rows    int64    `json:"rows"`
}

// CSVFormat says how the CSVs are written, for tools that take options.
type CSVFormat struct {
	Standard    string `json:"standard"`
	Delimiter   string `json:"delimiter"`
	Quote       string `json:"quote"`
	RecordEnd   string `json:"recordEnd"`
	Header      bool   `json:"header"`
	Null        string `json:"null"`
	EmptyString string `json:"emptyString"`
	Values      string `json:"values"`
}

var exportCSVFormat = CSVFormat{
	Standard:    "RFC 4180",
	Delimiter:   ",",
	Quote:       `"`,
	RecordEnd:   "\r\n",
	Header:      true,
	Null:        "an empty field without quotes",
	EmptyString: `""`,
	Values:      "every value other than NULL is quoted, quotes inside doubled; values are PostgreSQL's text output (bytea as \\x hex, timestamps with their offset)",
}

func (m ExportManifest) encode() ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("export manifest: %w", err)
	}
	return append(data, '\n'), nil
}

// sha256Sums is SHA256SUMS: the format of sha256sum, so that `sha256sum -c SHA256SUMS` checks
// the unpacked files.
func sha256Sums(files []ExportFile) []byte {
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	return []byte(b.String())
}

// exportReadmeText is README.txt, for whoever opens the archive without the documentation.
const exportReadmeText = `This archive holds a copy of your PostgreSQL database, as of the time in manifest.json
(backupStartedAt).

  dump.sql       the whole database as SQL: schema, data and large objects.
                 Import it into an empty database:  psql -v ON_ERROR_STOP=1 -d NEWDB -f dump.sql
                 (ownership and grants are left out: the objects belong to whoever imports them)
  tables/*.csv   every table's rows, one CSV file per table (RFC 4180, a header row, CRLF).
                 NULL is an empty field without quotes; every other value is quoted, so ""
                 is the empty string. Load one into a table of the same columns with
                 \copy schema.table FROM 'tables/schema.table.csv' WITH (FORMAT csv, HEADER)
  manifest.json  where the data comes from, every table with its CSV file, columns and row
                 count, and every file's size and SHA-256.
  SHA256SUMS     checksums of the other files: sha256sum -c SHA256SUMS

File names escape characters that file systems refuse as %XX; manifest.json gives each file's
exact table.
`
