package mesh

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	uuidA = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
	uuidB = "00000000-0000-4000-8000-000000000001"
)

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		info localInfo
	}{
		{"minimal", localInfo{GRPCAddr: "127.0.0.1:7400", Services: []string{}, Peers: []HostedPeer{}, Rooms: []string{}}},
		{"everything", localInfo{
			GRPCAddr: "hippocampus-2.continuum.svc:7400",
			Services: []string{"audit", "debug", "events", "gateway", "genome", "hippocampus", "mesh", "router", "x-render", "zeta"},
			Peers: []HostedPeer{
				{Name: "maya", Envs: []string{"ar", "cli", "headless", "tty", "vr", "web", "x-acme-glasses"}},
				{Name: uuidA, Envs: []string{}},
				{Name: "ai-provider-1", Envs: []string{"web"}},
			},
			Rooms: []string{uuidA, uuidB},
		}},
		{"draining", localInfo{GRPCAddr: "10.0.0.7:7400", Services: []string{"hippocampus"}, Peers: []HostedPeer{}, Rooms: []string{}, Draining: true}},
		{"ipv6 and only unknown services", localInfo{GRPCAddr: "[::1]:7400", Services: []string{"render"}, Peers: []HostedPeer{{Name: "n", Envs: []string{}}}, Rooms: []string{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, peers, rooms, err := encodeMeta(tc.info, MetaMaxSize)
			if err != nil {
				t.Fatal(err)
			}
			if peers != len(tc.info.Peers) || rooms != len(tc.info.Rooms) {
				t.Fatalf("kept %d peers, %d rooms; want all", peers, rooms)
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.info, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func manyPeers(n int) []HostedPeer {
	out := make([]HostedPeer, n)
	for i := range out {
		out[i] = HostedPeer{Name: fmt.Sprintf("peer-%03d-with-a-longish-name", i), Envs: []string{"vr", "web", "x-vendor-" + fmt.Sprint(i)}}
	}
	return out
}

func manyRooms(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
	}
	return out
}

// TestMetaLimit proves the 512-byte limit holds however many peers and
// rooms a node has, that what is kept is the longest prefix that fits
// (peers first, then rooms), and that the flags say what was dropped.
func TestMetaLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		peers, rooms int
	}{
		{"fits", 3, 3},
		{"many peers", 200, 0},
		{"many rooms", 1, 200},
		{"many of both", 100, 100},
		{"peers fill it", 15, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			info := localInfo{GRPCAddr: "10.0.0.1:7400", Services: []string{"mesh", "router"}, Peers: manyPeers(tc.peers), Rooms: manyRooms(tc.rooms)}
			b, peers, rooms, err := encodeMeta(info, MetaMaxSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MetaMaxSize {
				t.Fatalf("encoded %d bytes, over %d", len(b), MetaMaxSize)
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			want := localInfo{
				GRPCAddr: info.GRPCAddr, Services: info.Services, Peers: info.Peers[:peers], Rooms: info.Rooms[:rooms],
				PeersTruncated: peers < tc.peers, RoomsTruncated: rooms < tc.rooms,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
			// Maximal: one more peer (with no rooms), or one more room,
			// would not have fitted.
			if peers < tc.peers {
				more := localInfo{GRPCAddr: info.GRPCAddr, Services: info.Services, Peers: info.Peers[:peers+1]}
				if b, _, _, _ := encodeMeta(more, 1<<20); len(b) <= MetaMaxSize {
					t.Errorf("dropped peer %d although %d bytes fit", peers, len(b))
				}
			}
			if rooms < tc.rooms {
				more := localInfo{GRPCAddr: info.GRPCAddr, Services: info.Services, Peers: info.Peers[:peers], Rooms: info.Rooms[:rooms+1]}
				if b, _, _, _ := encodeMeta(more, 1<<20); len(b) <= MetaMaxSize {
					t.Errorf("dropped room %d although %d bytes fit", rooms, len(b))
				}
			}
		})
	}
}

func TestMetaLimitEveryCount(t *testing.T) {
	t.Parallel()
	for n := 0; n <= 60; n++ {
		info := localInfo{GRPCAddr: "10.0.0.1:7400", Services: []string{"genome"}, Peers: manyPeers(n), Rooms: manyRooms(n)}
		b, _, _, err := encodeMeta(info, MetaMaxSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MetaMaxSize {
			t.Fatalf("n=%d: encoded %d bytes", n, len(b))
		}
		if _, err := decodeMeta(b); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}

func TestMetaTooLarge(t *testing.T) {
	t.Parallel()
	var svcs []string
	for i := 0; i < 10; i++ {
		svcs = append(svcs, "s"+strings.Repeat("x", 60)+fmt.Sprint(i))
	}
	_, _, _, err := encodeMeta(localInfo{GRPCAddr: "10.0.0.1:7400", Services: svcs}, MetaMaxSize)
	if !errors.Is(err, errMetaTooLarge) {
		t.Fatalf("err = %v, want errMetaTooLarge", err)
	}
}

func TestDecodeMetaMalformed(t *testing.T) {
	t.Parallel()
	good, _, _, err := encodeMeta(localInfo{GRPCAddr: "10.0.0.1:7400", Services: []string{"mesh"}, Peers: []HostedPeer{{Name: "maya", Envs: []string{"web"}}}, Rooms: []string{uuidA}}, MetaMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wrong version", []byte{9, 0}},
		{"no flags", []byte{1}},
		{"truncated address", []byte{1, 0, 20, 'a'}},
		{"huge count", []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"cut short", good[:len(good)-3]},
		{"address not host:port", append([]byte{1, 0, 3}, "abc\x00\x00\x00\x00"...)},
		{"invalid utf-8 service", append(append([]byte{1, 0, 14}, "10.0.0.1:7400\x00"...), 0, 1, 2, 0xff, 0xfe, 0, 0)},
		{"bad peer name", append(append([]byte{1, 0, 14}, "10.0.0.1:7400\x00"...), 0, 0, 1, 3, 'a', ' ', 'b', 0, 0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeMeta(tc.b); !errors.Is(err, ErrMetaMalformed) {
				t.Errorf("decodeMeta(%q) err = %v, want ErrMetaMalformed", tc.b, err)
			}
		})
	}
}

// FuzzDecodeMeta: no input panics the decoder, and whatever decodes
// re-encodes to the same record.
func FuzzDecodeMeta(f *testing.F) {
	seed, _, _, _ := encodeMeta(localInfo{
		GRPCAddr: "10.0.0.1:7400", Services: []string{"mesh", "render"},
		Peers: []HostedPeer{{Name: "maya", Envs: []string{"web", "x-acme"}}, {Name: uuidA}}, Rooms: []string{uuidB},
	}, MetaMaxSize)
	f.Add(seed)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := decodeMeta(b)
		if err != nil {
			return
		}
		info.PeersTruncated, info.RoomsTruncated = false, false
		again, _, _, err := encodeMeta(info, 1<<20)
		if err != nil {
			t.Fatalf("re-encode of decoded %+v: %v", info, err)
		}
		back, err := decodeMeta(again)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if diff := cmp.Diff(info, back); diff != "" {
			t.Fatalf("re-encode changed the record (-first +second):\n%s", diff)
		}
	})
}

// TestNodeMetaSmallerLimit: should memberlist ever ask for less than 512
// bytes, the record is re-encoded to fit rather than overflowing.
func TestNodeMetaSmallerLimit(t *testing.T) {
	t.Parallel()
	m := offlineMesh("a", newFakeClock())
	if err := m.setMeta(localInfo{GRPCAddr: "10.0.0.1:7400", Services: []string{"mesh"}, Peers: manyPeers(20), Rooms: manyRooms(20)}); err != nil {
		t.Fatal(err)
	}
	d := delegate{m}
	if got := len(d.NodeMeta(MetaMaxSize)); got > MetaMaxSize || got < 400 {
		t.Errorf("NodeMeta(512) = %d bytes", got)
	}
	small := d.NodeMeta(100)
	if len(small) > 100 {
		t.Fatalf("NodeMeta(100) = %d bytes", len(small))
	}
	info, err := decodeMeta(small)
	if err != nil || !info.PeersTruncated || info.GRPCAddr != "10.0.0.1:7400" {
		t.Errorf("NodeMeta(100) decodes to %+v, %v", info, err)
	}
}
