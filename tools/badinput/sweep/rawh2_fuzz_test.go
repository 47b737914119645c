package sweep

import (
	"encoding/base64"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// FuzzTrailerStatus: whatever headers a server sends, rebuilding its
// status never panics, and a well-formed answer keeps its code and reason.
func FuzzTrailerStatus(f *testing.F) {
	typed := status.Convert(rpcerr.New(codes.InvalidArgument, "URI_EMPTY", "empty"))
	b, err := proto.Marshal(typed.Proto())
	if err != nil {
		f.Fatal(err)
	}
	f.Add("3", "empty", base64.RawStdEncoding.EncodeToString(b))
	f.Add("3", "a%20message%", "")
	f.Add("99999999999", "", "")
	f.Add("-1", "", "!!")
	f.Fuzz(func(t *testing.T, code, msg, details string) {
		st := trailerStatus(code, msg, details)
		if st == nil {
			t.Fatal("nil status")
		}
	})
}

func TestTrailerStatusKeepsTheReason(t *testing.T) {
	t.Parallel()
	typed := status.Convert(rpcerr.New(codes.InvalidArgument, "URI_EMPTY", "empty"))
	b, err := proto.Marshal(typed.Proto())
	if err != nil {
		t.Fatal(err)
	}
	st := trailerStatus("3", "empty", base64.StdEncoding.EncodeToString(b))
	if st.Code() != codes.InvalidArgument || rpcerr.Reason(st.Err()) != "URI_EMPTY" {
		t.Errorf("got %v (reason %q)", st, rpcerr.Reason(st.Err()))
	}
	if st := trailerStatus("x", "", ""); st.Code() != codes.Unknown {
		t.Errorf("malformed grpc-status gave %v", st.Code())
	}
}
