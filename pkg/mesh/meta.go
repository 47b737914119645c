package mesh

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
)

// Node metadata travels in every memberlist alive message and is limited to
// memberlist.MetaMaxSize (512) bytes. It is encoded as a versioned binary
// record (see docs/mesh.md, "Node metadata"):
//
//	byte     version (1)
//	byte     flags: 1 = peers truncated, 2 = rooms truncated, 4 = draining
//	str      gRPC address
//	uvarint  bitmask of knownServices
//	uvarint  n, then n × str: other services
//	uvarint  n, then n × peer: name, uvarint bitmask of knownEnvs,
//	         uvarint m, then m × str: other envs
//	uvarint  n, then n × 16 bytes: room UUIDs
//
// str is a uvarint length and the bytes. A peer name of length 0 is
// followed by 16 raw bytes: a UUID, which is rendered in canonical
// lower-case form. Decoders ignore trailing bytes, so later versions may
// append fields.
//
// When a record would exceed the limit, whole peers are dropped from the
// end of the list, then whole rooms from the end of theirs, and the flags
// say so. The gRPC address and the services are never dropped: a
// configuration whose address and services alone exceed the limit is
// refused.

// MetaMaxSize is memberlist's limit on node metadata.
const MetaMaxSize = 512

const metaVersion = 1

const (
	flagPeersTruncated = 1 << iota
	flagRoomsTruncated
	flagDraining
)

// knownServices get one bit each. Append only: a service's bit is part of
// the wire format.
var knownServices = []string{"router", "events", "genome", "hippocampus", "audit", "mesh", "debug", "gateway"}

// knownEnvs get one bit each. Append only.
var knownEnvs = []string{"web", "tty", "cli", "vr", "ar", "headless"}

// localInfo is what a node says about itself in its metadata.
type localInfo struct {
	GRPCAddr string
	Services []string
	Peers    []HostedPeer
	Rooms    []string
	// Flags of a decoded record.
	PeersTruncated bool
	RoomsTruncated bool
	// Draining: the node is handing its keys away before it leaves (see
	// Mesh.Drain). Older decoders ignore the flag.
	Draining bool
}

// errMetaTooLarge is returned when the address and services alone do not
// fit the limit.
var errMetaTooLarge = errors.New("mesh: gRPC address and services do not fit the 512-byte node metadata")

// encodeMeta renders info in at most limit bytes, dropping peers and then
// rooms that do not fit (see above). It reports how many of each it kept.
// info must be normalized (valid names, canonical UUIDs).
func encodeMeta(info localInfo, limit int) (b []byte, peersKept, roomsKept int, err error) {
	b = make([]byte, 0, 128)
	b = append(b, metaVersion, 0)
	b = appendString(b, info.GRPCAddr)
	var mask uint64
	var others []string
	for _, s := range info.Services {
		if i := slices.Index(knownServices, s); i >= 0 {
			mask |= 1 << i
		} else {
			others = append(others, s)
		}
	}
	b = binary.AppendUvarint(b, mask)
	b = binary.AppendUvarint(b, uint64(len(others)))
	for _, s := range others {
		b = appendString(b, s)
	}
	// Room and peer counts need at least one byte each.
	if len(b)+2 > limit {
		return nil, 0, 0, errMetaTooLarge
	}

	peerEnc := make([][]byte, len(info.Peers))
	for i, p := range info.Peers {
		peerEnc[i] = appendPeer(nil, p)
	}
	roomEnc := make([][]byte, len(info.Rooms))
	for i, r := range info.Rooms {
		roomEnc[i] = appendUUID(nil, r)
	}
	// Keep the longest prefix of peers that fits with an empty room list,
	// then the longest prefix of rooms that fits in what remains.
	used := len(b) + 1 // room count 0
	peersKept, used = fit(peerEnc, used, limit)
	used-- // the room count is counted again by fit
	roomsKept, _ = fit(roomEnc, used, limit)

	if peersKept < len(info.Peers) {
		b[1] |= flagPeersTruncated
	}
	if roomsKept < len(info.Rooms) {
		b[1] |= flagRoomsTruncated
	}
	if info.Draining {
		b[1] |= flagDraining
	}
	b = binary.AppendUvarint(b, uint64(peersKept))
	for _, p := range peerEnc[:peersKept] {
		b = append(b, p...)
	}
	b = binary.AppendUvarint(b, uint64(roomsKept))
	for _, r := range roomEnc[:roomsKept] {
		b = append(b, r...)
	}
	if len(b) > limit {
		// fit's arithmetic guarantees this; keep the guard so a bug can
		// never make memberlist panic on oversized metadata.
		return nil, 0, 0, fmt.Errorf("mesh: metadata encoded to %d bytes, over the %d limit", len(b), limit)
	}
	return b, peersKept, roomsKept, nil
}

