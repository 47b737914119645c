package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// keyFileName holds the node's checkpoint signing key, in the signer-key
// form of golang.org/x/mod/sumdb/note ("PRIVATE+KEY+<name>+<hash>+<key>").
const keyFileName = "signing.key"

// algEd25519 is the note package's algorithm byte for Ed25519 keys.
const algEd25519 = 1

// signingKey is the node's checkpoint signer and its public verifier key.
type signingKey struct {
	signer note.Signer
	// verifier is "<name>+<hash>+<base64 key>", what PublicKey serves.
	verifier string
}

// loadOrCreateKey reads dir/signing.key, creating it (0600, written to a
// temporary file, fsynced and renamed into place) on first start. The key's
// name must be origin: a log keeps one identity for its life.
func loadOrCreateKey(dir, origin string, log *slog.Logger) (signingKey, error) {
	path := filepath.Join(dir, keyFileName)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		skey, vkey, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			return signingKey{}, fmt.Errorf("create signing key: %w", err)
		}
		if err := writeFileAtomic(dir, keyFileName, []byte(skey+"\n")); err != nil {
			return signingKey{}, fmt.Errorf("create signing key: %w", err)
		}
		signer, err := note.NewSigner(skey)
		if err != nil {
			return signingKey{}, fmt.Errorf("create signing key: %w", err)
		}
		log.Info("audit: created the checkpoint signing key", "path", path, "verifier_key", vkey)
		return signingKey{signer: signer, verifier: vkey}, nil
	case err != nil:
		return signingKey{}, fmt.Errorf("read signing key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("audit: the signing key is readable by others; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	skey := strings.TrimSpace(string(b))
	signer, err := note.NewSigner(skey)
	if err != nil {
		return signingKey{}, fmt.Errorf("signing key %s: %w", path, err)
	}
	if signer.Name() != origin {
		return signingKey{}, fmt.Errorf("signing key %s is for origin %q, but the configured origin is %q; a log keeps its origin for life", path, signer.Name(), origin)
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return signingKey{}, fmt.Errorf("signing key %s: %w", path, err)
	}
	return signingKey{signer: signer, verifier: vkey}, nil
}

// verifierKey derives the verifier key of an Ed25519 signer key
// "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>" (a name never holds
// '+'), and checks it verifies what the signer signs.
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("malformed signer key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != algEd25519 {
		return "", errors.New("signer key is not an Ed25519 key")
	}
	pub, ok := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	if !ok {
		return "", errors.New("derive public key")
	}
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("derive verifier key: %w", err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return "", fmt.Errorf("signer key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return "", fmt.Errorf("derive verifier key: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: "continuum audit key check\n"}, signer)
	if err != nil {
		return "", fmt.Errorf("signer key: %w", err)
	}
	if _, err := note.Open(msg, note.VerifierList(verifier)); err != nil {
		return "", fmt.Errorf("derived verifier key does not verify the signer: %w", err)
	}
	return vkey, nil
}

// writeFileAtomic writes dir/name with mode 0600 so that it is either
// absent or whole, even across a crash.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*") // created 0600
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}
