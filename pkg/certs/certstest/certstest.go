// Package certstest is a mesh CA for tests: it issues node certificates in
// memory, never touching disk unless asked, and hands out the TLS configs
// pkg/certs would build from files.
package certstest

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/certs"
)

// CA is an in-memory mesh CA bound to a test.
type CA struct {
	*certs.CA
	t testing.TB
}

// NewCA returns a fresh ECDSA P-256 mesh CA.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatalf("certstest: %v", err)
	}
	return &CA{CA: ca, t: t}
}

// Issue returns a node certificate for node, valid for hosts plus the
// defaults (the node name, localhost, 127.0.0.1, ::1).
func (c *CA) Issue(node string, hosts ...string) *certs.KeyPair {
	c.t.Helper()
	kp, err := c.CA.Issue(node, hosts, certs.Options{})
	if err != nil {
		c.t.Fatalf("certstest: %v", err)
	}
	return kp
}

// MeshTLS issues a certificate for node and returns its server and client
// configs, exactly as certs.LoadMeshTLS would from files.
func (c *CA) MeshTLS(node string) (server, client *tls.Config) {
	c.t.Helper()
	kp := c.Issue(node)
	server, client, err := certs.MeshTLS(c.CertPEM, kp.CertPEM, kp.KeyPEM)
	if err != nil {
		c.t.Fatalf("certstest: %v", err)
	}
	return server, client
}

// WriteDir writes the CA certificate and key and a certificate for each
// node into a fresh temporary directory, in the layout certs init and
// certs issue make, and returns the directory. For code that takes file
// paths.
func (c *CA) WriteDir(nodes ...string) string {
	c.t.Helper()
	dir := c.t.TempDir()
	key, err := c.KeyPEM()
	if err != nil {
		c.t.Fatalf("certstest: %v", err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			c.t.Fatalf("certstest: %v", err)
		}
	}
	write(certs.CACertFile, c.CertPEM)
	write(certs.CAKeyFile, key)
	for _, n := range nodes {
		kp := c.Issue(n)
		write(certs.NodeCertFile(n), kp.CertPEM)
		write(certs.NodeKeyFile(n), kp.KeyPEM)
	}
	return dir
}
