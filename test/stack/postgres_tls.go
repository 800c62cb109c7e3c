package stack

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnableTLS turns on TLS with a PEM certificate (chain) and key and waits until the server offers
// it; call it once per server. Plaintext connections stay allowed, as before.
//
// The server reloads its configuration rather than restarting: ssl and its files are reloadable
// since PostgreSQL 10. The files go into the data directory, owned by the server's user with mode
// 0600, because PostgreSQL refuses a private key that others can read.
func (p *Postgres) EnableTLS(t testing.TB, certPEM, keyPEM []byte) {
	t.Helper()
	dir := p.cluster.DataDir
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("stack: %v", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("stack: cannot tell the owner of %s", dir)
	}
	for name, data := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatalf("stack: write %s: %v", path, err)
		}
		if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatalf("stack: hand %s to the server's user: %v", path, err)
		}
	}
	// Not in one Exec: ALTER SYSTEM cannot run inside the transaction that several statements
	// make.
	p.Exec(t, "postgres", "ALTER SYSTEM SET ssl = on")
	p.Exec(t, "postgres", "ALTER SYSTEM SET ssl_cert_file = 'server.crt'")
	p.Exec(t, "postgres", "ALTER SYSTEM SET ssl_key_file = 'server.key'")
	p.Exec(t, "postgres", "SELECT pg_reload_conf()")

	// The reload is a signal the postmaster handles in its own time; new sessions see the result.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		var on string
		conn, err := pgx.Connect(ctx, p.DSN)
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT current_setting('ssl')").Scan(&on)
			conn.Close(ctx)
		}
		if err == nil && on == "on" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stack: PostgreSQL did not turn TLS on (ssl=%q, %v):\n%s", on, err, p.LogTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
