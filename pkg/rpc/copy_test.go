package rpc

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/continuum-mesh/continuum/pkg/internal/randmsg"
	_ "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// wireCopy is what copyMessage must equal: marshal, then unmarshal.
func wireCopy(dst, src proto.Message) error {
	b, err := proto.Marshal(src)
	if err != nil {
		return err
	}
	return proto.Unmarshal(b, dst)
}

// TestCopyMessageIsTheWire: for every message of the API and the
// well-known types, filled at random (invalid UTF-8 and edge values
// included), copying in process gives what the wire gives: the same
// message, or an error exactly when marshaling fails. The copy is
// independent of its source. Moving a handed-over message's fields gives
// the same message too.
func TestCopyMessageIsTheWire(t *testing.T) {
	t.Parallel()
	var types []protoreflect.MessageType
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		name := string(mt.Descriptor().FullName())
		if strings.HasPrefix(name, "continuum.") || strings.HasPrefix(name, "google.protobuf.") {
			types = append(types, mt)
		}
		return true
	})
	if len(types) < 50 {
		t.Fatalf("only %d message types registered", len(types))
	}
	rng := rand.New(rand.NewPCG(7, 11))
	merged, refused := 0, 0
	for _, mt := range types {
		for i := range 40 {
			src := mt.New()
			randmsg.Fill(rng, src)
			want := mt.New().Interface()
			wantErr := wireCopy(want, src.Interface())
			if mergeable(src) {
				merged++
			}
			got := mt.New().Interface()
			randmsg.Fill(rng, got.ProtoReflect()) // not empty: the copy must reset it
			err := copyMessage(got, src.Interface())
			name := fmt.Sprintf("%s #%d", mt.Descriptor().FullName(), i)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("%s: copy error %v, wire error %v", name, err, wantErr)
			}
			if err != nil {
				refused++
				continue
			}
			if !proto.Equal(got, want) {
				t.Fatalf("%s: copy\n%v\nwire\n%v", name, got, want)
			}
			// A handed-over message moved field by field is the same.
			moved := mt.New()
			randmsg.Fill(rng, moved)
			moveFields(moved, src)
			if !proto.Equal(moved.Interface(), want) {
				t.Fatalf("%s: moved\n%v\nwire\n%v", name, moved.Interface(), want)
			}
			proto.Reset(src.Interface())
			if !proto.Equal(got, want) {
				t.Fatalf("%s: resetting the source changed the copy", name)
			}
		}
	}
	if merged == 0 || refused == 0 {
		t.Fatalf("merged %d, refused %d: the test did not reach both paths", merged, refused)
	}
}
