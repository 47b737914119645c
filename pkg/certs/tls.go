package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// LoadMeshTLS reads the mesh CA and a node's certificate and key and
// returns the node's TLS configs (see MeshTLS).
func LoadMeshTLS(caFile, certFile, keyFile string) (server, client *tls.Config, err error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load mesh TLS: %w", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load mesh TLS: %w", err)
	}
	keyPEMBytes, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load mesh TLS: %w", err)
	}
	server, client, err = MeshTLS(caPEM, certPEM, keyPEMBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("load mesh TLS %s: %w", certFile, err)
	}
	return server, client, nil
}

// MeshTLS returns a node's TLS configs from the mesh CA certificates (one
// or more: during a CA rotation the file holds the old and the new CA) and
// the node's certificate and key, all PEM. It checks the node certificate
// now, so a wrong, expired or foreign certificate fails at start-up rather
// than at every handshake.
//
// The server config (TLS 1.3) presents the node certificate and verifies a
// client certificate if one is given (tls.VerifyClientCertIfGiven) against
// the mesh CA: external callers connect without one and present bearer
// tokens, mesh peers present their node certificate and are known by it. A
// client certificate that does not chain to the mesh CA with the client
// auth usage, or that is not a mesh node certificate, fails the handshake:
// it is never mistaken for a mesh peer, and no identity it carries in
// metadata is believed.
//
// The client config (TLS 1.3) presents the node certificate and verifies
// the server's: the chain must lead to the mesh CA, with the server auth
// usage, and the leaf must be a mesh node certificate (a
// continuum://node/<name> URI SAN). It deliberately does not compare the
// dialled host with the certificate's SANs, because nodes dial each other
// by the IP:port that memberlist gossips, which no certificate can list in
// advance. That is safe because only the holder of the mesh CA's key can
// mint a certificate that passes, so the server is some node of this mesh.
// Which node is a separate question: ExpectNode pins that when the caller
// knows (memberlist gossips node names with their addresses).
func MeshTLS(caPEM, certPEM, keyPEM []byte) (server, client *tls.Config, err error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, errors.New("no CA certificate in the CA file")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("node certificate and key: %w", err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("node certificate: %w", err)
		}
	}
	node, ok := NodeName(leaf)
	if !ok {
		return nil, nil, errors.New("not a mesh node certificate: no continuum://node/<name> URI SAN (issue one with certs issue)")
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: intermediates(pair.Certificate[1:]), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, nil, fmt.Errorf("node certificate for %s does not verify against the mesh CA for %s: %w", node, usageName(usage), err)
		}
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
		// Runs after the standard verification of a client certificate
		// (chain and client auth usage); it also runs on resumed sessions.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil // an external caller; it authenticates with a token
			}
			if _, ok := NodeName(cs.PeerCertificates[0]); !ok {
				return errors.New("client certificate is not a mesh node certificate")
			}
			return nil
		},
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		// The standard verification would also match the dialled host
		// against the SANs; verifyServer does everything else (see above).
		InsecureSkipVerify: true, //nolint:gosec // verifyServer checks the chain against the mesh CA.
		VerifyConnection:   verifyServer(pool),
	}
	return server, client, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageServerAuth {
		return "server auth"
	}
	return "client auth"
}

func intermediates(ders [][]byte) *x509.CertPool {
	p := x509.NewCertPool()
	for _, der := range ders {
		if c, err := x509.ParseCertificate(der); err == nil {
			p.AddCert(c)
		}
	}
	return p
}

// verifyServer checks a server's certificate chain against the mesh CA for
// server auth, and that it names a mesh node. It is a VerifyConnection
// hook rather than VerifyPeerCertificate because VerifyConnection also runs
// on resumed sessions.
func verifyServer(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		chain := cs.PeerCertificates
		if len(chain) == 0 {
			return errors.New("mesh TLS: the server presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := chain[0].Verify(opts); err != nil {
			return fmt.Errorf("mesh TLS: the server's certificate does not verify against the mesh CA: %w", err)
		}
		if _, ok := NodeName(chain[0]); !ok {
			return errors.New("mesh TLS: the server's certificate is not a mesh node certificate")
		}
		return nil
	}
}

// ExpectNode returns a copy of a client config (from MeshTLS or
// LoadMeshTLS) that also requires the server's certificate to name node,
// for a caller that knows which node it means to reach. A config that does
// not verify the server at all (InsecureSkipVerify without a
// VerifyConnection hook) gets one that fails every handshake rather than a
// pin on an unverified certificate.
func ExpectNode(cfg *tls.Config, node string) *tls.Config {
	c := cfg.Clone()
	prev := c.VerifyConnection
	unverified := c.InsecureSkipVerify && prev == nil
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if unverified {
			return errors.New("mesh TLS: ExpectNode on a config that does not verify the server")
		}
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("mesh TLS: the server presented no certificate")
		}
		got, ok := NodeName(cs.PeerCertificates[0])
		if !ok || got != node {
			return fmt.Errorf("mesh TLS: expected node %q, the server's certificate names %q", node, got)
		}
		return nil
	}
	return c
}
