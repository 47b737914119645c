// Package certs is the mesh's own certificate authority, so that no
// outside tooling is needed to run a mesh over mTLS: `continuum certs init`
// creates a CA, `continuum certs issue` a node certificate signed by it, and
// LoadMeshTLS turns them into the server and client TLS configs of a node.
//
// A node certificate is valid for both server and client authentication
// and names its node in a URI SAN, continuum://node/<node>, which is where
// the server's auth interceptor (pkg/rpc NodeFromCert) reads a mesh peer's
// identity from. The common name is the node name too, and the DNS and IP
// SANs are the hosts it may be dialled by, though mesh clients do not rely
// on them (see LoadMeshTLS).
//
// The layout of a certs directory (docs/certs.md):
//
//	ca.crt        the mesh CA certificate (give it to every node)
//	ca.key        the CA's private key, 0600 (keep it where certificates are issued)
//	<node>.crt    a node certificate
//	<node>.key    its private key, 0600
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names in a certs directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// NodeCertFile and NodeKeyFile name a node's files in a certs directory.
func NodeCertFile(node string) string { return node + ".crt" }

// NodeKeyFile is the file name of a node's private key.
func NodeKeyFile(node string) string { return node + ".key" }

// KeyType is the kind of key a CA or node gets.
type KeyType string

// The key types. ECDSA P-256 is the default: every TLS stack speaks it.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	Ed25519   KeyType = "ed25519"
)

// Default validity periods.
const (
	CAValidityYears     = 10
	DefaultNodeValidity = 365 * 24 * time.Hour
)

// Options tune InitCA and Issue.
type Options struct {
	// Force replaces existing files instead of refusing to.
	Force bool
	// KeyType of the new key; "" is ECDSAP256.
	KeyType KeyType
	// Validity of the new certificate; zero is 10 years for a CA and
	// DefaultNodeValidity for a node. A node certificate never outlives
	// its CA.
	Validity time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// clockSkew backdates NotBefore, so a peer whose clock is a little behind
// does not reject a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

// ErrExists is returned when a file would be overwritten without Force.
var ErrExists = errors.New("file already exists")

// The URI SAN of a node certificate is continuum://node/<node>.
const (
	uriScheme = "continuum"
	uriHost   = "node"
)

// NodeURI returns the URI SAN naming a node.
func NodeURI(node string) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: uriHost, Path: "/" + node}
}

// NodeName returns the node a certificate names in its URI SAN
// continuum://node/<node>. It reports false when there is no such SAN,
// more than one, or the name is not a valid node name. It does not verify
// the certificate.
func NodeName(cert *x509.Certificate) (string, bool) {
	name := ""
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme || u.Host != uriHost {
			continue
		}
		if name != "" {
			return "", false // ambiguous
		}
		name = strings.TrimPrefix(u.Path, "/")
		if ValidateNodeName(name) != nil || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", false
		}
	}
	return name, name != ""
}

// MaxNodeNameLength bounds a node name (a DNS name's limit).
const MaxNodeNameLength = 253

// ValidateNodeName accepts 1 to 253 letters, digits, '-', '_' and '.',
// starting with a letter or digit (so no name is "." or "..", and none
// reads as a flag). "ca" is reserved: its files would be the CA's.
func ValidateNodeName(node string) error {
	switch {
	case node == "":
		return errors.New("node name is empty")
	case len(node) > MaxNodeNameLength:
		return fmt.Errorf("node name is longer than %d characters", MaxNodeNameLength)
	case strings.EqualFold(node, "ca"):
		return errors.New(`node name "ca" is reserved for the CA's own files`)
	case !isAlnum(node[0]):
		return fmt.Errorf("node name %q must start with a letter or digit", node)
	}
	for i := 0; i < len(node); i++ {
		if c := node[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("node name %q has %q; use letters, digits, '-', '_' and '.'", node, c)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// CA is a certificate authority in memory: its certificate and its key.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// NewCA creates a self-signed mesh CA (10 years unless opts.Validity says
// otherwise) in memory. It may sign node certificates only, not other CAs.
func NewCA(opts Options) (*CA, error) {
	key, err := newKey(opts.KeyType)
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	now := opts.now()
	notAfter := now.AddDate(CAValidityYears, 0, 0)
	if opts.Validity > 0 {
		notAfter = now.Add(opts.Validity)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Continuum mesh CA", Organization: []string{"Continuum mesh"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new CA: %w", err)
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// KeyPEM returns the CA's private key as PKCS #8 PEM.
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.key) }

// Pool returns a pool holding the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// LoadCA reads ca.crt and ca.key from dir and checks that they belong
// together and make a usable CA.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w (run certs init first)", err)
	}
	kp, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	ca, err := ParseCA(certPEM, kp)
	if err != nil {
		return nil, fmt.Errorf("load CA from %s: %w", dir, err)
	}
	return ca, nil
}

// ParseCA builds a CA from its certificate and key in PEM. The key may be
// PKCS #8 (any of ECDSA, Ed25519, RSA), SEC 1 EC or PKCS #1 RSA, so a CA made
// with other tools can issue node certificates too.
func ParseCA(certPEM, keyPEMBytes []byte) (*CA, error) {
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("CA certificate is not a CA (no basic constraints CA:true or no certSign usage)")
	}
	key, err := parseKeyPEM(keyPEMBytes)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("CA key does not belong to the CA certificate")
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), key: key}, nil
}

