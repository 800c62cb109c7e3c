package catalog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tenantops/tenant-operator/internal/storage"
)

// Manifests are signed so that write access to the bucket is not enough to make a backup that
// restores: the checksum of the data object sits beside it in the manifest, and whoever can write
// both can recompute it. The signature is Ed25519 (crypto/ed25519 from the standard library:
// small keys that fit a status field, deterministic signatures, no parameters to get wrong) over
// the exact bytes of manifest.json, which name the tenant, schedule and id (checked against where
// the manifest is found) and the data object's size and sha256, so the signature covers the data
// too. It is detached, in SignatureObject, written before the manifest: the manifest is still the
// last object written, and a backup is never visible unsigned while its signature is on its way.
//
// The signature covers the stored bytes, not a re-encoding, so it can be checked with any Ed25519
// implementation, e.g. openssl pkeyutl -verify -rawin.

// SignatureObject is the detached signature of a backup's manifest, next to it.
const SignatureObject = ManifestObject + ".sig"

// SignatureAlgorithm is the only algorithm this agent writes and accepts.
const SignatureAlgorithm = "ed25519"

// publicKeyPrefix starts the text form of a public key, e.g. in a BackupPolicy's status.
const publicKeyPrefix = "ed25519:"

// maxSignatureSize bounds what is read of a signature object, which is a few hundred bytes; a
// larger one is not ours.
const maxSignatureSize = 4 << 10

// signatureFormatVersion is the format of SignatureObject, which has not changed with the
// manifest's.
const signatureFormatVersion = 1

// Signature is the content of SignatureObject.
type Signature struct {
	FormatVersion int `json:"formatVersion"`
	// Algorithm is SignatureAlgorithm.
	Algorithm string `json:"algorithm"`
	// Signed names the object whose exact bytes are signed: ManifestObject.
	Signed string `json:"signed"`
	// PublicKey is the signer's public key in text form. It only says which key to try: a
	// signature is accepted when a trusted key verifies it, whatever this field says.
	PublicKey string `json:"publicKey"`
	// Value is the signature, base64.
	Value string `json:"signature"`
}

// GenerateSigningKey makes a key pair for signing manifests: the private key as PKCS #8 PEM (what
// the backup jobs mount) and the public key in text form (what verifiers are given). random is
// crypto/rand.Reader outside tests.
func GenerateSigningKey(random io.Reader) (privatePEM []byte, publicKey string, err error) {
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, "", fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, "", fmt.Errorf("encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), FormatPublicKey(pub), nil
}

// ParseSigningKey reads a PKCS #8 PEM Ed25519 private key, as GenerateSigningKey and
// `openssl genpkey -algorithm ed25519` write it. Errors never quote the input.
func ParseSigningKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("signing key is not a PEM \"PRIVATE KEY\" block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("signing key is not a valid PKCS #8 private key")
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key is a %T, want an Ed25519 key", key)
	}
	return priv, nil
}

// FormatPublicKey is the text form of a public key: "ed25519:" and the 32 bytes in base64.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return publicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads the text form of a public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	raw, ok := strings.CutPrefix(s, publicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("public key %q does not start with %q", abbreviate(s), publicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q is not %q and %d bytes in base64", abbreviate(s), publicKeyPrefix, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// ParsePublicKeys reads public keys separated by white space or commas, ignoring lines starting
// with '#': the content of a key file or of an environment variable.
func ParsePublicKeys(text string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			k, err := ParsePublicKey(f)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// KeyFingerprint names a public key in messages: SHA256 of its 32 bytes, as ssh-keygen -l does.
func KeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}

