package certs

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// SignForTest signs an arbitrary template with the CA, so tests can make
// certificates Issue never would (no client auth usage, no URI SAN). It
// exists only in tests.
func (ca *CA) SignForTest(tmpl *x509.Certificate) (*KeyPair, error) {
	key, err := newKey(ECDSAP256)
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber == nil {
		if tmpl.SerialNumber, err = newSerial(); err != nil {
			return nil, err
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: kp}, nil
}
