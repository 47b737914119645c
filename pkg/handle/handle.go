// Package handle lets a service mint a handle on a resource it owns, so that
// later commands carrying the handle are routed back to the owning node. A
// handler mints by setting a response header; the router reads it and
// returns a routerv1.Handle naming the service, the node, the id and a type
// tag.
package handle

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Header is the response header a handler sets to mint a handle, as
// "<type_tag>;<id>".
const Header = "x-continuum-handle"

// Mint sets the handle header on the current call. It must be called before
// the handler returns.
func Mint(ctx context.Context, typeTag, id string) error {
	if typeTag == "" || id == "" || strings.ContainsAny(typeTag, ";\r\n") || strings.ContainsAny(id, "\r\n") {
		return errors.New("handle: type tag and id must be non-empty single-line values")
	}
	return grpc.SetHeader(ctx, metadata.Pairs(Header, typeTag+";"+id))
}

// Parse reads a minted handle from response headers.
func Parse(md metadata.MD) (typeTag, id string, ok bool) {
	vals := md.Get(Header)
	if len(vals) != 1 {
		return "", "", false
	}
	typeTag, id, ok = strings.Cut(vals[0], ";")
	if !ok || typeTag == "" || id == "" {
		return "", "", false
	}
	return typeTag, id, true
}
