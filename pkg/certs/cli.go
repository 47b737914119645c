package certs

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultDir is the certs directory of `continuum up --data ./data`.
const DefaultDir = "data/certs"

const usage = `usage:
  continuum certs init  [--dir DIR] [--force] [--key-type ecdsa-p256|ed25519] [--validity DURATION]
  continuum certs issue [--dir DIR] --node NAME [--host HOST]... [--force] [--key-type ...] [--validity DURATION]

init   creates the mesh CA: DIR/ca.crt and DIR/ca.key (0600). Valid 10 years
       unless --validity says otherwise.
issue  signs a certificate for one node with the CA in DIR: DIR/NAME.crt and
       DIR/NAME.key (0600). It serves and dials as that node (URI SAN
       continuum://node/NAME); --host adds DNS names or IP addresses it may be
       reached by (repeat it, or separate with commas); NAME, localhost,
       127.0.0.1 and ::1 are always included. Valid 1 year (never longer
       than the CA) unless --validity says otherwise.

Neither overwrites an existing file without --force. DIR defaults to data/certs.
`

// RunCLI runs `continuum certs <args>`: args are what follows "certs"
// ("init --dir D", "issue --dir D --node n1 --host 10.0.0.5"). It reports
// what it wrote to out and returns usage and operation errors for the
// caller to print; -h prints the usage and returns nil.
func RunCLI(args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return errors.New("certs: give a command: init or issue")
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(out, usage)
		return nil
	case "init":
		return runInit(args[1:], out)
	case "issue":
		return runIssue(args[1:], out)
	}
	return fmt.Errorf("certs: unknown command %q (want init or issue; see continuum certs -h)", args[0])
}

type commonFlags struct {
	dir      string
	force    bool
	keyType  string
	validity time.Duration
}

func newFlagSet(name string, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("certs "+name, flag.ContinueOnError)
	// Errors are returned, not printed; -h prints the usage (see parse).
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.dir, "dir", DefaultDir, "the certs directory")
	fs.BoolVar(&c.force, "force", false, "replace existing files")
	fs.StringVar(&c.keyType, "key-type", string(ECDSAP256), "ecdsa-p256 or ed25519")
	fs.DurationVar(&c.validity, "validity", 0, "how long the certificate is valid (e.g. 8760h); 0 is the default")
	return fs
}

func (c *commonFlags) options() (Options, error) {
	switch KeyType(c.keyType) {
	case ECDSAP256, Ed25519:
	default:
		return Options{}, fmt.Errorf("--key-type %q: want %s or %s", c.keyType, ECDSAP256, Ed25519)
	}
	if c.validity < 0 {
		return Options{}, fmt.Errorf("--validity %s: must not be negative", c.validity)
	}
	if c.dir == "" {
		return Options{}, errors.New("--dir must not be empty")
	}
	return Options{Force: c.force, KeyType: KeyType(c.keyType), Validity: c.validity}, nil
}

// parse parses flags; done is set when -h was asked for, and the usage
// printed.
func parse(fs *flag.FlagSet, args []string, out io.Writer) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(out, usage)
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return false, nil
}

func runInit(args []string, out io.Writer) error {
	var c commonFlags
	fs := newFlagSet("init", &c)
	if done, err := parse(fs, args, out); done || err != nil {
		return wrapUsage("init", err)
	}
	opts, err := c.options()
	if err != nil {
		return wrapUsage("init", err)
	}
	if err := InitCA(c.dir, opts); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	ca, err := LoadCA(c.dir)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	fmt.Fprintf(out, "wrote %s and %s (%s CA, valid until %s)\n",
		filepath.Join(c.dir, CACertFile), filepath.Join(c.dir, CAKeyFile), c.keyType, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(out, "next: continuum certs issue --dir %s --node <name> [--host <ip or dns name>]\n", c.dir)
	return nil
}

// hostList is a repeatable, comma-separable --host.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x == "" {
			return errors.New("empty host")
		}
		*h = append(*h, x)
	}
	return nil
}

func runIssue(args []string, out io.Writer) error {
	var c commonFlags
	var node string
	var hosts hostList
	fs := newFlagSet("issue", &c)
	fs.StringVar(&node, "node", "", "the node name (required)")
	fs.Var(&hosts, "host", "a DNS name or IP address the node is reached by (repeatable)")
	if done, err := parse(fs, args, out); done || err != nil {
		return wrapUsage("issue", err)
	}
	if node == "" {
		return wrapUsage("issue", errors.New("--node is required"))
	}
	opts, err := c.options()
	if err != nil {
		return wrapUsage("issue", err)
	}
	if err := Issue(c.dir, node, hosts, opts); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	certFile := filepath.Join(c.dir, NodeCertFile(node))
	_, _, err = LoadMeshTLS(filepath.Join(c.dir, CACertFile), certFile, filepath.Join(c.dir, NodeKeyFile(node)))
	if err != nil {
		return fmt.Errorf("certs issue: the new certificate does not load: %w", err)
	}
	kp, err := parseCertFile(certFile)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	fmt.Fprintf(out, "wrote %s and %s for node %s (%s, valid until %s)\n",
		certFile, filepath.Join(c.dir, NodeKeyFile(node)), node, NodeURI(node), kp.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(out, "DNS names: %s\nIP addresses: %s\n", strings.Join(kp.DNSNames, ", "), joinIPs(kp))
	return nil
}

func wrapUsage(cmd string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("certs %s: %w (see continuum certs -h)", cmd, err)
}

func parseCertFile(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCertPEM(b)
}

func joinIPs(c *x509.Certificate) string {
	s := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}
