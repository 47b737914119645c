package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// TokenEntry maps one bearer token to a principal. A tokens file may hold
// the token itself or only its SHA-256, so the file need not be a secret.
type TokenEntry struct {
	Principal string `yaml:"principal"`
	Token     string `yaml:"token,omitempty"`
	SHA256    string `yaml:"sha256,omitempty"`
	Admin     bool   `yaml:"admin,omitempty"`
}

// TokensFile is the YAML form of --tokens files.
type TokensFile struct {
	Tokens []TokenEntry `yaml:"tokens"`
}

// Tokens maps bearer tokens to principals. Lookups hash the presented token,
// so no comparison leaks a token's prefix through timing.
type Tokens struct {
	byHash map[[sha256.Size]byte]tokenPrincipal
	admins map[string]bool
}

type tokenPrincipal struct {
	name  string
	admin bool
}

// NewTokens builds a token map from entries.
func NewTokens(entries []TokenEntry) (*Tokens, error) {
	t := &Tokens{byHash: map[[sha256.Size]byte]tokenPrincipal{}, admins: map[string]bool{}}
	for i, e := range entries {
		if e.Principal == "" || e.Principal == Anonymous || strings.HasPrefix(e.Principal, PeerPrefix) {
			return nil, fmt.Errorf("token %d: principal %q is empty or reserved", i, e.Principal)
		}
		var h [sha256.Size]byte
		switch {
		case e.Token != "" && e.SHA256 == "":
			h = sha256.Sum256([]byte(e.Token))
		case e.SHA256 != "" && e.Token == "":
			b, err := hex.DecodeString(e.SHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("token %d: sha256 must be 64 hex digits", i)
			}
			copy(h[:], b)
		default:
			return nil, fmt.Errorf("token %d: give exactly one of token and sha256", i)
		}
		t.byHash[h] = tokenPrincipal{name: e.Principal, admin: e.Admin}
		if e.Admin {
			t.admins[e.Principal] = true
		}
	}
	return t, nil
}

// LoadTokens reads a tokens YAML file.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokens: %w", err)
	}
	var f TokensFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("load tokens %s: %w", path, err)
	}
	t, err := NewTokens(f.Tokens)
	if err != nil {
		return nil, fmt.Errorf("load tokens %s: %w", path, err)
	}
	return t, nil
}

// ErrUnknownToken is returned for a token no entry maps.
var ErrUnknownToken = errors.New("unknown bearer token")

// Lookup returns the principal of a bearer token.
func (t *Tokens) Lookup(token string) (Principal, error) {
	if t == nil || token == "" {
		return Principal{}, ErrUnknownToken
	}
	p, ok := t.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return Principal{}, ErrUnknownToken
	}
	return Principal{Name: p.name, Kind: KindToken}, nil
}

// IsAdmin reports whether p may administer the node (policy, log level).
// Mesh peers are admins of each other only through the callers they carry.
func (t *Tokens) IsAdmin(p Principal) bool {
	if t == nil || p.Kind != KindToken {
		return false
	}
	return t.admins[p.Name]
}

// NewToken returns a fresh random token.
func NewToken() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return "ctm_" + hex.EncodeToString(b[:]), nil
}