// SignManifest returns the signature object for a manifest's exact bytes.
func SignManifest(manifest []byte, key ed25519.PrivateKey) ([]byte, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("signing key is not a valid Ed25519 key")
	}
	sig := Signature{
		FormatVersion: signatureFormatVersion,
		Algorithm:     SignatureAlgorithm,
		Signed:        ManifestObject,
		PublicKey:     FormatPublicKey(pub),
		Value:         base64.StdEncoding.EncodeToString(ed25519.Sign(key, manifest)),
	}
	data, err := json.MarshalIndent(sig, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// SignatureStatus is what checking a backup's signature found.
type SignatureStatus string

const (
	// SignatureUnchecked: no trust was given to check against (a listing made without keys).
	SignatureUnchecked SignatureStatus = ""
	// SignatureValid: a trusted key verifies the signature over the manifest's bytes.
	SignatureValid SignatureStatus = "Valid"
	// SignatureUnsignedAccepted: no signature, accepted because the trust allows unsigned
	// backups (those made before signing was enabled).
	SignatureUnsignedAccepted SignatureStatus = "UnsignedAccepted"
	// SignatureMissing: no signature, and unsigned backups are not accepted.
	SignatureMissing SignatureStatus = "Missing"
	// SignatureInvalid: a signature that no trusted key verifies: the manifest or data was changed
	// after signing, or it was signed by a key that is not trusted.
	SignatureInvalid SignatureStatus = "Invalid"
)

// Trusted says whether a backup with this status may be restored and may count: as fresh, as
// verified, as one that retention keeps.
func (s SignatureStatus) Trusted() bool {
	return s == SignatureUnchecked || s == SignatureValid || s == SignatureUnsignedAccepted
}

// Trust is what a backup's signature is checked against.
type Trust struct {
	// Keys are the accepted public keys: the current one and, after a rotation, the ones before
	// it, so that older backups still check.
	Keys []ed25519.PublicKey
	// AllowUnsigned accepts backups without a signature, for those made before signing was
	// enabled. Off by default: anyone who can write the bucket can write an unsigned backup.
	AllowUnsigned bool
}

// check judges a manifest's bytes against its signature object (nil when there is none), and
// says why when the status is not trusted.
func (t Trust) check(manifest, sigData []byte) (SignatureStatus, string) {
	if sigData == nil {
		if t.AllowUnsigned {
			return SignatureUnsignedAccepted, ""
		}
		return SignatureMissing, "it is not signed"
	}
	var sig Signature
	if err := json.Unmarshal(sigData, &sig); err != nil {
		return SignatureInvalid, "its signature object is not valid JSON"
	}
	if sig.Algorithm != SignatureAlgorithm || sig.Signed != ManifestObject {
		return SignatureInvalid, fmt.Sprintf("its signature is of an unknown kind (algorithm %q over %q)", abbreviate(sig.Algorithm), abbreviate(sig.Signed))
	}
	value, err := base64.StdEncoding.DecodeString(sig.Value)
	if err != nil || len(value) != ed25519.SignatureSize {
		return SignatureInvalid, "its signature is not a valid Ed25519 signature"
	}
	// Every trusted key is tried, whatever the object names as its signer: the name is not
	// signed, and trying a handful of keys costs microseconds.
	for _, k := range t.Keys {
		if ed25519.Verify(k, manifest, value) {
			return SignatureValid, ""
		}
	}
	claimed, err := ParsePublicKey(sig.PublicKey)
	if err != nil {
		return SignatureInvalid, "its signature names no valid key and no trusted key verifies it"
	}
	for _, k := range t.Keys {
		if bytes.Equal(k, claimed) {
			return SignatureInvalid, fmt.Sprintf("its signature by key %s does not match its manifest: the manifest or the data it describes was changed after signing", KeyFingerprint(claimed))
		}
	}
	if len(t.Keys) == 0 {
		return SignatureInvalid, fmt.Sprintf("it is signed by key %s but no key is trusted", KeyFingerprint(claimed))
	}
	return SignatureInvalid, fmt.Sprintf("it is signed by key %s, which is not one of the %d trusted keys", KeyFingerprint(claimed), len(t.Keys))
}

// SignatureError refuses a backup whose signature does not check.
type SignatureError struct {
	Tenant, Schedule, ID string
	Status               SignatureStatus
	// Reason says what was found, e.g. "it is not signed".
	Reason string
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("backup %s of tenant %s schedule %s is refused: %s", e.ID, e.Tenant, e.Schedule, e.Reason)
}

// GetTrusted is Get, then the backup's signature checked against trust: a backup whose signature
// does not check is a *SignatureError. It is what restore and verify use, so that a backup someone
// with write access to the bucket made or changed is never restored.
func GetTrusted(ctx context.Context, store storage.Store, tenant, schedule, id string, trust Trust, opts ...ListOption) (Backup, error) {
	b, err := Get(ctx, store, tenant, schedule, id, opts...)
	if err != nil {
		return Backup{}, err
	}
	dir := Dir(b.Tenant, b.Schedule, b.ID)
	// Read again rather than kept from Get: the bytes checked must be the bytes decoded, and Get
	// may have found the backup by listing.
	manifest, err := readSmall(ctx, store, storage.Join(dir, ManifestObject), maxMetadataSize)
	if err != nil {
		return Backup{}, fmt.Errorf("read manifest of %s: %w", dir, err)
	}
	checked, err := DecodeManifest(manifest)
	if err != nil {
		return Backup{}, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	if err := checkDir(dir, checked); err != nil {
		return Backup{}, err
	}
	b.Manifest = checked
	sig, err := readSignature(ctx, store, dir)
	if err != nil {
		return Backup{}, err
	}
	status, reason := trust.check(manifest, sig)
	b.Signature = status
	if !status.Trusted() {
		return b, &SignatureError{Tenant: b.Tenant, Schedule: b.Schedule, ID: b.ID, Status: status, Reason: reason}
	}
	return b, nil
}

// readSignature reads a backup's signature object; nil when it has none.
func readSignature(ctx context.Context, store storage.Store, dir string) ([]byte, error) {
	data, err := readSmall(ctx, store, storage.Join(dir, SignatureObject), maxSignatureSize)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read signature of %s: %w", dir, err)
	}
	return data, nil
}

// WriteSignedManifest stores a backup's signature, then its manifest (which makes it a backup):
// write it only once the data object is stored whole. The signature covers the exact bytes
// stored as the manifest.
func WriteSignedManifest(ctx context.Context, store storage.Store, m Manifest, key ed25519.PrivateKey) error {
	manifest, err := encodeJSON(m)
	if err != nil {
		return err
	}
	sig, err := SignManifest(manifest, key)
	if err != nil {
		return err
	}
	dir := Dir(m.Tenant, m.Schedule, m.ID)
	if _, err := store.Put(ctx, storage.Join(dir, SignatureObject), bytes.NewReader(sig)); err != nil {
		return fmt.Errorf("write signature: %w", err)
	}
	if _, err := store.Put(ctx, storage.Join(dir, ManifestObject), bytes.NewReader(manifest)); err != nil {
		return err
	}
	return nil
}
