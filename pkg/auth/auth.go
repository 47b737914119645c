// Package auth says who is calling. Every server of the mesh runs its
// interceptors (see pkg/rpc), which put two identities in the context:
//
//   - the hop: who is on the other end of this connection (a mesh peer
//     authenticated by its certificate or by being in-process, a bearer-token
//     principal, or anonymous);
//   - the caller: on whose behalf the call is made. It is the hop itself,
//     except that an authenticated mesh peer may carry an original caller in
//     metadata (the router forwarding a command). From anyone else such
//     metadata is a forgery and the call is refused.
package auth

import (
	"context"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Kind is how a principal was authenticated.
type Kind int

// The kinds of principal.
const (
	KindAnonymous Kind = iota
	KindToken
	KindMeshPeer
)

func (k Kind) String() string {
	switch k {
	case KindToken:
		return "token"
	case KindMeshPeer:
		return "mesh-peer"
	default:
		return "anonymous"
	}
}

// Anonymous is the name policies use for unauthenticated callers.
const Anonymous = "anonymous"

// PeerPrefix prefixes the principal name of a mesh node ("peer:<node>").
const PeerPrefix = "peer:"

// Principal is an authenticated identity. Name is what policy rules match:
// a token principal's configured name ("admin"), "peer:<node>" for a mesh
// node, or "anonymous".
type Principal struct {
	Name string
	Kind Kind
}

// AnonymousPrincipal is the principal of a caller that presented nothing.
var AnonymousPrincipal = Principal{Name: Anonymous, Kind: KindAnonymous}

// MeshPeer returns the principal of a mesh node.
func MeshPeer(node string) Principal {
	return Principal{Name: PeerPrefix + node, Kind: KindMeshPeer}
}

// IsMeshPeer reports whether p is an authenticated mesh node.
func (p Principal) IsMeshPeer() bool { return p.Kind == KindMeshPeer }

// Node returns the node name of a mesh peer principal, or "".
func (p Principal) Node() string {
	if p.Kind != KindMeshPeer {
		return ""
	}
	return strings.TrimPrefix(p.Name, PeerPrefix)
}

// String returns the principal's name.
func (p Principal) String() string { return p.Name }

type identityKey struct{}

// identity is what the server interceptors learned about a call: one
// context value for both principals.
type identity struct {
	hop, caller Principal
}

// WithIdentity returns ctx carrying the hop and the caller. The server
// interceptors call it; tests may too.
func WithIdentity(ctx context.Context, hop, caller Principal) context.Context {
	return context.WithValue(ctx, identityKey{}, &identity{hop: hop, caller: caller})
}

// Hop returns the principal on the other end of the connection.
func Hop(ctx context.Context) Principal {
	if id, ok := ctx.Value(identityKey{}).(*identity); ok {
		return id.hop
	}
	return AnonymousPrincipal
}

// Caller returns the principal a call is made on behalf of.
func Caller(ctx context.Context) Principal {
	if id, ok := ctx.Value(identityKey{}).(*identity); ok {
		return id.caller
	}
	return AnonymousPrincipal
}

// Metadata keys of the mesh hop.
const (
	// CallerHeader carries the original caller across an authenticated mesh
	// hop, as "<kind>:<name>" (see encodeCaller).
	CallerHeader = "x-continuum-caller"
	// AuthorizationHeader carries bearer tokens.
	AuthorizationHeader = "authorization"
)

// OnBehalfOf returns an outgoing context that asks the next mesh hop to act
// for caller. Only a mesh peer's metadata is believed, so this is useless
// (and refused) on a connection that is not an authenticated mesh hop.
func OnBehalfOf(ctx context.Context, caller Principal) context.Context {
	if len(metadata.ValueFromOutgoingContext(ctx, CallerHeader)) == 0 {
		return metadata.AppendToOutgoingContext(ctx, CallerHeader, EncodeCaller(caller))
	}
	// Replace the caller already named.
	md, _ := metadata.FromOutgoingContext(ctx) // a copy
	md.Set(CallerHeader, EncodeCaller(caller))
	return metadata.NewOutgoingContext(ctx, md)
}

// EncodeCaller renders a principal for the caller header.
func EncodeCaller(p Principal) string {
	return p.Kind.String() + ";" + p.Name
}

// DecodeCaller parses the caller header. It reports false for anything that
// is not a well-formed principal.
func DecodeCaller(s string) (Principal, bool) {
	kind, name, ok := strings.Cut(s, ";")
	if !ok || name == "" || len(name) > 256 {
		return Principal{}, false
	}
	for _, r := range name {
		if r < 0x21 || r == 0x7f {
			return Principal{}, false
		}
	}
	switch kind {
	case "anonymous":
		if name != Anonymous {
			return Principal{}, false
		}
		return AnonymousPrincipal, true
	case "token":
		return Principal{Name: name, Kind: KindToken}, true
	case "mesh-peer":
		if !strings.HasPrefix(name, PeerPrefix) {
			return Principal{}, false
		}
		return Principal{Name: name, Kind: KindMeshPeer}, true
	}
	return Principal{}, false
}
