package genome

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
)

// server is the gRPC face of the manager: it parses requests into domain
// types, calls the manager and maps every error through toStatus.
type server struct {
	genomev1.UnimplementedGenomeServiceServer
	s *Service
}

func (g *server) err(err error) error { return toStatus(g.s.log, err) }

// personaAndRef parses the two fields most requests carry.
func personaAndRef(persona string, page *genomev1.PageRef) (PersonaID, PageRef, error) {
	p, err := ParsePersonaID(persona)
	if err != nil {
		return PersonaID{}, PageRef{}, err
	}
	ref, err := refFromProto(page)
	return p, ref, err
}

func (g *server) PutArtifact(stream grpc.ClientStreamingServer[genomev1.PutArtifactRequest, genomev1.PutArtifactResponse]) error {
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return g.err(ErrHeaderMissing)
	}
	if err != nil {
		return g.err(err)
	}
	h := first.GetHeader()
	if h == nil {
		return g.err(ErrHeaderMissing)
	}
	hdr := ArtifactHeader{Name: h.GetName(), SHA256: h.GetSha256(), Size: h.GetSizeBytes(), Experts: h.GetExperts(), ExpertOffsets: h.GetExpertOffsets()}
	a, err := g.s.PutArtifact(stream.Context(), hdr, &chunkReader{stream: stream})
	if err != nil {
		return g.err(err)
	}
	return stream.SendAndClose(&genomev1.PutArtifactResponse{
		ArtifactId: a.ID.String(), Sha256: a.SHA256, SizeBytes: a.Size,
		Role: roleProto(a.Home), Created: a.Created, Experts: uint32(a.Experts),
	})
}

