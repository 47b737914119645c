package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
)

// crashChildEnv, when set, makes TestKill9MidBurst the child process: it
// appends to the log in the named directory until it is killed.
const crashChildEnv = "AUDIT_CRASH_CHILD_DATA_DIR"

// TestKill9MidBurst runs a burst of concurrent appends in a separate
// process, SIGKILLs it mid-burst, and checks that every append the child
// reported acknowledged is in the log with the hash it was acknowledged
// with, and that the log verifies and takes new appends.
func TestKill9MidBurst(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	t.Parallel()
	cfg := testConfig(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9MidBurst$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+cfg.DataDir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// acked maps each acknowledged seq to its chainHash.
	acked := map[uint64]string{}
	const killAfter = 1500
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue // the test framework's own output
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("child line %q", sc.Text())
		}
		acked[seq] = f[2]
		if !killed && len(acked) >= killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("the child ended before it was killed (%d acks): %v", len(acked), err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v", err)
	}

	s := open(t, cfg, Deps{})
	st := s.Stats()
	if st.Corrupt != nil {
		t.Fatalf("the log is corrupt after kill -9: %v", st.Corrupt)
	}
	t.Logf("child acknowledged %d appends before and while being killed; log holds %d entries; torn bytes cut: %d",
		len(acked), st.Entries, st.TornBytesCut)
	found := 0
	err = s.store.read(context.Background(), 1, 0, func(e *auditlog.Entry) error {
		if h, ok := acked[e.Seq]; ok {
			if h != e.ChainHash.String() {
				return fmt.Errorf("seq %d has chainHash %s, acknowledged %s", e.Seq, e.ChainHash, h)
			}
			found++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != len(acked) {
		t.Fatalf("%d acknowledged entries missing from the log", len(acked)-found)
	}
	res := mustVerify(t, s)
	if e := appendOne(t, s, auditlog.KindRefusal, map[string]any{"after": "crash"}); e.Seq != res.Size+1 {
		t.Errorf("append after the crash got seq %d, want %d", e.Seq, res.Size+1)
	}
	mustVerify(t, s)
}

// crashChild appends forever from many goroutines, printing "ack <seq>
// <chainHash>" once each append is acknowledged (after its fsync).
func crashChild(dir string) {
	s, err := New(Config{Node: "n1", DataDir: dir}, Deps{Logger: discard()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Minute) // the parent kills long before
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				es, err := s.store.append([]pendingEntry{{Kind: auditlog.KindRefusal, Payload: map[string]any{
					"worker": float64(w), "i": float64(i), "pad": strings.Repeat("p", 100),
				}}})
				if err != nil {
					fmt.Fprintln(os.Stderr, "crash child: append:", err)
					os.Exit(2)
				}
				line := fmt.Sprintf("ack %d %s\n", es[0].Seq, es[0].ChainHash)
				mu.Lock()
				_, _ = os.Stdout.WriteString(line) // one write: a pipe write under 4 KiB is atomic
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(3)
}
