package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/gateway"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

func TestRunCLIRefuses(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--nope"},
		{"extra"},
		{"--http-tls-cert", "c.pem"},
		{"--tls-server-name", "n"},
		{"--target", "10.0.0.1:7400"},
		{"--http", "0.0.0.0:8080"},
	} {
		err := gateway.RunCLI(context.Background(), args, io.Discard, discard())
		if !errors.Is(err, gateway.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestDialersRefuseAClientCertificate(t *testing.T) {
	t.Parallel()
	withCert := &tls.Config{Certificates: []tls.Certificate{{}}}
	if _, err := gateway.NodeDialer("127.0.0.1:1", withCert); err == nil {
		t.Error("NodeDialer accepted a client certificate")
	}
	if _, err := gateway.MeshDialer(func(string) (string, error) { return "", nil }, &tls.Config{
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, nil },
	}); err == nil {
		t.Error("MeshDialer accepted a client certificate")
	}
	if _, err := gateway.NodeDialer("", nil); err == nil {
		t.Error("an empty target was accepted")
	}
	if ext := gateway.ExternalClientTLS(withCert); len(ext.Certificates) != 0 || len(withCert.Certificates) != 1 {
		t.Error("ExternalClientTLS kept the certificate or changed its argument")
	}
}

// namedMesh answers Members with one member named after it.
type namedMesh struct {
	meshv1.UnimplementedMeshServiceServer
	name string
}

func (m namedMesh) Members(context.Context, *meshv1.MembersRequest) (*meshv1.MembersResponse, error) {
	return &meshv1.MembersResponse{Members: []*meshv1.Member{{Name: m.name}}}, nil
}

// TestMeshDialerFollowsTheService moves a service between two servers and
// then away from every member.
func TestMeshDialerFollowsTheService(t *testing.T) {
	t.Parallel()
	addrs := map[string]string{}
	for _, name := range []string{"a", "b"} {
		srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) { meshv1.RegisterMeshServiceServer(r, namedMesh{name: name}) })
		addrs[name] = srv.Addr()
	}
	var mu sync.Mutex
	where := "a"
	dial, err := gateway.MeshDialer(func(service string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if addr, ok := addrs[where]; ok && service == "mesh" {
			return addr, nil
		}
		return "", errors.New("no member serves it")
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, base := startGateway(t, gateway.Config{}, dial)
	for _, w := range []string{"a", "b", "a"} {
		mu.Lock()
		where = w
		mu.Unlock()
		var got struct{ Members []struct{ Name string } }
		decode(t, call(t, "GET", base+"/v1/mesh/members", rpctest.UserToken, ""), &got)
		if len(got.Members) != 1 || got.Members[0].Name != w {
			t.Errorf("served by %+v, want %s", got.Members, w)
		}
	}
	mu.Lock()
	where = "gone"
	mu.Unlock()
	b := errorOf(t, call(t, "GET", base+"/v1/mesh/members", rpctest.UserToken, ""))
	if b.HTTPStatus != 503 || b.Reason != gateway.ReasonServiceUnavailable || b.Metadata["service"] != "mesh" {
		t.Errorf("with no member: %+v", b)
	}
}

// TestRunCLIServes runs `continuum gateway` against a test server, reads
// members through it and stops it.
func TestRunCLIServes(t *testing.T) {
	t.Parallel()
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) { meshv1.RegisterMeshServiceServer(r, benchMesh{}) })
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- gateway.RunCLI(ctx, []string{"--http", "127.0.0.1:0", "--target", srv.Addr()}, pw, discard())
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	base, _, ok := strings.Cut(strings.TrimPrefix(line, "gateway: "), "/ (status page)")
	if !ok {
		t.Fatalf("output %q", line)
	}
	resp := call(t, "GET", base+"/v1/mesh/members", rpctest.UserToken, "")
	var got struct{ Members []struct{ Name string } }
	decode(t, resp, &got)
	if resp.StatusCode != http.StatusOK || len(got.Members) != 3 {
		t.Errorf("status %d, members %+v", resp.StatusCode, got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("RunCLI did not return")
	}
}
