package uri_test

import (
	"testing"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

// benchInputs is the mix the router sees: mostly local commands, then peers
// with node and env, rooms and broadcasts.
var benchInputs = []string{
	"inference/llm/generate",
	"airc://maya@5090-rig:vr/scene/spawn",
	"airc://room:0b6c3a52-7d1e-4f3a-9c2b-8e5d4f6a7b8c:web/render/start",
	"airc://maya:*/notification/post",
}

var (
	sinkURI  uri.URI
	sinkBool bool
	sinkStr  string
)

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u, err := uri.Parse(benchInputs[i%len(benchInputs)])
		if err != nil {
			b.Fatal(err)
		}
		sinkURI = u
		i++
	}
}

func BenchmarkParseVariant(b *testing.B) {
	names := []string{"local", "peer-node-env", "room-env", "broadcast"}
	for i, in := range benchInputs {
		b.Run(names[i], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkURI, _ = uri.Parse(in)
			}
		})
	}
	// The one case that allocates: lower-casing an upper-case UUID.
	b.Run("peer-uuid-upper", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkURI, _ = uri.Parse("airc://6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B/x")
		}
	})
}

func BenchmarkString(b *testing.B) {
	us := make([]uri.URI, len(benchInputs))
	for i, in := range benchInputs {
		us[i] = uri.MustParse(in)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkStr = us[i%len(us)].String()
		i++
	}
}

func BenchmarkMatchURI(b *testing.B) {
	u := uri.MustParse("airc://maya@5090-rig:vr/scene/spawn")
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = uri.MatchURI("airc://maya@*:vr/scene/**", u)
	}
}
