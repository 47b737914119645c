// Package auditbench measures the audit recorder through its public API,
// beside anchors measured in the same run on the same disk:
//
//		go run ./tools/bench audit [--appends 50000 --appenders 64 --verify-for 3s]
//
//	  - durable appends/s in process: concurrent AuditService.Append calls
//	    on the service value (the handler, its Struct conversion and the
//	    group-committed store; no gRPC), each acknowledged after the
//	    fdatasync that carried it;
//	  - the same over loopback gRPC through the real pkg/rpc server (bearer
//	    token auth, logging, recovery, error mapping), callers spread over 4
//	    connections;
//	  - the anchor for both: one writer appending the same ~480-byte lines to
//	    a file with a write and an fdatasync per entry (no group commit), what
//	    the disk gives a log that syncs each entry on its own;
//	  - verification entries/s: AuditService.Verify (parse, re-hash, chain
//	    checks, Merkle root) on the log the in-process case wrote, and
//	    auditlog.VerifyFile (what `continuum audit verify FILE` does) on the
//	    same file, each repeated for at least --verify-for;
//	  - the anchor for verification: SHA-256 over the same file's bytes on
//	    one core, the floor of any check that re-hashes the log.
//
// Each rate comes with the process CPU time per operation, which holds up
// on a busy machine where wall-clock rates do not. The last line printed is
// the Result as JSON.
package auditbench

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	"github.com/continuum-mesh/continuum/services/audit"
	"github.com/continuum-mesh/continuum/tools/bench/cputime"
)

// Options are a measurement's settings.
type Options struct {
	// Appends is the number of durable appends of each append case.
	Appends int
	// Appenders is how many goroutines append concurrently.
	Appenders int
	// AnchorAppends is the number of appends of the fsync-per-entry anchor.
	AnchorAppends int
	// VerifyFor is the least time each verification case repeats for.
	VerifyFor time.Duration
	// Dir holds the logs; empty is a fresh temporary directory, removed at
	// the end.
	Dir string
}

// Rate is one case's throughput and its CPU cost.
type Rate struct {
	Ops      int     `json:"ops"`
	PerS     float64 `json:"per_s"`
	CPUusPer float64 `json:"cpu_us_per_op"`
}

// Result is what a run measured.
type Result struct {
	Appenders int `json:"appenders"`
	// Inproc is AuditService.Append called in process.
	Inproc Rate `json:"inproc"`
	// GRPC is AuditService.Append over loopback gRPC.
	GRPC Rate `json:"grpc"`
	// GRPCStream is AuditService.AppendStream over loopback gRPC: Streams
	// streams of Batch entries per request.
	GRPCStream Rate `json:"grpc_stream"`
	Streams    int  `json:"streams"`
	Batch      int  `json:"batch"`
	// FsyncEach is the anchor: one write and fdatasync per entry.
	FsyncEach Rate `json:"fsync_each"`
	// Verify is AuditService.Verify, entries per second.
	Verify Rate `json:"verify"`
	// VerifyFile is auditlog.VerifyFile on every core, entries per second.
	VerifyFile Rate `json:"verify_file"`
	// SHA256 is the anchor: SHA-256 of the log's bytes on one core, in
	// entries per second.
	SHA256 Rate `json:"sha256"`
	// LogEntries and LogBytes describe the verified log.
	LogEntries int   `json:"log_entries"`
	LogBytes   int64 `json:"log_bytes"`
}

// Run parses flags, measures, prints the figures and, last, the Result as
// one line of JSON.
func Run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench audit", flag.ContinueOnError)
	fs.SetOutput(out)
	o := Defaults()
	fs.IntVar(&o.Appends, "appends", o.Appends, "durable appends per append case")
	fs.IntVar(&o.Appenders, "appenders", o.Appenders, "concurrent appenders")
	fs.IntVar(&o.AnchorAppends, "anchor-appends", o.AnchorAppends, "appends of the fsync-per-entry anchor")
	fs.DurationVar(&o.VerifyFor, "verify-for", o.VerifyFor, "least time each verification case repeats for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := Measure(context.Background(), o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "durable appends, %d appenders: in process %.0f/s (%.1f CPU-µs each), loopback gRPC %.0f/s (%.1f CPU-µs each)\n",
		res.Appenders, res.Inproc.PerS, res.Inproc.CPUusPer, res.GRPC.PerS, res.GRPC.CPUusPer)
	fmt.Fprintf(out, "durable appends over %d AppendStream streams of %d-entry requests: %.0f/s (%.1f CPU-µs each)\n",
		res.Streams, res.Batch, res.GRPCStream.PerS, res.GRPCStream.CPUusPer)
	fmt.Fprintf(out, "anchor, one writer, write+fdatasync per entry: %.0f/s\n", res.FsyncEach.PerS)
	fmt.Fprintf(out, "verification of %d entries (%d bytes): Verify %.0f entries/s, VerifyFile %.0f entries/s; anchor SHA-256 on one core %.0f entries/s\n",
		res.LogEntries, res.LogBytes, res.Verify.PerS, res.VerifyFile.PerS, res.SHA256.PerS)
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

