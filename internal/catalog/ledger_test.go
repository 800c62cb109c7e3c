package catalog

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/storage"
)

func TestValidFunctionAndSubject(t *testing.T) {
	for fn, ok := range map[string]bool{
		"app.forget": true, "_x.f_1": true, "forget": false, "App.forget": false, "app.forget()": false,
		`app."forget"`: false, "app.forget; drop table x": false, "a.b.c": false, "1app.f": false,
		"app." + strings.Repeat("f", 63): true, "app." + strings.Repeat("f", 64): false,
	} {
		if got := ValidFunction(fn) == nil; got != ok {
			t.Errorf("ValidFunction(%q) = %v, want %v", fn, got, ok)
		}
	}
	for s, ok := range map[string]bool{
		"alice": true, `o'hara\x :v`: true, "ünï 🐘": true, "": false, "a\nb": false, "a\x00": false,
		"\xff": false, strings.Repeat("x", MaxLedgerSubject): true, strings.Repeat("x", MaxLedgerSubject+1): false,
	} {
		if got := ValidSubject(s) == nil; got != ok {
			t.Errorf("ValidSubject(%q) = %v, want %v", s, got, ok)
		}
	}
}

func TestLedgerEntriesAreSignedAppendOnlyAndChecked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := storage.OpenVolume(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	trust := Trust{Keys: []ed25519.PublicKey{pub}}
	at := time.Date(2026, 5, 1, 12, 0, 0, 123, time.UTC)
	h := LedgerHeader{Tenant: "acme", TenantUID: "uid-1", RequestUID: "req-1", Time: at, DataKeyID: strings.Repeat("ab", 16), Sealed: []byte("sealed")}
	key, err := WriteLedgerEntry(ctx, store, h, priv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "acme/.ledger/uid-1/2026-05-01T12:00:00.000000123Z-req-1.json"; !strings.HasSuffix(key, want) {
		t.Fatalf("key %q, want %q", key, want)
	}
	// The same request again, later (a retried Job): nothing new, nothing overwritten.
	h2 := h
	h2.Time = at.Add(time.Minute)
	if again, err := WriteLedgerEntry(ctx, store, h2, priv); err != nil || again != key {
		t.Fatalf("retry: %q, %v; want the first entry %q", again, err, key)
	}
	h3 := h
	h3.RequestUID, h3.Time = "req-0", at.Add(-time.Hour)
	if _, err := WriteLedgerEntry(ctx, store, h3, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLedger(ctx, store, "acme", "uid-1", trust); err == nil || !strings.Contains(err.Error(), "2 erasure requests might be undone") || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("an unsigned entry: %v", err)
	}
	got, err := ReadLedger(ctx, store, "acme", "uid-1", Trust{Keys: trust.Keys, AllowUnsigned: true})
	if err != nil || len(got) != 2 || got[0].RequestUID != "req-0" || got[1].RequestUID != "req-1" || string(got[1].Sealed) != "sealed" {
		t.Fatalf("read: %+v, %v; want req-0 then req-1", got, err)
	}
	// Changed after signing: refused, whatever the change.
	path := filepath.Join(dir, key)
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), `"tenantUID":"uid-1"`, `"tenantUID":"uid-1" `, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var le *LedgerError
	if _, err := ReadLedger(ctx, store, "acme", "uid-1", Trust{Keys: trust.Keys, AllowUnsigned: true}); !errors.As(err, &le) || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a changed entry: %v", err)
	}
	// Another tenant's entry copied here is not this tenant's.
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "acme/.ledger/uid-2", filepath.Base(key))
	_ = os.MkdirAll(filepath.Dir(other), 0o700)
	if err := os.WriteFile(other, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLedger(ctx, store, "acme", "uid-2", trust); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("a copied entry: %v", err)
	}
	if n, err := DeleteLedger(ctx, store, "acme", "uid-1"); err != nil || n != 2 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	if n, _ := CountLedger(ctx, store, "acme", "uid-1"); n != 0 {
		t.Fatalf("%d entries left", n)
	}
}
