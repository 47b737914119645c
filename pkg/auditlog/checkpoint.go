package auditlog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a commitment to the log's first Size entries: the RFC 6962
// Merkle root of their leaf hashes, under the log's origin name.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   tlog.Hash
}

// Text renders the checkpoint body in the C2SP tlog-checkpoint form that
// the signed note carries:
//
//	<origin>\n<size in decimal>\n<base64 root hash>\n
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// ParseCheckpoint reads a checkpoint body (see Text). Extension lines after
// the root are allowed and ignored.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, errors.New("checkpoint: want origin, size and root lines")
	}
	origin, sizeText, rootText := lines[0], lines[1], lines[2]
	if origin == "" {
		return Checkpoint{}, errors.New("checkpoint: empty origin")
	}
	size, err := strconv.ParseUint(sizeText, 10, 64)
	if err != nil || (len(sizeText) > 1 && sizeText[0] == '0') {
		return Checkpoint{}, fmt.Errorf("checkpoint: size %q is not a decimal number", sizeText)
	}
	root, err := base64.StdEncoding.DecodeString(rootText)
	if err != nil || len(root) != len(tlog.Hash{}) {
		return Checkpoint{}, fmt.Errorf("checkpoint: root %q is not a base64 SHA-256", rootText)
	}
	c := Checkpoint{Origin: origin, Size: size}
	copy(c.Root[:], root)
	return c, nil
}

// SignCheckpoint returns c as a signed note.
func SignCheckpoint(c Checkpoint, signer note.Signer) ([]byte, error) {
	b, err := note.Sign(&note.Note{Text: c.Text()}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return b, nil
}

// OpenCheckpoint verifies a signed checkpoint note against a verifier key
// ("<name>+<hash>+<key>", what AuditService.PublicKey returns) and returns
// its body. The checkpoint's origin must be the key's name.
func OpenCheckpoint(signed []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint: origin %q is not the key's name %q", c.Origin, v.Name())
	}
	return c, nil
}

// TreeBuilder computes the RFC 6962 root of a growing list of leaves in
// O(log n) memory: it keeps the roots of the complete subtrees that make
// up the tree (one per set bit of the size).
type TreeBuilder struct {
	n     uint64
	stack []tlog.Hash
}

// Add appends a leaf hash.
func (t *TreeBuilder) Add(leaf tlog.Hash) {
	t.stack = append(t.stack, leaf)
	// Each trailing 1 bit of the old size is a complete subtree the new
	// leaf completes a level above.
	for n := t.n; n&1 == 1; n >>= 1 {
		k := len(t.stack)
		t.stack[k-2] = tlog.NodeHash(t.stack[k-2], t.stack[k-1])
		t.stack = t.stack[:k-1]
	}
	t.n++
}

// Size is the number of leaves added.
func (t *TreeBuilder) Size() uint64 { return t.n }

// Root returns the tree's root hash (the hash of the empty string for an
// empty tree, per RFC 6962).
func (t *TreeBuilder) Root() tlog.Hash {
	if t.n == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return h
	}
	h := t.stack[len(t.stack)-1]
	for i := len(t.stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(t.stack[i], h)
	}
	return h
}

// CheckInclusion verifies an inclusion proof: the entry with leaf hash
// leaf, at seq (1-based), is in the tree of size whose root is root.
func CheckInclusion(proof []tlog.Hash, size uint64, root tlog.Hash, seq uint64, leaf tlog.Hash) error {
	if seq == 0 || seq > size || size > 1<<62 {
		return fmt.Errorf("inclusion: seq %d out of range for size %d", seq, size)
	}
	if err := tlog.CheckRecord(proof, int64(size), root, int64(seq-1), leaf); err != nil {
		return fmt.Errorf("inclusion of seq %d in size %d: %w", seq, size, err)
	}
	return nil
}

// CheckConsistency verifies that the tree older is a prefix of newer, given
// a consistency proof. It fails when the log was truncated or its tail
// rewritten since older was signed.
func CheckConsistency(proof []tlog.Hash, older, newer Checkpoint) error {
	if older.Size > newer.Size {
		return fmt.Errorf("consistency: size went from %d down to %d (truncated)", older.Size, newer.Size)
	}
	if newer.Size > 1<<62 {
		return fmt.Errorf("consistency: size %d out of range", newer.Size)
	}
	if older.Size == 0 {
		return nil
	}
	if err := tlog.CheckTree(proof, int64(newer.Size), newer.Root, int64(older.Size), older.Root); err != nil {
		return fmt.Errorf("consistency of size %d with size %d: %w", older.Size, newer.Size, err)
	}
	return nil
}
