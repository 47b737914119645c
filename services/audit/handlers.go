package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/auth"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
)

// Append records one entry for a direct caller. The server's interceptor
// has already gated callers from outside the mesh on audit/append.
func (s *Service) Append(ctx context.Context, req *auditv1.AppendRequest) (*auditv1.AppendResponse, error) {
	item, err := s.pendingOf(req, auth.Caller(ctx).Name)
	if err != nil {
		return nil, mapError(ctx, s.log, "append", err)
	}
	entries, err := s.store.append([]pendingEntry{item})
	if err != nil {
		return nil, mapError(ctx, s.log, "append", err)
	}
	e, err := entryProto(&entries[0])
	if err != nil {
		return nil, mapError(ctx, s.log, "append", err)
	}
	return &auditv1.AppendResponse{Entry: e}, nil
}

// Verify checks the whole log.
func (s *Service) Verify(ctx context.Context, _ *auditv1.VerifyRequest) (*auditv1.VerifyResponse, error) {
	res, root, err := s.store.verify(ctx)
	if err != nil {
		var ve *auditlog.VerifyError
		if errors.As(err, &ve) {
			s.log.ErrorContext(ctx, "audit log failed verification", "reason", ve.Reason, "seq", ve.Seq, "offset", ve.Offset, "detail", ve.Detail)
		}
		return nil, mapError(ctx, s.log, "verify", err)
	}
	return &auditv1.VerifyResponse{Ok: true, Size: res.Size, HeadHash: res.Head.String(), RootHash: b64(root)}, nil
}

// Read streams entries.
func (s *Service) Read(req *auditv1.ReadRequest, stream grpc.ServerStreamingServer[auditv1.ReadResponse]) error {
	ctx := stream.Context()
	err := s.store.read(ctx, req.GetFromSeq(), req.GetLimit(), func(e *auditlog.Entry) error {
		pe, err := entryProto(e)
		if err != nil {
			return err
		}
		return stream.Send(&auditv1.ReadResponse{Entry: pe})
	})
	return mapError(ctx, s.log, "read", err)
}

// Checkpoint signs the current tree head. The note for a size is signed
// once and reused until the log grows.
func (s *Service) Checkpoint(ctx context.Context, _ *auditv1.CheckpointRequest) (*auditv1.CheckpointResponse, error) {
	size, root, err := s.store.treeHead()
	if err != nil {
		return nil, mapError(ctx, s.log, "checkpoint", err)
	}
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	if s.cp != nil && s.cp.GetSize() == size {
		return s.cp, nil
	}
	cp := auditlog.Checkpoint{Origin: s.cfg.Origin, Size: size, Root: root}
	signed, err := auditlog.SignCheckpoint(cp, s.key.signer)
	if err != nil {
		return nil, mapError(ctx, s.log, "checkpoint", err)
	}
	s.cp = &auditv1.CheckpointResponse{Note: string(signed), Origin: cp.Origin, Size: size, RootHash: b64(root)}
	return s.cp, nil
}

// InclusionProof proves an entry is in a tree.
func (s *Service) InclusionProof(ctx context.Context, req *auditv1.InclusionProofRequest) (*auditv1.InclusionProofResponse, error) {
	proof, leaf, root, size, err := s.store.inclusionProof(req.GetSeq(), req.GetTreeSize())
	if err != nil {
		return nil, mapError(ctx, s.log, "inclusion proof", err)
	}
	return &auditv1.InclusionProofResponse{
		Seq: req.GetSeq(), TreeSize: size, LeafHash: b64(leaf), Hashes: b64s(proof), RootHash: b64(root),
	}, nil
}

// ConsistencyProof proves one tree extends another.
func (s *Service) ConsistencyProof(ctx context.Context, req *auditv1.ConsistencyProofRequest) (*auditv1.ConsistencyProofResponse, error) {
	proof, oldRoot, newRoot, size, err := s.store.consistencyProof(req.GetOldSize(), req.GetNewSize())
	if err != nil {
		return nil, mapError(ctx, s.log, "consistency proof", err)
	}
	return &auditv1.ConsistencyProofResponse{
		OldSize: req.GetOldSize(), NewSize: size, Hashes: b64s(proof), OldRootHash: b64(oldRoot), NewRootHash: b64(newRoot),
	}, nil
}

// PublicKey returns the checkpoint verifier key.
func (s *Service) PublicKey(context.Context, *auditv1.PublicKeyRequest) (*auditv1.PublicKeyResponse, error) {
	return &auditv1.PublicKeyResponse{VerifierKey: s.key.verifier, Origin: s.cfg.Origin}, nil
}

// entryProto converts an entry for the wire.
func entryProto(e *auditlog.Entry) (*auditv1.Entry, error) {
	payload, err := structpb.NewStruct(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("entry %d payload: %w", e.Seq, err)
	}
	return &auditv1.Entry{
		Seq:            e.Seq,
		TimestampMs:    e.TimestampMs,
		RawTimestampMs: e.RawTimestampMs,
		Kind:           e.Kind,
		Payload:        payload,
		ChainHash:      e.ChainHash.String(),
		PrevChainHash:  e.PrevChainHash.String(),
		Source: &auditv1.Source{
			Topic: e.Source.Topic, StreamSequence: e.Source.StreamSequence, Publisher: e.Source.Publisher,
		},
	}, nil
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

func b64s(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = b64(h)
	}
	return out
}
