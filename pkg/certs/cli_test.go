package certs_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/continuum-mesh/continuum/pkg/certs"
)

func TestCLIInitAndIssue(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if err := certs.RunCLI([]string{"init", "--dir", dir}, &out); err != nil {
		t.Fatalf("init: %v", err)
	}
	if !strings.Contains(out.String(), filepath.Join(dir, "ca.key")) {
		t.Errorf("init output does not say what it wrote:\n%s", out.String())
	}
	out.Reset()
	err := certs.RunCLI([]string{"issue", "--dir", dir, "--node", "node-1", "--host", "10.0.0.5", "--host", "a.mesh.example,b.mesh.example", "--validity", "720h"}, &out)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	for _, want := range []string{"node-1.crt", "continuum://node/node-1", "10.0.0.5", "b.mesh.example"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("issue output lacks %q:\n%s", want, out.String())
		}
	}
	leaf := readCert(t, filepath.Join(dir, "node-1.crt"))
	if diff := cmp.Diff([]string{"node-1", "a.mesh.example", "b.mesh.example", "localhost"}, leaf.DNSNames); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 720*time.Hour || d > 721*time.Hour {
		t.Errorf("validity %v, want 720h (plus the clock-skew margin)", d)
	}
	if _, _, err := certs.LoadMeshTLS(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "node-1.crt"), filepath.Join(dir, "node-1.key")); err != nil {
		t.Errorf("issued files do not load: %v", err)
	}

	// Existing files are refused without --force, replaced with it.
	if err := certs.RunCLI([]string{"issue", "--dir", dir, "--node", "node-1"}, &out); !errors.Is(err, certs.ErrExists) {
		t.Errorf("issue over existing files: %v, want ErrExists", err)
	}
	if err := certs.RunCLI([]string{"issue", "--dir", dir, "--node", "node-1", "--force"}, &out); err != nil {
		t.Errorf("issue --force: %v", err)
	}
	if err := certs.RunCLI([]string{"init", "--dir", dir}, &out); !errors.Is(err, certs.ErrExists) {
		t.Errorf("init over an existing CA: %v, want ErrExists", err)
	}
	if err := certs.RunCLI([]string{"init", "--dir", dir, "--force", "--key-type", "ed25519"}, &out); err != nil {
		t.Errorf("init --force: %v", err)
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string // a fragment of the error, for people; what matters is that there is one
	}{
		{"no command", nil, "give a command"},
		{"unknown command", []string{"sign"}, `unknown command "sign"`},
		{"unknown flag", []string{"init", "--dri", dir}, "dri"},
		{"stray argument", []string{"init", "--dir", dir, "extra"}, `unexpected argument "extra"`},
		{"bad key type", []string{"init", "--dir", dir, "--key-type", "rsa"}, "--key-type"},
		{"negative validity", []string{"init", "--dir", dir, "--validity", "-1h"}, "--validity"},
		{"empty dir", []string{"init", "--dir", ""}, "--dir"},
		{"issue without node", []string{"issue", "--dir", dir}, "--node is required"},
		{"issue bad node", []string{"issue", "--dir", dir, "--node", "a/b"}, "node name"},
		{"issue reserved node", []string{"issue", "--dir", dir, "--node", "ca"}, "reserved"},
		{"issue without CA", []string{"issue", "--dir", dir, "--node", "n1"}, "certs init"},
		{"issue empty host", []string{"issue", "--dir", dir, "--node", "n1", "--host", "a,,b"}, "empty host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := certs.RunCLI(tc.args, &out)
			if err == nil {
				t.Fatalf("RunCLI(%q) succeeded:\n%s", tc.args, out.String())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RunCLI(%q) = %v; want it to mention %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"help"}, {"init", "-h"}, {"issue", "--help"}} {
		var out bytes.Buffer
		if err := certs.RunCLI(args, &out); err != nil {
			t.Errorf("RunCLI(%q) = %v", args, err)
		}
		if !strings.Contains(out.String(), "continuum certs issue") {
			t.Errorf("RunCLI(%q) printed no usage:\n%s", args, out.String())
		}
	}
}