// Defaults are the settings of a full run.
func Defaults() Options {
	return Options{Appends: 50_000, Appenders: 64, AnchorAppends: 2_000, VerifyFor: 3 * time.Second}
}

const (
	adminToken = "bench-admin-token"
	node       = "bench"
)

// Measure runs every case.
func Measure(ctx context.Context, o Options) (*Result, error) {
	if o.Appends < 1 || o.Appenders < 1 || o.AnchorAppends < 1 || o.VerifyFor <= 0 {
		return nil, errors.New("bench audit: appends, appenders, anchor appends and verify-for must be positive")
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "auditbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	payloads, err := refusalPayloads()
	if err != nil {
		return nil, err
	}
	res := &Result{Appenders: o.Appenders, Streams: 4, Batch: 64}

	// In process, on the service value.
	inDir := filepath.Join(o.Dir, "inproc")
	svc, err := audit.New(audit.Config{Node: node, DataDir: inDir}, audit.Deps{Logger: log})
	if err != nil {
		return nil, err
	}
	defer svc.Close()
	res.Inproc, err = appendConcurrently(o.Appends, o.Appenders, func(i int) error {
		_, err := svc.Append(ctx, &auditv1.AppendRequest{Kind: auditlog.KindRefusal, Payload: payloads[i%len(payloads)]})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("in-process append: %w", err)
	}

	// Over loopback gRPC, into a fresh log.
	if err := appendGRPC(ctx, o, filepath.Join(o.Dir, "grpc"), log, payloads, res); err != nil {
		return nil, err
	}

	// The anchor: a write and an fdatasync per entry, one writer.
	line, err := sampleLine(payloads[0])
	if err != nil {
		return nil, err
	}
	res.FsyncEach, err = fsyncEach(filepath.Join(o.Dir, "anchor.jsonl"), line, o.AnchorAppends)
	if err != nil {
		return nil, fmt.Errorf("fsync anchor: %w", err)
	}

	// Verification of the in-process log.
	path := filepath.Join(inDir, "audit", "audit.jsonl")
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("the in-process log: %w", err)
	}
	res.LogEntries, res.LogBytes = o.Appends, st.Size()
	res.Verify, err = repeat(o.VerifyFor, o.Appends, func() error {
		r, err := svc.Verify(ctx, &auditv1.VerifyRequest{})
		if err == nil && r.GetSize() != uint64(o.Appends) {
			err = fmt.Errorf("verified %d entries, want %d", r.GetSize(), o.Appends)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	res.VerifyFile, err = repeat(o.VerifyFor, o.Appends, func() error {
		r, err := auditlog.VerifyFile(ctx, path, auditlog.ScanOptions{Workers: runtime.GOMAXPROCS(0)})
		if err == nil && r.Size != uint64(o.Appends) {
			err = fmt.Errorf("verified %d entries, want %d", r.Size, o.Appends)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("verify file: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	res.SHA256, err = repeat(o.VerifyFor, o.Appends, func() error {
		_ = sha256.Sum256(data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// appendGRPC serves a fresh audit service on 127.0.0.1:0 through pkg/rpc
// and appends to it from 4 client connections: unary Append calls, then
// AppendStream streams.
func appendGRPC(ctx context.Context, o Options, dir string, log *slog.Logger, payloads []*structpb.Struct, res *Result) error {
	svc, err := audit.New(audit.Config{Node: node, DataDir: dir}, audit.Deps{Logger: log})
	if err != nil {
		return err
	}
	defer svc.Close()
	tokens, err := auth.NewTokens([]auth.TokenEntry{{Principal: "admin", Token: adminToken, Admin: true}})
	if err != nil {
		return err
	}
	srv, err := rpc.New(rpc.Config{Node: node, Listen: "127.0.0.1:0"}, rpc.Deps{Logger: log, Tokens: tokens})
	if err != nil {
		return err
	}
	svc.Register(srv)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	defer func() {
		cancel()
		<-done
	}()
	var clients []auditv1.AuditServiceClient
	for range 4 {
		cc, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		clients = append(clients, auditv1.NewAuditServiceClient(cc))
	}
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminToken)
	res.GRPC, err = appendConcurrently(o.Appends, o.Appenders, func(i int) error {
		_, err := clients[i%len(clients)].Append(actx, &auditv1.AppendRequest{Kind: auditlog.KindRefusal, Payload: payloads[i%len(payloads)]})
		return err
	})
	if err != nil {
		return fmt.Errorf("unary append over gRPC: %w", err)
	}
	res.GRPCStream, err = appendStreams(actx, clients, res.Streams, res.Batch, o.Appends, payloads)
	if err != nil {
		return fmt.Errorf("append stream over gRPC: %w", err)
	}
	return nil
}

// appendStreams appends n entries through streams AppendStream streams,
// batch entries per request, each stream sending without waiting for its
// acks (a receiver per stream checks them).
func appendStreams(ctx context.Context, clients []auditv1.AuditServiceClient, streams, batch, n int, payloads []*structpb.Struct) (Rate, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2*streams)
	start, cpu0 := time.Now(), cputime.Process()
	for w := range streams {
		st, err := clients[w%len(clients)].AppendStream(ctx)
		if err != nil {
			return Rate{}, err
		}
		sent := make(chan int, 1<<12)
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer close(sent)
			for {
				end := int(next.Add(int64(batch)))
				first := end - batch
				if first >= n {
					errs <- st.CloseSend()
					return
				}
				req := &auditv1.AppendStreamRequest{}
				for i := first; i < min(end, n); i++ {
					req.Entries = append(req.Entries, &auditv1.AppendRequest{Kind: auditlog.KindRefusal, Payload: payloads[i%len(payloads)]})
				}
				if err := st.Send(req); err != nil {
					errs <- err
					return
				}
				sent <- len(req.Entries)
			}
		}()
		go func() {
			defer wg.Done()
			for k := range sent {
				resp, err := st.Recv()
				if err == nil && len(resp.GetAcks()) != k {
					err = fmt.Errorf("%d acks for %d entries", len(resp.GetAcks()), k)
				}
				if err != nil {
					errs <- err
					cancel()
					return
				}
			}
			if _, err := st.Recv(); !errors.Is(err, io.EOF) {
				errs <- fmt.Errorf("stream end: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return Rate{}, err
		}
	}
	return rate(n, time.Since(start), cputime.Process()-cpu0), nil
}

// appendConcurrently makes n calls of appendOne from the given number of
// goroutines and returns the rate.
func appendConcurrently(n, appenders int, appendOne func(i int) error) (Rate, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	start, cpu0 := time.Now(), cputime.Process()
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := appendOne(int(i)); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return Rate{}, first
	}
	return rate(n, time.Since(start), cputime.Process()-cpu0), nil
}

// fsyncEach appends line n times to path, each followed by an fdatasync.
func fsyncEach(path string, line []byte, n int) (Rate, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return Rate{}, err
	}
	defer f.Close()
	start, cpu0 := time.Now(), cputime.Process()
	for range n {
		if _, err := f.Write(line); err != nil {
			return Rate{}, err
		}
		if err := datasync(f); err != nil {
			return Rate{}, err
		}
	}
	return rate(n, time.Since(start), cputime.Process()-cpu0), nil
}

// repeat calls fn, which handles perCall entries, until at least d has
// passed (at least once), and returns entries per second.
func repeat(d time.Duration, perCall int, fn func() error) (Rate, error) {
	start, cpu0 := time.Now(), cputime.Process()
	calls := 0
	for calls == 0 || time.Since(start) < d {
		if err := fn(); err != nil {
			return Rate{}, err
		}
		calls++
	}
	return rate(calls*perCall, time.Since(start), cputime.Process()-cpu0), nil
}

func rate(n int, wall, cpu time.Duration) Rate {
	r := Rate{Ops: n}
	if wall > 0 {
		r.PerS = float64(n) / wall.Seconds()
	}
	if n > 0 {
		r.CPUusPer = float64(cpu.Microseconds()) / float64(n)
	}
	return r
}

// refusalPayloads are shaped like the router's refusal events (10 fields,
// about 480-byte log lines).
func refusalPayloads() ([]*structpb.Struct, error) {
	out := make([]*structpb.Struct, 1000)
	for i := range out {
		p, err := structpb.NewStruct(map[string]any{
			"uri":               fmt.Sprintf("airc://maya@5090-rig:vr/genome/page-in?persona=p%d", i),
			"caller":            "user",
			"hop":               "peer:edge-1",
			"verdict":           "forbidden",
			"reason":            "no-permission",
			"prompt_target_env": "",
			"rule":              float64(i % 17),
			"dry_run":           i%5 == 0,
			"node":              "n1",
			"route_kind":        "ROUTE_KIND_PEER",
		})
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// sampleLine is a sealed log line of payload, the size the anchor writes.
func sampleLine(payload *structpb.Struct) ([]byte, error) {
	e := &auditlog.Entry{
		Seq: 1, TimestampMs: time.Now().UnixMilli(), RawTimestampMs: time.Now().UnixMilli(),
		Kind: auditlog.KindRefusal, Payload: payload.AsMap(),
		Source:        auditlog.Source{Publisher: "token:admin"},
		PrevChainHash: auditlog.GenesisHash,
	}
	auditlog.Seal(e, nil)
	return auditlog.AppendLine(nil, e), nil
}
