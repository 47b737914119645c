package mesh

import (
	"fmt"
	"testing"
)

func BenchmarkOwner10Members(b *testing.B) {
	m := offlineMesh("node-00", newFakeClock())
	for i := 0; i < 10; i++ {
		addMember(m, fmt.Sprintf("node-%02d", i), []string{"hippocampus", "mesh"})
	}
	for b.Loop() {
		if _, err := m.Owner("hippocampus", "persona-4711"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeMeta(b *testing.B) {
	info := localInfo{GRPCAddr: "10.0.0.1:7400", Services: []string{"events", "mesh", "router"}, Peers: manyPeers(5), Rooms: manyRooms(5)}
	for b.Loop() {
		if _, _, _, err := encodeMeta(info, MetaMaxSize); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMeta(b *testing.B) {
	info := localInfo{GRPCAddr: "10.0.0.1:7400", Services: []string{"events", "mesh", "router"}, Peers: manyPeers(5), Rooms: manyRooms(5)}
	enc, _, _, err := encodeMeta(info, MetaMaxSize)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := decodeMeta(enc); err != nil {
			b.Fatal(err)
		}
	}
}