// KeyPair is a node certificate and its key.
type KeyPair struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// TLSCertificate returns the pair for a tls.Config.
func (kp *KeyPair) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
}

// Issue signs a node certificate in memory: CommonName and URI SAN name the
// node, usable for server and client authentication, with DNS and IP SANs
// for hosts plus the node name, "localhost", 127.0.0.1 and ::1.
func (ca *CA) Issue(node string, hosts []string, opts Options) (*KeyPair, error) {
	if err := ValidateNodeName(node); err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	dns, ips, err := sans(node, hosts)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", node, err)
	}
	now := opts.now()
	if !now.Before(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("issue %s: the CA expired at %s", node, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = DefaultNodeValidity
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	key, err := newKey(opts.KeyType)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", node, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", node, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node, Organization: []string{"Continuum mesh"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{NodeURI(node)},
		DNSNames:     dns,
		IPAddresses:  ips,
		// BasicConstraints CA:false, so a node cannot pose as a CA.
		BasicConstraintsValid: true,
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", node, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", node, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", node, err)
	}
	return &KeyPair{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: kp}, nil
}

// sans returns the DNS names and IPs of a node certificate, deduplicated,
// in a stable order: the node name, the hosts as given, then localhost.
func sans(node string, hosts []string) ([]string, []net.IP, error) {
	var dns []string
	var ips []net.IP
	seenDNS := map[string]bool{}
	addDNS := func(h string) {
		if k := strings.ToLower(h); !seenDNS[k] {
			seenDNS[k] = true
			dns = append(dns, h)
		}
	}
	addIP := func(ip net.IP) {
		for _, x := range ips {
			if x.Equal(ip) {
				return
			}
		}
		ips = append(ips, ip)
	}
	addDNS(node)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			addIP(ip)
			continue
		}
		if err := validateHost(h); err != nil {
			return nil, nil, err
		}
		addDNS(strings.TrimSuffix(h, "."))
	}
	addDNS("localhost")
	addIP(net.IPv4(127, 0, 0, 1))
	addIP(net.IPv6loopback)
	return dns, ips, nil
}

// validateHost accepts DNS names of letters, digits, '-', '_' and dots,
// with non-empty labels of at most 63 characters, and a wildcard only as
// the whole first label ("*.mesh.example").
func validateHost(h string) error {
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host %q is not an IP address or a DNS name", h)
	}
	for i, label := range strings.Split(name, ".") {
		if label == "*" && i == 0 && strings.Contains(name, ".") {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is not an IP address or a DNS name", h)
		}
		for j := 0; j < len(label); j++ {
			if c := label[j]; !isAlnum(c) && c != '-' && c != '_' {
				return fmt.Errorf("host %q is not an IP address or a DNS name", h)
			}
		}
	}
	return nil
}

func newKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown key type %q (want %s or %s)", t, ECDSAP256, Ed25519)
}

// newSerial returns a random positive 128-bit serial number.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no CERTIFICATE block in PEM")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no private key block in PEM")
		}
		var k any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// InitCA creates a mesh CA and writes ca.crt and ca.key (0600) into dir,
// creating dir (0700) if needed. It refuses to overwrite either file unless
// opts.Force: a new CA invalidates every node certificate of the old one.
func InitCA(dir string, opts Options) error {
	files := []string{filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)}
	if err := prepare(dir, files, opts.Force); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	ca, err := NewCA(opts)
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	kp, err := ca.KeyPEM()
	if err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	// The key first: a crash between the two leaves a key without a
	// certificate, which no one trusts.
	if err := writeFileAtomic(files[1], kp, 0o600); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	if err := writeFileAtomic(files[0], ca.CertPEM, 0o644); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	return nil
}

// Issue signs a node certificate with the CA in dir and writes <node>.crt
// and <node>.key (0600) beside it. It refuses to overwrite either unless
// opts.Force. See CA.Issue for what the certificate holds.
func Issue(dir, node string, hosts []string, opts Options) error {
	if err := ValidateNodeName(node); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	files := []string{filepath.Join(dir, NodeCertFile(node)), filepath.Join(dir, NodeKeyFile(node))}
	if err := prepare(dir, files, opts.Force); err != nil {
		return fmt.Errorf("issue %s: %w", node, err)
	}
	ca, err := LoadCA(dir)
	if err != nil {
		return fmt.Errorf("issue %s: %w", node, err)
	}
	kp, err := ca.Issue(node, hosts, opts)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(files[1], kp.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("issue %s: %w", node, err)
	}
	if err := writeFileAtomic(files[0], kp.CertPEM, 0o644); err != nil {
		return fmt.Errorf("issue %s: %w", node, err)
	}
	return nil
}

// prepare creates dir and, unless force, refuses when any of files exists.
func prepare(dir string, files []string, force bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if force {
		return nil
	}
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("%s: %w (use --force to replace it)", f, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory (created 0600, so a key is never readable by others, then
// given perm), fsynced and renamed over path, and fsyncs the directory.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err == nil {
		if _, err = bytes.NewReader(data).WriteTo(f); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