// fit returns how many leading items fit after used bytes (plus the item
// count's own uvarint) within limit, and the bytes used then.
func fit(items [][]byte, used, limit int) (int, int) {
	n, size := 0, 0
	for i, it := range items {
		if used+uvarintLen(uint64(i+1))+size+len(it) > limit {
			break
		}
		n, size = i+1, size+len(it)
	}
	return n, used + uvarintLen(uint64(n)) + size
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendName writes a peer name; a canonical UUID as 0 and 16 raw bytes.
func appendName(b []byte, name string) []byte {
	if raw, ok := uuidBytes(name); ok {
		b = append(b, 0)
		return append(b, raw[:]...)
	}
	return appendString(b, name)
}

func appendPeer(b []byte, p HostedPeer) []byte {
	b = appendName(b, p.Name)
	var mask uint64
	var others []string
	for _, e := range p.Envs {
		if i := slices.Index(knownEnvs, e); i >= 0 {
			mask |= 1 << i
		} else {
			others = append(others, e)
		}
	}
	b = binary.AppendUvarint(b, mask)
	b = binary.AppendUvarint(b, uint64(len(others)))
	for _, e := range others {
		b = appendString(b, e)
	}
	return b
}

func appendUUID(b []byte, s string) []byte {
	raw, _ := uuidBytes(s)
	return append(b, raw[:]...)
}

// uuidBytes parses a canonical lower-case 8-4-4-4-12 UUID.
func uuidBytes(s string) ([16]byte, bool) {
	var out [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return out, false
	}
	hexed := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	for i := 0; i < len(hexed); i++ {
		c := hexed[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return out, false
		}
	}
	if _, err := hex.Decode(out[:], []byte(hexed)); err != nil {
		return out, false
	}
	return out, true
}

func uuidString(raw []byte) string {
	h := hex.EncodeToString(raw)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ErrMetaMalformed is returned by decodeMeta for bytes that are not a
// node metadata record this version understands.
var ErrMetaMalformed = errors.New("mesh: malformed node metadata")

// metaReader reads a record without ever indexing past its end.
type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMetaMalformed, what)
	}
	r.b = nil
}

func (r *metaReader) byte(what string) byte {
	if len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *metaReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads an element count and rejects counts the remaining bytes
// cannot hold (each element takes at least min bytes).
func (r *metaReader) count(what string, minSize int) int {
	v := r.uvarint(what)
	if r.err != nil {
		return 0
	}
	if v > uint64(len(r.b)/minSize) {
		r.fail(what + " count")
		return 0
	}
	return int(v)
}

func (r *metaReader) bytes(n uint64, what string) []byte {
	if n > uint64(len(r.b)) {
		r.fail(what)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *metaReader) string(what string) string {
	n := r.uvarint(what)
	if r.err != nil {
		return ""
	}
	return string(r.bytes(n, what))
}

func (r *metaReader) name(what string) string {
	n := r.uvarint(what)
	if r.err != nil {
		return ""
	}
	if n == 0 {
		raw := r.bytes(16, what)
		if r.err != nil {
			return ""
		}
		return uuidString(raw)
	}
	return string(r.bytes(n, what))
}

// decodeMeta parses a record written by encodeMeta. Every list it returns
// is non-nil so decoded values compare equal to normalized configs.
func decodeMeta(b []byte) (localInfo, error) {
	r := &metaReader{b: b}
	var info localInfo
	if v := r.byte("version"); r.err == nil && v != metaVersion {
		return info, fmt.Errorf("%w: version %d", ErrMetaMalformed, v)
	}
	flags := r.byte("flags")
	info.PeersTruncated = flags&flagPeersTruncated != 0
	info.RoomsTruncated = flags&flagRoomsTruncated != 0
	info.Draining = flags&flagDraining != 0
	info.GRPCAddr = r.string("grpc address")
	mask := r.uvarint("services")
	info.Services = []string{}
	for i, s := range knownServices {
		if mask&(1<<i) != 0 {
			info.Services = append(info.Services, s)
		}
	}
	for n := r.count("services", 1); n > 0 && r.err == nil; n-- {
		info.Services = append(info.Services, r.string("service"))
	}
	slices.Sort(info.Services)
	info.Services = slices.Compact(info.Services)
	info.Peers = []HostedPeer{}
	for n := r.count("peers", 3); n > 0 && r.err == nil; n-- {
		p := HostedPeer{Name: r.name("peer name"), Envs: []string{}}
		emask := r.uvarint("envs")
		for i, e := range knownEnvs {
			if emask&(1<<i) != 0 {
				p.Envs = append(p.Envs, e)
			}
		}
		for m := r.count("envs", 1); m > 0 && r.err == nil; m-- {
			p.Envs = append(p.Envs, r.string("env"))
		}
		slices.Sort(p.Envs)
		p.Envs = slices.Compact(p.Envs)
		info.Peers = append(info.Peers, p)
	}
	info.Rooms = []string{}
	for n := r.count("rooms", 16); n > 0 && r.err == nil; n-- {
		raw := r.bytes(16, "room")
		if r.err == nil {
			info.Rooms = append(info.Rooms, uuidString(raw))
		}
	}
	if r.err != nil {
		return localInfo{}, r.err
	}
	if err := info.validate(); err != nil {
		return localInfo{}, fmt.Errorf("%w: %w", ErrMetaMalformed, err)
	}
	return info, nil
}

// validate applies the configuration rules to a decoded record, so what
// another node gossips is held to the same rules as what this node was
// configured with (and is always valid UTF-8 for the protobuf answers).
func (info localInfo) validate() error {
	if err := checkGRPCAddr(info.GRPCAddr); err != nil {
		return err
	}
	for _, s := range info.Services {
		if err := checkService(s); err != nil {
			return err
		}
	}
	for _, p := range info.Peers {
		if c, ok := CanonicalPeer(p.Name); !ok || c != p.Name {
			return fmt.Errorf("peer %q is not a canonical peer name", p.Name)
		}
		for _, e := range p.Envs {
			if err := checkEnv(e); err != nil {
				return err
			}
		}
	}
	return nil
}
