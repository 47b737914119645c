package certs_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/continuum-mesh/continuum/pkg/certs"
	"github.com/continuum-mesh/continuum/pkg/certs/certstest"
	"github.com/continuum-mesh/continuum/pkg/rpc"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signNode signs a node certificate with chosen usages and expiry, which
// Issue would never make.
func signNode(t *testing.T, ca *certstest.CA, node string, usages []x509.ExtKeyUsage, notAfter time.Time) *certs.KeyPair {
	t.Helper()
	kp, err := ca.SignForTest(&x509.Certificate{
		Subject:     pkix.Name{CommonName: node},
		NotBefore:   time.Now().Add(-2 * time.Hour),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usages,
		URIs:        []*url.URL{certs.NodeURI(node)},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestInitCAAndIssue(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "certs")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	if err := certs.InitCA(dir, certs.Options{Now: clock}); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(dir, "ca.key")); m != 0o600 {
		t.Errorf("ca.key mode %v, want 0600", m)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("certs dir mode %v, want 0700", m)
	}
	ca, err := certs.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.IsCA || !ca.Cert.MaxPathLenZero || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA certificate: IsCA %v MaxPathLenZero %v usage %v", ca.Cert.IsCA, ca.Cert.MaxPathLenZero, ca.Cert.KeyUsage)
	}
	if want := now.AddDate(10, 0, 0); !ca.Cert.NotAfter.Equal(want) {
		t.Errorf("CA NotAfter %v, want %v", ca.Cert.NotAfter, want)
	}
	if _, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("CA key %T, want ECDSA", ca.Cert.PublicKey)
	}

	if err := certs.Issue(dir, "node-1", []string{"10.0.0.5", "node-1.mesh.example", "10.0.0.5", "NODE-1"}, certs.Options{Now: clock}); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(dir, "node-1.key")); m != 0o600 {
		t.Errorf("node-1.key mode %v, want 0600", m)
	}
	if m := mode(t, filepath.Join(dir, "node-1.crt")); m != 0o644 {
		t.Errorf("node-1.crt mode %v, want 0644", m)
	}
	leaf := readCert(t, filepath.Join(dir, "node-1.crt"))
	got := struct {
		CN       string
		URIs     []string
		DNS      []string
		IPs      []string
		ExtUsage []x509.ExtKeyUsage
		IsCA     bool
		NotAfter time.Time
	}{CN: leaf.Subject.CommonName, DNS: leaf.DNSNames, ExtUsage: leaf.ExtKeyUsage, IsCA: leaf.IsCA, NotAfter: leaf.NotAfter}
	for _, u := range leaf.URIs {
		got.URIs = append(got.URIs, u.String())
	}
	for _, ip := range leaf.IPAddresses {
		got.IPs = append(got.IPs, ip.String())
	}
	want := got
	want.CN = "node-1"
	want.URIs = []string{"continuum://node/node-1"}
	want.DNS = []string{"node-1", "node-1.mesh.example", "localhost"}
	want.IPs = []string{"10.0.0.5", "127.0.0.1", "::1"}
	want.ExtUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	want.IsCA = false
	want.NotAfter = now.Add(certs.DefaultNodeValidity)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("node certificate (-want +got):\n%s", diff)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("node certificate does not verify: %v", err)
	}
	// pkg/rpc reads the same identity.
	if n := rpc.NodeFromCert(leaf); n != "node-1" {
		t.Errorf("rpc.NodeFromCert = %q, want node-1", n)
	}
	if n, ok := certs.NodeName(leaf); !ok || n != "node-1" {
		t.Errorf("NodeName = %q, %v", n, ok)
	}
}

