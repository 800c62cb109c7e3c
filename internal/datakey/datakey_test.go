package datakey

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
)

func platform(t *testing.T) (*age.X25519Identity, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id, id.Recipient().String()
}

func TestGeneratedKeyUnwrapsOnlyWithAPlatformIdentity(t *testing.T) {
	first, firstRecipient := platform(t)
	second, secondRecipient := platform(t)
	outsider, _ := platform(t)
	key, err := Generate([]string{firstRecipient, secondRecipient})
	if err != nil {
		t.Fatal(err)
	}
	if !ValidID(key.ID) || key.ID != ID(key.Recipient) || !strings.HasPrefix(key.Recipient, "age1") {
		t.Fatalf("key = %+v: want an age1 recipient named by its ID", key)
	}
	if bytes.Contains(key.Wrapped, []byte("AGE-SECRET-KEY")) || !bytes.HasPrefix(key.Wrapped, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		t.Fatalf("wrapped key is not armored ciphertext:\n%s", key.Wrapped)
	}
	for name, id := range map[string]*age.X25519Identity{"first": first, "second": second} {
		identity, err := Unwrap(key.Wrapped, key.ID, []age.Identity{id})
		if err != nil {
			t.Fatalf("unwrap with the %s platform identity: %v", name, err)
		}
		// The unwrapped identity decrypts what was encrypted to the key's recipient.
		recipient, err := age.ParseX25519Recipient(key.Recipient)
		if err != nil {
			t.Fatal(err)
		}
		var sealed bytes.Buffer
		w, _ := age.Encrypt(&sealed, recipient)
		_, _ = io.WriteString(w, "tenant data")
		_ = w.Close()
		r, err := age.Decrypt(&sealed, identity)
		if err != nil {
			t.Fatalf("decrypt with the unwrapped key: %v", err)
		}
		if got, _ := io.ReadAll(r); string(got) != "tenant data" {
			t.Fatalf("decrypted %q", got)
		}
	}
	_, err = Unwrap(key.Wrapped, key.ID, []age.Identity{outsider})
	if !errors.Is(err, ErrNoPlatformIdentity) {
		t.Fatalf("unwrap with an outsider's identity = %v, want ErrNoPlatformIdentity", err)
	}
	other, err := Generate([]string{firstRecipient})
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == key.ID {
		t.Fatal("two generated keys have the same ID")
	}
	// A wrapped key stored under another key's name is refused: a swapped escrow object must not
	// pass for the key a backup names.
	if _, err := Unwrap(other.Wrapped, key.ID, []age.Identity{first}); err == nil || !strings.Contains(err.Error(), "not the one the backup names") {
		t.Fatalf("unwrap of another key under this key's ID = %v", err)
	}
}

func TestRecipientsDigestIgnoresOrderCaseAndDuplicates(t *testing.T) {
	_, a := platform(t)
	_, b := platform(t)
	cases := []struct {
		name   string
		x, y   []string
		wantEq bool
	}{
		{"same set, other order", []string{a, b}, []string{b, a}, true},
		{"duplicates and spaces", []string{a, b}, []string{" " + a, b, b}, true},
		{"upper case", []string{a}, []string{strings.ToUpper(a)}, true},
		{"a recipient added", []string{a}, []string{a, b}, false},
		{"a recipient replaced", []string{a}, []string{b}, false},
	}
	for _, tc := range cases {
		if got := RecipientsDigest(tc.x) == RecipientsDigest(tc.y); got != tc.wantEq {
			t.Errorf("%s: equal digests = %v, want %v", tc.name, got, tc.wantEq)
		}
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		ID("age1example"):                      true,
		"":                                     false,
		"../../other-tenant/keys/0123456789ab": false,
		strings.ToUpper(ID("age1example")):     false,
		ID("age1example") + "00":               false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestGenerateRefusesWhatIsNotARecipient(t *testing.T) {
	secret, _ := platform(t)
	for name, recipients := range map[string][]string{"none": nil, "an identity": {secret.String()}} {
		_, err := Generate(recipients)
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
			t.Fatalf("%s: the error echoes a secret key: %v", name, err)
		}
	}
}
