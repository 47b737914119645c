package gateway_test

import (
	"context"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/continuum-mesh/continuum/gateway"
	"github.com/continuum-mesh/continuum/pkg/node"
)

var (
	screenshot = flag.String("screenshot", "", "capture the status page into this PNG (needs chromium; see .ci/gateway-screenshot.sh)")
	chromium   = flag.String("chromium", "chromium", "the headless Chromium binary for -screenshot")
)

// TestStatusPageScreenshot renders the status page of a three-node mesh,
// after a few real refusals, in headless Chromium. It runs only with
// -screenshot=PATH.
func TestStatusPageScreenshot(t *testing.T) {
	if *screenshot == "" {
		t.Skip("pass -screenshot=PATH (see .ci/gateway-screenshot.sh)")
	}
	bin, err := exec.LookPath(*chromium)
	if err != nil {
		t.Skipf("no %s: %v", *chromium, err)
	}
	gw := startNode(t)
	for _, name := range []string{"edge-1", "edge-2"} {
		startPeerNode(t, name, gw.GossipAddr())
	}
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(gw.Mesh().Members()) < 3 {
		select {
		case <-deadline:
			t.Fatalf("the mesh has %d members", len(gw.Mesh().Members()))
		case <-tick.C:
		}
	}
	dial, err := gateway.NodeDialer(gw.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, base := startGateway(t, gateway.Config{}, dial)

	// Real refusals, which the router publishes on audit:refusal.
	for _, uri := range []string{
		"debug/set-log-level", "genome/page-out", "router/put-policy",
		"airc://edge-1/debug/get-log-level", "hippocampus/forget",
	} {
		resp := call(t, "POST", base+"/v1/router/dispatch", userToken, `{"uri":"`+uri+`"}`)
		if b := errorOf(t, resp); b.HTTPStatus != 403 && b.HTTPStatus != 400 {
			t.Fatalf("%s was not refused: %+v", uri, b)
		}
	}
	if slices.Contains(gw.Mesh().Self().Services, "events") {
		r := readSSE(openSSE(t, t.Context(), http.DefaultClient, "GET",
			base+gateway.EventsSubscribePath+"?topic=audit:refusal&last_n=5", adminToken, "").Body)
		for got := 0; got < 5; {
			if ev := r.nextEvent(t, 30*time.Second); ev.name == "delivery" {
				got++
			}
		}
	}

	out, err := filepath.Abs(*screenshot)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--user-data-dir="+t.TempDir(), "--window-size=1280,900", "--virtual-time-budget=5000",
		"--screenshot="+out, base+"/?access_token="+adminToken)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, b)
	}
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", out, err)
	}
	t.Logf("status page captured in %s", out)
}

// startPeerNode runs another plaintext node joined to the mesh at join.
func startPeerNode(t *testing.T, name, join string) {
	t.Helper()
	n, err := node.New(node.Config{
		Node: name, Listen: "127.0.0.1:0", DataDir: t.TempDir(), MeshProfile: "local",
		Join: []string{join}, DrainTimeout: 5 * time.Second,
	}, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: %v", name, err)
		}
	})
}
