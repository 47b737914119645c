package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/certs"
	"github.com/continuum-mesh/continuum/pkg/certs/certstest"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

const adminToken = "mtls-test-admin-token"

// identityMesh is a test MeshService whose Members answers who called: one
// member named after the hop, whose services list the caller. With next
// set, it also asks next on behalf of its caller and appends the answer,
// as a router forwarding a command would.
type identityMesh struct {
	meshv1.UnimplementedMeshServiceServer
	next  meshv1.MeshServiceClient
	calls atomic.Int32
}

func (m *identityMesh) Members(ctx context.Context, req *meshv1.MembersRequest) (*meshv1.MembersResponse, error) {
	m.calls.Add(1)
	caller := auth.Caller(ctx)
	resp := &meshv1.MembersResponse{Members: []*meshv1.Member{{Name: auth.Hop(ctx).Name, Services: []string{caller.Name}}}}
	if m.next != nil {
		r, err := m.next.Members(auth.OnBehalfOf(ctx, caller), req)
		if err != nil {
			return nil, err
		}
		resp.Members = append(resp.Members, r.GetMembers()...)
	}
	return resp, nil
}

// startNode serves a pkg/rpc server with TLS on 127.0.0.1:0.
func startNode(t *testing.T, node string, tlsCfg *tls.Config, svc meshv1.MeshServiceServer) string {
	t.Helper()
	tokens, err := auth.NewTokens([]auth.TokenEntry{{Principal: "admin", Token: adminToken, Admin: true}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := rpc.New(rpc.Config{Node: node, Listen: "127.0.0.1:0", TLS: tlsCfg, DrainTimeout: 2 * time.Second},
		rpc.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	meshv1.RegisterMeshServiceServer(s, svc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve %s: %v", node, err)
		}
	})
	return s.Addr()
}

func dial(t *testing.T, addr string, cfg *tls.Config) meshv1.MeshServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return meshv1.NewMeshServiceClient(cc)
}

func callCtx(t *testing.T, token string, md ...string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if token != "" {
		md = append(md, "authorization", "Bearer "+token)
	}
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	return ctx
}

func member(name string, services ...string) *meshv1.Member {
	return &meshv1.Member{Name: name, Services: services}
}

// An external caller (admin token, no certificate) reaches node-a over TLS;
// node-a calls node-b over mTLS on the caller's behalf; node-b sees the hop
// as peer:node-a, proven by its certificate, and believes the caller it
// carries.
func TestMTLSCallBetweenNodes(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	serverA, clientA := ca.MeshTLS("node-a")
	serverB, _ := ca.MeshTLS("node-b")

	b := &identityMesh{}
	addrB := startNode(t, "node-b", serverB, b)
	a := &identityMesh{next: dial(t, addrB, certs.ExpectNode(clientA, "node-b"))}
	addrA := startNode(t, "node-a", serverA, a)

	// The external client verifies node-a the ordinary way: the CA and the
	// 127.0.0.1 IP SAN every node certificate carries.
	external := dial(t, addrA, &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool()})
	got, err := external.Members(callCtx(t, adminToken), &meshv1.MembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &meshv1.MembersResponse{Members: []*meshv1.Member{
		member("admin", "admin"),       // node-a: the hop is the token holder
		member("peer:node-a", "admin"), // node-b: the hop is node-a, acting for admin
	}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("Members (-want +got):\n%s", diff)
	}

	// node-a calling node-b for itself is the mesh peer itself.
	direct := dial(t, addrB, clientA)
	got, err = direct.Members(callCtx(t, ""), &meshv1.MembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&meshv1.MembersResponse{Members: []*meshv1.Member{member("peer:node-a", "peer:node-a")}}, got, protocmp.Transform()); diff != "" {
		t.Errorf("direct Members (-want +got):\n%s", diff)
	}

	// A token caller over TLS without a certificate may not carry another
	// caller's identity.
	_, err = external.Members(callCtx(t, adminToken, auth.CallerHeader, auth.EncodeCaller(auth.MeshPeer("node-b"))), &meshv1.MembersRequest{})
	if status.Code(err) != codes.Unauthenticated || rpcerr.Reason(err) != rpc.ReasonIdentityForged {
		t.Errorf("forged caller from a token holder: %v, want UNAUTHENTICATED %s", err, rpc.ReasonIdentityForged)
	}
}

