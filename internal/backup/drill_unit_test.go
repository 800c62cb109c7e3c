package backup

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestProblemsAreBoundedAndSanitized: whatever the backup names its objects and however many
// problems there are, a verification's problems are a few single lines of bounded length, each
// starting with a fixed reason, with names quoted and escaped.
func TestProblemsAreBoundedAndSanitized(t *testing.T) {
	hostile := "t\nAGE-SECRET-KEY-1\x1b[2J\u202e" + strings.Repeat("ü", 100)
	var ps []problem
	for i := 0; i < 40; i++ {
		ps = append(ps, newProblem(ReasonTableMissing, "table %s is missing after restore", quoteName(hostile)))
	}
	ps = append(ps, restoreFailedProblem(drillReport{Outcome: outcomeRestoreFailed, SQLState: "P0001", ObjectType: "TABLE DATA", ObjectName: hostile}))
	out := problemStrings(ps)
	if len(out) != maxProblems {
		t.Fatalf("%d problems stored, want at most %d", len(out), maxProblems)
	}
	if !strings.HasPrefix(out[len(out)-1], "MoreProblems: and 37 more not listed") {
		t.Errorf("last problem %q does not say how many were left out", out[len(out)-1])
	}
	for _, p := range out {
		if len(p) > maxProblemLength || !utf8.ValidString(p) {
			t.Errorf("problem of %d bytes (valid UTF-8: %v): %q", len(p), utf8.ValidString(p), p)
		}
		if strings.ContainsAny(p, "\n\r\x1b\u202e") {
			t.Errorf("problem holds a control or invisible character: %q", p)
		}
		reason, _, ok := strings.Cut(p, ": ")
		if !ok || strings.ContainsAny(reason, " \"") {
			t.Errorf("problem %q does not start with a reason", p)
		}
	}
	restore := problemStrings([]problem{ps[len(ps)-1]})[0]
	if !strings.HasPrefix(restore, `RestoreFailed: pg_restore failed with SQLSTATE P0001 (an error raised by a function) at TABLE DATA "t\nAGE-SECRET-KEY-1\x1b`) {
		t.Errorf("restore problem = %q", restore)
	}
	// An object type the restorer did not recognize, or a malformed code, is left out.
	odd := restoreFailedProblem(drillReport{SQLState: "x'; DROP", ObjectType: "SELECT pg_read_file('/etc/passwd')", ObjectName: "n"}).String()
	if odd != "RestoreFailed: pg_restore failed; nothing was restored" {
		t.Errorf("odd report gives %q", odd)
	}
}

func TestTruncateAndTail(t *testing.T) {
	s := strings.Repeat("é", 10) // 20 bytes
	if got := truncate(s, 9); len(got) > 9 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("truncate = %q", got)
	}
	if got := tail(s, 5); len(got) > 5 || !utf8.ValidString(got) {
		t.Errorf("tail = %q", got)
	}
	if got := escapeForLog("a\x1b[31mb\r\n\"c\" \u202e\xff"); got != `a\x1b[31mb\r`+"\n"+`"c" \u202e\xff` {
		t.Errorf("escapeForLog = %q", got)
	}
}

// TestFrames: the restorer's reader ends cleanly only at frameEnd; an abort or a broken
// connection is an error, so pg_restore never sees the end of a stream that did not complete.
func TestFrames(t *testing.T) {
	payload := bytes.Repeat([]byte("archive "), 100000) // several frames
	stream := func(end byte) *bytes.Buffer {
		var b bytes.Buffer
		fw := &frameWriter{w: &b}
		if _, err := fw.Write(payload); err != nil {
			t.Fatal(err)
		}
		if end != 0 {
			if err := fw.frame(end, nil); err != nil {
				t.Fatal(err)
			}
		}
		return &b
	}
	fr := &frameReader{r: stream(frameEnd)}
	got, err := io.ReadAll(fr)
	if err != nil || !bytes.Equal(got, payload) || !fr.complete() {
		t.Fatalf("ended stream: %d bytes, %v, complete %v", len(got), err, fr.complete())
	}
	fr = &frameReader{r: stream(frameAbort)}
	if _, err := io.ReadAll(fr); !errors.Is(err, errStreamAborted) || !fr.complete() {
		t.Fatalf("aborted stream: %v", err)
	}
	cut := stream(frameEnd).Bytes()
	fr = &frameReader{r: bytes.NewReader(cut[:len(cut)/2])}
	if _, err := io.ReadAll(fr); !errors.Is(err, io.ErrUnexpectedEOF) || fr.complete() {
		t.Fatalf("cut stream: %v", err)
	}
	fr = &frameReader{r: bytes.NewReader([]byte{'D', 0xff, 0xff, 0xff, 0xff})}
	if _, err := io.ReadAll(fr); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("oversized frame: %v", err)
	}
	// Held back behind holdLastByte, as the restorer feeds pg_restore: without frameEnd the last
	// byte never comes.
	held := &holdLastByte{br: bufio.NewReader(&frameReader{r: stream(0)})}
	got, err = io.ReadAll(held)
	if err == nil || len(got) != len(payload)-1 {
		t.Fatalf("a stream without its end frame gave %d of %d bytes and %v", len(got), len(payload), err)
	}
}

