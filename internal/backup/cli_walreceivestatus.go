package backup

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// runWALReceiveStatus is the WAL receiver's readiness probe: it succeeds while the status file
// says the receiver was up to date (streaming, nothing complete waiting for storage) within
// --within, and fails with one line saying since when it is not.
func runWALReceiveStatus(args []string, now time.Time, stdout, stderr io.Writer) error {
	fs := newCommand("wal-receive-status", "wal-receive-status --status-file F [--within 2m]\n\n"+
		"Exits 0 when the wal-receive that writes F was up to date (streaming, every complete segment stored)\n"+
		"within the last --within, 1 otherwise: a readiness probe.", stderr)
	file := fs.String("status-file", "", "the receiver's --status-file")
	within := fs.Duration("within", 2*time.Minute, "how long ago the receiver may last have been up to date")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.required("status-file"); err != nil {
		return err
	}
	data, err := os.ReadFile(*file)
	if os.IsNotExist(err) {
		return fmt.Errorf("wal-receive has not been up to date yet (no %s)", *file)
	}
	if err != nil {
		return err
	}
	var st WALReceiveStatus
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	if age := now.Sub(st.UpToDateAt); st.UpToDateAt.IsZero() || age > *within {
		return fmt.Errorf("wal-receive has not been up to date since %s (last stored segment %s at %s): storage or the database does not answer; see its log",
			st.UpToDateAt.Format(time.RFC3339), st.LastSegment, st.ArchivedAt.Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "up to date at %s; last stored segment %s at %s\n", st.UpToDateAt.Format(time.RFC3339), st.LastSegment, st.ArchivedAt.Format(time.RFC3339))
	return nil
}
