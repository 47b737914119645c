package node

import (
	"crypto/tls"
	"fmt"

	"github.com/continuum-mesh/continuum/pkg/certs"
)

// loadTLS builds the server and client TLS configs of a node: mTLS with a
// mesh CA when one is given (members recognise each other by certificate),
// server-only TLS for a single node that just encrypts its callers, or
// plaintext.
func loadTLS(cfg Config) (server, client *tls.Config, err error) {
	switch {
	case cfg.TLSCert == "":
		return nil, nil, nil
	case cfg.TLSCA != "":
		server, client, err = certs.LoadMeshTLS(cfg.TLSCA, cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("node: %w", err)
		}
		return server, client, nil
	default:
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("node: load TLS certificate: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil, nil
	}
}

// expectNode pins a member dial to that member's certificate.
func expectNode(client *tls.Config, node string) *tls.Config {
	return certs.ExpectNode(client, node)
}