func TestNoOverwriteWithoutForce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := certs.InitCA(dir, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err := certs.InitCA(dir, certs.Options{}); !errors.Is(err, certs.ErrExists) {
		t.Fatalf("second InitCA: %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); string(after) != string(before) {
		t.Fatal("refused InitCA changed ca.crt")
	}
	if err := certs.Issue(dir, "n1", nil, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := certs.Issue(dir, "n1", nil, certs.Options{}); !errors.Is(err, certs.ErrExists) {
		t.Fatalf("second Issue: %v, want ErrExists", err)
	}
	if err := certs.Issue(dir, "n1", nil, certs.Options{Force: true}); err != nil {
		t.Fatalf("Issue with Force: %v", err)
	}
	if err := certs.InitCA(dir, certs.Options{Force: true}); err != nil {
		t.Fatalf("InitCA with Force: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); string(after) == string(before) {
		t.Fatal("InitCA with Force kept the old CA")
	}
	// The old node certificate no longer loads against the new CA.
	if _, _, err := certs.LoadMeshTLS(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n1.crt"), filepath.Join(dir, "n1.key")); err == nil {
		t.Fatal("a certificate of the replaced CA still loads")
	}
	// A lone key (say, from an interrupted init) also blocks.
	only := t.TempDir()
	if err := os.WriteFile(filepath.Join(only, "ca.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := certs.InitCA(only, certs.Options{}); !errors.Is(err, certs.ErrExists) {
		t.Fatalf("InitCA over a lone key: %v, want ErrExists", err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"ca.crt", "ca.key", "n1.crt", "n1.key"}, names); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}

func TestEd25519(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := certs.Options{KeyType: certs.Ed25519}
	if err := certs.InitCA(dir, opts); err != nil {
		t.Fatal(err)
	}
	if err := certs.Issue(dir, "n1", nil, opts); err != nil {
		t.Fatal(err)
	}
	leaf := readCert(t, filepath.Join(dir, "n1.crt"))
	if _, ok := leaf.PublicKey.(ed25519.PublicKey); !ok {
		t.Errorf("node key %T, want Ed25519", leaf.PublicKey)
	}
	if _, _, err := certs.LoadMeshTLS(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n1.crt"), filepath.Join(dir, "n1.key")); err != nil {
		t.Fatal(err)
	}
	if err := certs.InitCA(t.TempDir(), certs.Options{KeyType: "rsa"}); err == nil {
		t.Error("unknown key type accepted")
	}
}

func TestNodeCertificateNeverOutlivesCA(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, err := certs.NewCA(certs.Options{Validity: 48 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue("n1", nil, certs.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if !kp.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("node NotAfter %v, CA NotAfter %v", kp.Cert.NotAfter, ca.Cert.NotAfter)
	}
	if _, err := ca.Issue("n2", nil, certs.Options{Now: func() time.Time { return now.Add(72 * time.Hour) }}); err == nil {
		t.Error("an expired CA issued a certificate")
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	for _, node := range []string{"", "ca", "CA", ".hidden", "-flag", "a b", "a/b", "../x", "é", string(make([]byte, 254))} {
		if _, err := ca.CA.Issue(node, nil, certs.Options{}); err == nil {
			t.Errorf("Issue accepted node name %q", node)
		}
	}
	for _, node := range []string{"n", "node-1", "node_1", "rig.lan", "5090-rig"} {
		if _, err := ca.CA.Issue(node, nil, certs.Options{}); err != nil {
			t.Errorf("Issue refused node name %q: %v", node, err)
		}
	}
	for _, host := range []string{"", "a..b", "-a.b", "a b", "x/y", "*", "a.*.b", "http://x"} {
		if _, err := ca.CA.Issue("n", []string{host}, certs.Options{}); err == nil {
			t.Errorf("Issue accepted host %q", host)
		}
	}
	for _, host := range []string{"*.mesh.example", "mesh.example.", "fe80::1", "10.1.2.3", "svc_a.local"} {
		if _, err := ca.CA.Issue("n", []string{host}, certs.Options{}); err != nil {
			t.Errorf("Issue refused host %q: %v", host, err)
		}
	}
}

func TestIssueWithoutCA(t *testing.T) {
	t.Parallel()
	err := certs.Issue(t.TempDir(), "n1", nil, certs.Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Issue without a CA: %v, want ErrNotExist", err)
	}
}

func TestParseCA(t *testing.T) {
	t.Parallel()
	a, b := certstest.NewCA(t), certstest.NewCA(t)
	bKey, err := b.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs.ParseCA(a.CertPEM, bKey); err == nil {
		t.Error("ParseCA accepted another CA's key")
	}
	leaf := a.Issue("n1")
	if _, err := certs.ParseCA(leaf.CertPEM, leaf.KeyPEM); err == nil {
		t.Error("ParseCA accepted a node certificate as a CA")
	}
	aKey, _ := a.KeyPEM()
	if _, err := certs.ParseCA(a.CertPEM, aKey); err != nil {
		t.Errorf("ParseCA: %v", err)
	}
}

func TestMeshTLSRefusesBadNodeCertificates(t *testing.T) {
	t.Parallel()
	ca, other := certstest.NewCA(t), certstest.NewCA(t)
	good := ca.Issue("n1")
	noSAN, err := ca.SignForTest(&x509.Certificate{
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature, DNSNames: []string{"n1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	serverOnly := signNode(t, ca, "n1", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, time.Now().Add(time.Hour))
	expired := signNode(t, ca, "n1", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, time.Now().Add(-time.Minute))
	tests := []struct {
		name            string
		caPEM           []byte
		certPEM, keyPEM []byte
	}{
		{"foreign CA", other.CertPEM, good.CertPEM, good.KeyPEM},
		{"no CA", []byte("not pem"), good.CertPEM, good.KeyPEM},
		{"key of another certificate", ca.CertPEM, good.CertPEM, ca.Issue("n2").KeyPEM},
		{"no URI SAN", ca.CertPEM, noSAN.CertPEM, noSAN.KeyPEM},
		{"no client auth", ca.CertPEM, serverOnly.CertPEM, serverOnly.KeyPEM},
		{"expired", ca.CertPEM, expired.CertPEM, expired.KeyPEM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := certs.MeshTLS(tc.caPEM, tc.certPEM, tc.keyPEM); err == nil {
				t.Error("MeshTLS accepted it")
			}
		})
	}
	// A CA file holding two CAs (a rotation) accepts certificates of both.
	both := append(append([]byte{}, other.CertPEM...), ca.CertPEM...)
	if _, _, err := certs.MeshTLS(both, good.CertPEM, good.KeyPEM); err != nil {
		t.Errorf("MeshTLS with two CAs: %v", err)
	}
}

func TestLoadMeshTLSFiles(t *testing.T) {
	t.Parallel()
	dir := certstest.NewCA(t).WriteDir("n1")
	server, client, err := certs.LoadMeshTLS(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n1.crt"), filepath.Join(dir, "n1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if server.MinVersion != 0x0304 || client.MinVersion != 0x0304 {
		t.Errorf("MinVersion %x / %x, want TLS 1.3", server.MinVersion, client.MinVersion)
	}
	if _, _, err := certs.LoadMeshTLS(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "missing.crt"), filepath.Join(dir, "n1.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestNodeName(t *testing.T) {
	t.Parallel()
	ca := certstest.NewCA(t)
	two, err := ca.SignForTest(&x509.Certificate{
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{certs.NodeURI("a"), certs.NodeURI("b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := certs.NodeName(two.Cert); ok {
		t.Errorf("NodeName of a certificate naming two nodes = %q", n)
	}
}
