package gateway

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
)

// ArtifactUploadPath is the HTTP face of GenomeService.PutArtifact, a
// client stream that grpc-gateway cannot transcode: the query is the
// artifact's header (sha256, size_bytes, name, experts, expert_offsets)
// and the body its raw bytes, streamed to the genome service in chunks as
// they arrive, never held whole.
const ArtifactUploadPath = "/v1/genome/artifacts"

// uploadChunkBytes is the size of the chunks an upload is sent in (well
// under gRPC's default 4 MiB message limit).
const uploadChunkBytes = 1 << 20

// serveArtifactUpload relays an upload into a PutArtifact stream. The
// genome service verifies size and checksum when the stream ends; an
// upload that fails half way (the client leaves, the body is too large or
// stalls) cancels the stream, and the service stores nothing.
func (g *Gateway) serveArtifactUpload(w http.ResponseWriter, r *http.Request) {
	if g.isDraining() {
		g.writeError(w, r, errShuttingDown())
		return
	}
	hdr, err := artifactHeader(r, g.cfg.MaxUploadBytes)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ctx, err = runtime.AnnotateContext(ctx, g.api, r, genomev1.GenomeService_PutArtifact_FullMethodName,
		runtime.WithHTTPPathPattern(ArtifactUploadPath))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	stream, err := genomev1.NewGenomeServiceClient(g.genome).PutArtifact(ctx)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	resp, err := sendArtifact(stream, hdr, r.Body)
	if err != nil {
		// Whatever the stream still holds is abandoned: cancel before
		// answering, so the service sees an unfinished upload.
		cancel()
		if r.Context().Err() != nil {
			return // the client went away; nobody is listening
		}
		g.writeError(w, r, err)
		return
	}
	data, err := g.marshal(resp)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(data, '\n'))
}

// sendArtifact sends the header and then body in chunks, and returns the
// service's answer. An error reading body is the gateway's (a typed error,
// or errBodyTooLarge); an error of the stream is the service's.
func sendArtifact(stream grpc.ClientStreamingClient[genomev1.PutArtifactRequest, genomev1.PutArtifactResponse],
	hdr *genomev1.PutArtifactHeader, body io.Reader,
) (*genomev1.PutArtifactResponse, error) {
	send := func(m *genomev1.PutArtifactRequest) (ended bool, err error) {
		// io.EOF: the service ended the stream early (a refusal, a bad
		// header); CloseAndRecv returns why.
		if err := stream.Send(m); err != nil {
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			return true, err
		}
		return false, nil
	}
	ended, err := send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Header{Header: hdr}})
	if err != nil {
		return nil, err
	}
	buf := make([]byte, uploadChunkBytes)
	for !ended {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			// Send marshals the message before it returns, so buf can be
			// reused at once.
			if ended, err = send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return nil, err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			if errors.Is(rerr, errBodyTooLarge) {
				return nil, rerr // errorBody answers 413 BODY_TOO_LARGE
			}
			return nil, newError(codes.InvalidArgument, ReasonBodyInvalid, "reading the artifact: "+rerr.Error())
		}
	}
	return stream.CloseAndRecv()
}

// artifactHeader reads an upload's header from the query. Every parameter
// must name a field of PutArtifactHeader (by its proto or JSON name), once
// unless repeated; size_bytes defaults to the Content-Length and must agree
// with it.
func artifactHeader(r *http.Request, limit int64) (*genomev1.PutArtifactHeader, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && strings.HasPrefix(mt, "multipart/") {
			return nil, newError(codes.InvalidArgument, ReasonBodyInvalid,
				"send the artifact's bytes as the body (application/octet-stream), not a "+mt+" form")
		}
	}
	hdr := &genomev1.PutArtifactHeader{}
	fields := hdr.ProtoReflect().Descriptor().Fields()
	q := r.URL.Query()
	for key, vs := range q {
		fd := fields.ByTextName(key)
		if fd == nil {
			fd = fields.ByJSONName(key)
		}
		if fd == nil {
			return nil, newError(codes.InvalidArgument, ReasonQueryInvalid,
				"unknown parameter "+key+" (the header's fields: name, sha256, size_bytes, experts, expert_offsets)", "param", key)
		}
		if !fd.IsList() && len(vs) != 1 {
			return nil, newError(codes.InvalidArgument, ReasonQueryInvalid, key+" is given more than once", "param", key)
		}
	}
	if err := runtime.PopulateQueryParameters(hdr, q, utilities.NewDoubleArray(nil)); err != nil {
		return nil, newError(codes.InvalidArgument, ReasonQueryInvalid, err.Error())
	}
	_, given := q["size_bytes"]
	if _, ok := q["sizeBytes"]; ok {
		given = true
	}
	switch {
	case !given && r.ContentLength < 0:
		return nil, newError(codes.InvalidArgument, ReasonQueryInvalid,
			"size_bytes is required when the body has no Content-Length", "param", "size_bytes")
	case !given:
		hdr.SizeBytes = uint64(r.ContentLength)
	case r.ContentLength >= 0 && hdr.GetSizeBytes() != uint64(r.ContentLength):
		return nil, newError(codes.InvalidArgument, ReasonQueryInvalid,
			"size_bytes is "+strconv.FormatUint(hdr.GetSizeBytes(), 10)+" but the body is "+strconv.FormatInt(r.ContentLength, 10)+" bytes",
			"param", "size_bytes")
	}
	if hdr.GetSizeBytes() > uint64(limit) {
		return nil, errBodyTooLargeLimit(limit)
	}
	return hdr, nil
}
