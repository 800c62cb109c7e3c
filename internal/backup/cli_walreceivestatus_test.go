package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWALReceiveStatusProbe: the receiver's readiness probe passes on a fresh status, and fails
// on a stale one, on none, and on one never up to date.
func TestWALReceiveStatusProbe(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	n := 0
	write := func(st WALReceiveStatus) string {
		n++
		f := filepath.Join(dir, fmt.Sprintf("status-%d.json", n))
		data, _ := json.Marshal(st)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, tc := range []struct {
		name string
		file string
		ok   bool
		says string
	}{
		{"up to date a minute ago, idle for an hour", write(WALReceiveStatus{LastSegment: "000000010000000000000042", ArchivedAt: now.Add(-time.Hour), UpToDateAt: now.Add(-time.Minute)}), true, "up to date"},
		{"stale: storage down for three minutes", write(WALReceiveStatus{LastSegment: "000000010000000000000042", ArchivedAt: now.Add(-3 * time.Minute), UpToDateAt: now.Add(-3 * time.Minute)}), false, "not been up to date since"},
		{"never up to date", write(WALReceiveStatus{}), false, "not been up to date"},
		{"no file yet", filepath.Join(dir, "missing.json"), false, "not been up to date yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runWALReceiveStatus([]string{"--status-file", tc.file, "--within", "2m"}, now, &out, &errOut)
			if (err == nil) != tc.ok {
				t.Fatalf("ok = %v (%v), want %v", err == nil, err, tc.ok)
			}
			got := out.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.says) {
				t.Errorf("says %q, want %q", got, tc.says)
			}
		})
	}
}
