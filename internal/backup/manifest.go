// Package backup is the agent that runs inside backup pods: it dumps a tenant's PostgreSQL
// database, compresses, encrypts and uploads the dump in one stream, and describes the result in a
// manifest; it restores and verifies such backups, and lists them for SREs. The storage layout
// and the manifest are package catalog's, which the operator reads too.
package backup

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"filippo.io/age"
)

// Fingerprint identifies an age recipient without spelling out the key: SHA256 of its canonical
// text, in the style of ssh-keygen -l. Identities map to the same fingerprint through their
// recipient, which is how a restore tells a wrong key before downloading anything.
func Fingerprint(r age.Recipient) string {
	s, ok := r.(fmt.Stringer)
	if !ok {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.ToLower(s.String())))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// ParseRecipients parses age public keys (X25519 "age1..." or post-quantum "age1pq1...").
func ParseRecipients(keys []string) ([]age.Recipient, []string, error) {
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("no recipients: pass at least one --recipient AGE_PUBLIC_KEY")
	}
	var recs []age.Recipient
	var fps []string
	seen := map[string]bool{}
	for i, k := range keys {
		parsed, err := age.ParseRecipients(strings.NewReader(strings.TrimSpace(k)))
		if err != nil || len(parsed) != 1 {
			// The value might be a secret key pasted in the wrong place: don't echo it.
			return nil, nil, fmt.Errorf("recipient %d is not an age public key (age1...)", i+1)
		}
		fp := Fingerprint(parsed[0])
		if seen[fp] {
			continue
		}
		seen[fp] = true
		recs = append(recs, parsed[0])
		fps = append(fps, fp)
	}
	return recs, fps, nil
}