// chunkReader reads the chunks of a PutArtifact stream as bytes.
type chunkReader struct {
	stream grpc.ClientStreamingServer[genomev1.PutArtifactRequest, genomev1.PutArtifactResponse]
	buf    []byte
	eof    bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		msg, err := r.stream.Recv()
		if errors.Is(err, io.EOF) {
			r.eof = true
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		if msg.GetHeader() != nil {
			return 0, fmt.Errorf("%w: a second header in the stream", ErrHeaderInvalid)
		}
		r.buf = msg.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (g *server) RegisterPersona(ctx context.Context, req *genomev1.RegisterPersonaRequest) (*genomev1.RegisterPersonaResponse, error) {
	p, err := ParsePersonaID(req.GetPersonaId())
	if err != nil {
		return nil, g.err(err)
	}
	created, err := g.s.RegisterPersona(ctx, p, req.GetCapacityBytes())
	if err != nil {
		return nil, g.err(err)
	}
	return &genomev1.RegisterPersonaResponse{Created: created}, nil
}

func (g *server) RegisterPageOwner(ctx context.Context, req *genomev1.RegisterPageOwnerRequest) (*genomev1.RegisterPageOwnerResponse, error) {
	owner, ref, err := personaAndRef(req.GetOwnerPersonaId(), req.GetPage())
	if err != nil {
		return nil, g.err(err)
	}
	created, err := g.s.RegisterPageOwner(ctx, ref, owner)
	if err != nil {
		return nil, g.err(err)
	}
	return &genomev1.RegisterPageOwnerResponse{Created: created}, nil
}

func (g *server) PageIn(ctx context.Context, req *genomev1.PageInRequest) (*genomev1.PageInResponse, error) {
	p, ref, err := personaAndRef(req.GetPersonaId(), req.GetPage())
	if err != nil {
		return nil, g.err(err)
	}
	res, err := g.s.PageIn(ctx, p, ref)
	if err != nil {
		return nil, g.err(err)
	}
	out := &genomev1.PageInResponse{Resident: residentProto(res.Resident)}
	if res.Faulted {
		out.Fault = &genomev1.PageFault{From: roleProto(res.Fault.From), To: roleProto(res.Fault.To)}
	}
	if len(res.Evictions) > 0 {
		out.Evictions = evictionsProto(res.Evictions)
	}
	return out, nil
}

func (g *server) ReadPage(req *genomev1.ReadPageRequest, stream grpc.ServerStreamingServer[genomev1.ReadPageResponse]) error {
	p, ref, err := personaAndRef(req.GetPersonaId(), req.GetPage())
	if err != nil {
		return g.err(err)
	}
	rc, size, err := g.s.ReadPage(stream.Context(), p, ref)
	if err != nil {
		return g.err(err)
	}
	defer rc.Close()
	buf := make([]byte, min(uint64(g.s.cfg.ReadChunkBytes), size))
	first := true
	for {
		n, rerr := io.ReadFull(rc, buf)
		if n > 0 || first {
			msg := &genomev1.ReadPageResponse{Chunk: buf[:n]}
			if first {
				msg.TotalBytes = size
				first = false
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF), errors.Is(rerr, io.ErrUnexpectedEOF):
			return nil
		default:
			return g.err(opErr("read page", p, ref, rerr))
		}
	}
}

func (g *server) PageOut(ctx context.Context, req *genomev1.PageOutRequest) (*genomev1.PageOutResponse, error) {
	p, ref, err := personaAndRef(req.GetPersonaId(), req.GetPage())
	if err != nil {
		return nil, g.err(err)
	}
	target, err := roleFromProto(req.GetTarget())
	if err != nil {
		return nil, g.err(err)
	}
	res, err := g.s.PageOut(ctx, p, ref, target)
	if err != nil {
		return nil, g.err(err)
	}
	return &genomev1.PageOutResponse{
		Moved: res.Moved, SkippedPinned: res.SkippedPinned, From: roleProto(res.From),
		To: roleProto(res.To), Evictions: evictionsProto(res.Evictions),
	}, nil
}

func (g *server) Pin(ctx context.Context, req *genomev1.PinRequest) (*genomev1.PinResponse, error) {
	p, ref, err := personaAndRef(req.GetPersonaId(), req.GetPage())
	if err != nil {
		return nil, g.err(err)
	}
	rp, err := g.s.Pin(ctx, p, ref)
	if err != nil {
		return nil, g.err(err)
	}
	return &genomev1.PinResponse{Resident: residentProto(rp)}, nil
}

func (g *server) Unpin(ctx context.Context, req *genomev1.UnpinRequest) (*genomev1.UnpinResponse, error) {
	p, ref, err := personaAndRef(req.GetPersonaId(), req.GetPage())
	if err != nil {
		return nil, g.err(err)
	}
	ok, err := g.s.Unpin(ctx, p, ref)
	if err != nil {
		return nil, g.err(err)
	}
	return &genomev1.UnpinResponse{Unpinned: ok}, nil
}

func (g *server) WorkingSet(ctx context.Context, req *genomev1.WorkingSetRequest) (*genomev1.WorkingSetResponse, error) {
	p, err := ParsePersonaID(req.GetPersonaId())
	if err != nil {
		return nil, g.err(err)
	}
	ws, err := g.s.WorkingSet(ctx, p)
	if err != nil {
		return nil, g.err(err)
	}
	out := &genomev1.WorkingSetResponse{PersonaId: p.String(), CapacityBytes: ws.Capacity.Total, UsedBytes: ws.Capacity.Used}
	for _, rp := range ws.Pages {
		out.Pages = append(out.Pages, residentProto(rp))
	}
	return out, nil
}

func (g *server) Tiers(context.Context, *genomev1.TiersRequest) (*genomev1.TiersResponse, error) {
	out := &genomev1.TiersResponse{}
	for _, t := range g.s.Tiers() {
		out.Tiers = append(out.Tiers, tierProto(t))
	}
	return out, nil
}

func (g *server) Prefetch(ctx context.Context, req *genomev1.PrefetchRequest) (*genomev1.PrefetchResponse, error) {
	p, err := ParsePersonaID(req.GetPersonaId())
	if err != nil {
		return nil, g.err(err)
	}
	if len(req.GetPages()) > maxPrefetchRefs {
		return nil, g.err(fmt.Errorf("%w: at most %d pages at once", ErrPageRefInvalid, maxPrefetchRefs))
	}
	refs := make([]PageRef, 0, len(req.GetPages()))
	for _, pr := range req.GetPages() {
		ref, err := refFromProto(pr)
		if err != nil {
			return nil, g.err(opErr("prefetch", p, PageRef{}, err))
		}
		refs = append(refs, ref)
	}
	res, err := g.s.Prefetch(ctx, p, refs)
	if err != nil {
		return nil, g.err(err)
	}
	return &genomev1.PrefetchResponse{Accepted: uint32(res.Accepted), AlreadyResident: uint32(res.AlreadyResident), Rejected: uint32(res.Rejected)}, nil
}
