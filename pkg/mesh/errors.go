package mesh

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// ErrorInfo reasons of the mesh. Clients switch on these, never on text.
const (
	ReasonPeerUnknown        = "PEER_UNKNOWN"
	ReasonPeerUnreachable    = "PEER_UNREACHABLE"
	ReasonServiceUnavailable = "SERVICE_UNAVAILABLE"
	ReasonOwnerDown          = "OWNER_DOWN"
	ReasonMemberUnknown      = "MEMBER_UNKNOWN"
	ReasonMemberUnavailable  = "MEMBER_UNAVAILABLE"
)

// The typed errors below each carry the fields an operator needs and
// implement GRPCStatus, so status.Code, rpcerr.Reason and the server's
// error mapping see the typed status while errors.As still finds the Go
// type. ToStatus is the one mapping to gRPC.

// ErrPeerUnknown: no member, live or remembered, hosts the peer.
type ErrPeerUnknown struct{ Peer string }

func (e *ErrPeerUnknown) Error() string {
	return fmt.Sprintf("peer %q is not hosted by any member of the mesh", e.Peer)
}

// GRPCStatus is NOT_FOUND with reason PEER_UNKNOWN.
func (e *ErrPeerUnknown) GRPCStatus() *status.Status {
	return toStatus(codes.NotFound, ReasonPeerUnknown, e.Error(), "peer", e.Peer)
}

// ErrPeerUnreachable: the peer's host is known but not alive (DEAD,
// SUSPECT, or LEFT).
type ErrPeerUnreachable struct {
	Peer   string
	Member Member
}

func (e *ErrPeerUnreachable) Error() string {
	return fmt.Sprintf("peer %q is hosted by member %q, which is %s", e.Peer, e.Member.Name, e.Member.State)
}

// GRPCStatus is UNAVAILABLE with reason PEER_UNREACHABLE.
func (e *ErrPeerUnreachable) GRPCStatus() *status.Status {
	return toStatus(codes.Unavailable, ReasonPeerUnreachable, e.Error(),
		"peer", e.Peer, "member", e.Member.Name, "state", e.Member.State.String())
}

// ErrServiceUnavailable: no live member serves the service.
type ErrServiceUnavailable struct{ Service string }

func (e *ErrServiceUnavailable) Error() string {
	return fmt.Sprintf("no live member serves %q", e.Service)
}

// GRPCStatus is UNAVAILABLE with reason SERVICE_UNAVAILABLE.
func (e *ErrServiceUnavailable) GRPCStatus() *status.Status {
	return toStatus(codes.Unavailable, ReasonServiceUnavailable, e.Error(), "service", e.Service)
}

// ErrOwnerDown: the member that owns a key of a sharded service has failed
// (or is suspected). Its keys do not move to another member, which would
// answer from an empty memory; they move when it comes back or when it is
// forgotten after Config.DeadMemberTTL.
type ErrOwnerDown struct {
	Service string
	Key     string
	Member  Member
}

func (e *ErrOwnerDown) Error() string {
	return fmt.Sprintf("owner %q of %s key %q is %s", e.Member.Name, e.Service, e.Key, e.Member.State)
}

// GRPCStatus is UNAVAILABLE with reason OWNER_DOWN and the member.
func (e *ErrOwnerDown) GRPCStatus() *status.Status {
	return toStatus(codes.Unavailable, ReasonOwnerDown, e.Error(),
		"service", e.Service, "key", rpcerr.Clip(e.Key), "member", e.Member.Name, "state", e.Member.State.String())
}

// ErrMemberUnknown: no member of that name is known.
type ErrMemberUnknown struct{ Name string }

func (e *ErrMemberUnknown) Error() string { return fmt.Sprintf("member %q is not known", e.Name) }

// GRPCStatus is NOT_FOUND with reason MEMBER_UNKNOWN.
func (e *ErrMemberUnknown) GRPCStatus() *status.Status {
	return toStatus(codes.NotFound, ReasonMemberUnknown, e.Error(), "member", e.Name)
}

// ErrMemberUnavailable: the member is known but not alive.
type ErrMemberUnavailable struct{ Member Member }

func (e *ErrMemberUnavailable) Error() string {
	return fmt.Sprintf("member %q is %s", e.Member.Name, e.Member.State)
}

// GRPCStatus is UNAVAILABLE with reason MEMBER_UNAVAILABLE.
func (e *ErrMemberUnavailable) GRPCStatus() *status.Status {
	return toStatus(codes.Unavailable, ReasonMemberUnavailable, e.Error(),
		"member", e.Member.Name, "state", e.Member.State.String())
}

// ToStatus maps a mesh error to its typed gRPC status error (code plus
// google.rpc.ErrorInfo). Context errors keep their codes; nil stays nil;
// any other error is returned unchanged for the caller's own mapping.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		return gs.GRPCStatus().Err()
	}
	if ce := rpcerr.FromContext(err); ce != nil {
		return ce
	}
	return err
}

func toStatus(code codes.Code, reason, msg string, kv ...string) *status.Status {
	return status.Convert(rpcerr.New(code, reason, msg, kv...))
}