func TestMessagesAreBounded(t *testing.T) {
	var b bytes.Buffer
	if err := writeMessage(&b, drillReady{Error: strings.Repeat("x", 100)}); err != nil {
		t.Fatal(err)
	}
	var r drillReady
	if err := readMessage(bufio.NewReaderSize(bytes.NewReader(b.Bytes()), 16), &r, 50); err == nil {
		t.Fatal("a message over the bound was read")
	}
	if err := readMessage(bufio.NewReaderSize(bytes.NewReader(b.Bytes()), 16), &r, 200); err != nil || len(r.Error) != 100 {
		t.Fatalf("readMessage: %v", err)
	}
}

func TestFailedObject(t *testing.T) {
	stderr := `pg_restore: error: could not execute query: ERROR:  LOOT: whatever the function says
CONTEXT:  PL/pgSQL function steal() line 3 at RAISE
pg_restore: from TOC entry 3345; 0 16390 TABLE DATA victim postgres
`
	if typ, name := failedObject(stderr); typ != "TABLE DATA" || name != "victim" {
		t.Errorf("failedObject = %q %q", typ, name)
	}
	if typ, name := failedObject("pg_restore: from TOC entry 12; 1255 16400 FUNCTION public sys(cstring) postgres\n"); typ != "FUNCTION" || name != "public sys(cstring)" {
		t.Errorf("failedObject = %q %q", typ, name)
	}
	if typ, _ := failedObject("pg_restore: from TOC entry 12; 1 2 WHATEVER x y\n"); typ != "" {
		t.Errorf("an unknown entry type was taken: %q", typ)
	}
}

func TestRestoreSQLState(t *testing.T) {
	f := filepath.Join(t.TempDir(), "server.log")
	before := "00000 LOG:  checkpoint\n53100 ERROR:  an earlier restore's trouble\n"
	log := before + "42501 ERROR:  permission denied for language c\nP0001 ERROR:  LOOT\n00000 LOG:  x\n"
	write := func(s string) {
		if err := os.WriteFile(f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	offset := int64(len(before))
	write(log)
	if got := restoreSQLState(f, offset); got != "42501" {
		t.Errorf("restoreSQLState = %q, want the restore's first error", got)
	}
	// pg_restore leaving after the failure: its COPY cancelled, its connection lost.
	write(before + "P0001 ERROR:  LOOT\n57014 ERROR:  canceling statement due to user request\n08006 FATAL:  connection to client lost\n")
	if got := restoreSQLState(f, offset); got != "P0001" {
		t.Errorf("restoreSQLState with a cancel and a lost client after the error = %q", got)
	}
	// A lost connection and nothing else is still reported.
	write(before + "00000 LOG:  x\n08006 FATAL:  connection to client lost\n")
	if got := restoreSQLState(f, offset); got != "08006" {
		t.Errorf("restoreSQLState of a lost connection alone = %q", got)
	}
	if !scratchTrouble("53100") || !scratchTrouble("57P01") || scratchTrouble("42501") || scratchTrouble("P0001") || scratchTrouble("") {
		t.Error("scratchTrouble sorts codes wrong")
	}
}

// TestRestorerEnvironment: a restorer started by the agent inherits nothing that authenticates,
// and a restorer started with credentials refuses to run.
func TestRestorerEnvironment(t *testing.T) {
	env := []string{"PATH=/usr/bin", "AWS_ACCESS_KEY_ID=AKIA", "AWS_SECRET_ACCESS_KEY=s3cret", "PGPASSWORD=pw", "PGOPTIONS=-c x=y",
		"HOME=/root", "PG_BIN_DIR=/pg", "TZ=UTC", "AGE_IDENTITY=AGE-SECRET-KEY-1", "TENANTOPS_AGENT=1"}
	got := strings.Join(restorerEnv(env), " ")
	if got != "PATH=/usr/bin PG_BIN_DIR=/pg TZ=UTC TENANTOPS_AGENT=1" {
		t.Errorf("restorerEnv = %s", got)
	}
	if found := strings.Join(credentialsInEnv(env), ","); found != "AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,PGPASSWORD" {
		t.Errorf("credentialsInEnv = %s", found)
	}
	if found := credentialsInEnv(restorerEnv(env)); len(found) != 0 {
		t.Errorf("restorerEnv keeps %v", found)
	}
}

// postgresql.conf's quoted strings take backslash escapes and double quotes: a path with either
// reaches the server as it was.
func TestConfQuote(t *testing.T) {
	for in, want := range map[string]string{
		`/data/tenant`:         `'/data/tenant'`,
		`/data/o'brien`:        `'/data/o''brien'`,
		`C:\restore\n`:         `'C:\\restore\\n'`,
		`it's a \'trick\'`:     `'it''s a \\''trick\\'''`,
		`agent wal-restore %f`: `'agent wal-restore %f'`,
	} {
		if got := confQuote(in); got != want {
			t.Errorf("confQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