// Client certificates that are not mesh node certificates of this CA fail
// the handshake: the server never runs a handler for them, so neither their
// identity nor any caller they claim in metadata is believed.
func TestNonMeshClientCertificatesAreRefused(t *testing.T) {
	t.Parallel()
	ca, foreign := certstest.NewCA(t), certstest.NewCA(t)
	serverB, _ := ca.MeshTLS("node-b")
	b := &identityMesh{}
	addrB := startNode(t, "node-b", serverB, b)

	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	_, foreignClient := foreign.MeshTLS("node-a") // a perfectly good mesh cert of another mesh
	noClientAuth := signNode(t, ca, "node-a", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, time.Now().Add(time.Hour))
	noSAN, err := ca.SignForTest(&x509.Certificate{
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: both, DNSNames: []string{"node-a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(kp *certs.KeyPair) *tls.Config {
		pair, err := kp.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}}
	}
	foreignCfg := foreignClient.Clone()
	foreignCfg.VerifyConnection = nil // trust node-b's server certificate; only the client side is under test
	foreignCfg.InsecureSkipVerify = false
	foreignCfg.RootCAs = ca.Pool()
	noCert := foreignCfg.Clone()
	noCert.Certificates = nil
	tests := []struct {
		name   string
		cfg    *tls.Config
		code   codes.Code
		reason string
	}{
		{"certificate of another CA", foreignCfg, codes.Unavailable, ""},
		{"certificate without client auth usage", withCert(noClientAuth), codes.Unavailable, ""},
		{"certificate of this CA that is not a node certificate", withCert(noSAN), codes.Unavailable, ""},
		// The control: the same client without a certificate gets through
		// the handshake as a token holder, whose claimed caller is refused.
		{"no certificate", noCert, codes.Unauthenticated, rpc.ReasonIdentityForged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addrB, tc.cfg)
			// It claims to act for admin, and presents the admin token.
			ctx := callCtx(t, adminToken, auth.CallerHeader, auth.EncodeCaller(auth.Principal{Name: "admin", Kind: auth.KindToken}))
			_, err := c.Members(ctx, &meshv1.MembersRequest{})
			if status.Code(err) != tc.code || rpcerr.Reason(err) != tc.reason {
				t.Fatalf("call: %v, want %v %q", err, tc.code, tc.reason)
			}
			t.Logf("refused: %v", err)
		})
	}
	t.Cleanup(func() {
		if n := b.calls.Load(); n != 0 {
			t.Errorf("node-b ran %d handlers for refused certificates", n)
		}
	})
}

// The mesh client verifies the server: chain to the mesh CA, server auth
// usage, a node certificate; ExpectNode also pins which node.
func TestMeshClientVerifiesServer(t *testing.T) {
	t.Parallel()
	ca, foreign := certstest.NewCA(t), certstest.NewCA(t)
	_, client := ca.MeshTLS("node-a")
	serverB, _ := ca.MeshTLS("node-b")
	foreignServer, _ := foreign.MeshTLS("node-b")
	clientOnly := signNode(t, ca, "node-b", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, time.Now().Add(time.Hour))
	clientOnlyPair, err := clientOnly.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	clientOnlyServer := serverB.Clone()
	clientOnlyServer.Certificates = []tls.Certificate{clientOnlyPair}

	good := startNode(t, "node-b", serverB, &identityMesh{})
	impostor := startNode(t, "node-b", foreignServer, &identityMesh{})
	wrongUsage := startNode(t, "node-b", clientOnlyServer, &identityMesh{})

	tests := []struct {
		name string
		addr string
		cfg  *tls.Config
		ok   bool
	}{
		{"mesh server, dialled by IP", good, client, true},
		{"mesh server, expected node", good, certs.ExpectNode(client, "node-b"), true},
		{"mesh server, another node expected", good, certs.ExpectNode(client, "node-c"), false},
		{"server of another CA", impostor, client, false},
		{"server of another CA, expected node", impostor, certs.ExpectNode(client, "node-b"), false},
		{"server certificate without server auth usage", wrongUsage, client, false},
		{"ExpectNode on an unverifying config", good, certs.ExpectNode(&tls.Config{InsecureSkipVerify: true}, "node-b"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := dial(t, tc.addr, tc.cfg).Members(callCtx(t, ""), &meshv1.MembersRequest{})
			t.Logf("err: %v", err)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("call failed: %v", err)
			case !tc.ok && status.Code(err) != codes.Unavailable:
				t.Fatalf("call: %v, want UNAVAILABLE (handshake refused)", err)
			}
		})
	}
}
