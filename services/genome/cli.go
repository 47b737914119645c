package genome

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
)

// CLIUsage describes the "continuum genome" commands RunCLI implements.
const CLIUsage = `usage: continuum genome <command> [flags]

commands:
  put FILE [--name NAME] [--experts N | --expert-offsets O1,O2,...]
      upload an artifact (content-addressed; prints its id)
  persona --persona ID --capacity SIZE
      register a persona's working set (or change its capacity)
  owner --persona ID --page PAGE
      make a persona the owner of a page
  page-in --persona ID --page PAGE
      make a page resident; prints the tier, the fault and evictions
  read --persona ID --page PAGE --out FILE|-
      write the bytes of a resident page
  page-out --persona ID --page PAGE --to ROLE
      demote a page to a tier (fast, warm, bench, cold, frozen)
  pin | unpin --persona ID --page PAGE
  working-set --persona ID
  tiers
      capacity, use and policy of each tier
  prefetch --persona ID --page PAGE [--page PAGE ...]

PAGE is <artifact-id>, <artifact-id>/expert/<index> or
<artifact-id>/bytes/<offset>+<length>. SIZE is like 512MiB.
Every command takes --json to print the response as protobuf JSON.
`

// RunCLI runs one "continuum genome" command against a GenomeService
// reached through conn, writing human-readable lines (or JSON with
// --json) to out.
func RunCLI(ctx context.Context, args []string, conn grpc.ClientConnInterface, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(out, CLIUsage)
		if len(args) == 0 {
			return errors.New("genome: a command is required")
		}
		return nil
	}
	c := &cli{client: genomev1.NewGenomeServiceClient(conn), out: out}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("genome "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.BoolVar(&c.json, "json", false, "print the response as protobuf JSON")
	var err error
	switch cmd {
	case "put":
		err = c.put(ctx, fs, rest)
	case "persona":
		err = c.persona(ctx, fs, rest)
	case "owner":
		err = c.owner(ctx, fs, rest)
	case "page-in":
		err = c.pageIn(ctx, fs, rest)
	case "read":
		err = c.read(ctx, fs, rest)
	case "page-out":
		err = c.pageOut(ctx, fs, rest)
	case "pin", "unpin":
		err = c.pin(ctx, fs, rest, cmd == "pin")
	case "working-set":
		err = c.workingSet(ctx, fs, rest)
	case "tiers":
		err = c.tiers(ctx, fs, rest)
	case "prefetch":
		err = c.prefetch(ctx, fs, rest)
	default:
		fmt.Fprint(out, CLIUsage)
		return fmt.Errorf("genome: unknown command %q", cmd)
	}
	if err != nil {
		return fmt.Errorf("genome %s: %s", cmd, describeError(err))
	}
	return nil
}

// describeError renders a status with its ErrorInfo reason and metadata.
func describeError(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	s := st.Code().String()
	if r := rpcerr.Reason(err); r != "" {
		s += " " + r
	}
	s += ": " + st.Message()
	if md := rpcerr.Metadata(err); len(md) > 0 {
		s += " (" + strings.Join(md, ", ") + ")"
	}
	return s
}

type cli struct {
	client genomev1.GenomeServiceClient
	out    io.Writer
	json   bool
}

// pageFlags are the flags naming a persona and a page.
type pageFlags struct {
	persona string
	page    string
}

func (p *pageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.persona, "persona", "", "persona id (UUID)")
	fs.StringVar(&p.page, "page", "", "page: <artifact-id>[/expert/<i>|/bytes/<offset>+<length>]")
}

func (p *pageFlags) parse() (string, *genomev1.PageRef, error) {
	if p.persona == "" || p.page == "" {
		return "", nil, errors.New("--persona and --page are required")
	}
	ref, err := ParsePageRef(p.page)
	if err != nil {
		return "", nil, err
	}
	return p.persona, refProto(ref), nil
}

func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

func (c *cli) printJSON(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.out, string(b))
	return err
}

func (c *cli) put(ctx context.Context, fs *flag.FlagSet, args []string) error {
	name := fs.String("name", "", "a name for humans")
	experts := fs.Uint("experts", 0, "split into this many equal expert pages")
	offsets := fs.String("expert-offsets", "", "comma-separated start offsets of the experts")
	chunk := fs.String("chunk", "1MiB", "upload chunk size")
	// Let the file come before the flags too.
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if file == "" && len(rest) == 1 {
		file = rest[0]
	} else if len(rest) > 0 || file == "" {
		return errors.New("exactly one FILE is required")
	}
	chunkSize, err := ParseBytes(*chunk)
	if err != nil || chunkSize > 8<<20 {
		return fmt.Errorf("--chunk: a size up to 8MiB: %v", *chunk)
	}
	var offs []uint64
	if *offsets != "" {
		for s := range strings.SplitSeq(*offsets, ",") {
			o, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return fmt.Errorf("--expert-offsets: %q is not a number", s)
			}
			offs = append(offs, o)
		}
	}
	if *experts > maxExperts {
		return fmt.Errorf("--experts: at most %d", maxExperts)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	stream, err := c.client.PutArtifact(ctx)
	if err != nil {
		return err
	}
	hdr := &genomev1.PutArtifactHeader{
		Name: *name, Sha256: hex.EncodeToString(h.Sum(nil)), SizeBytes: uint64(size),
		Experts: uint32(*experts), ExpertOffsets: offs,
	}
	if err := stream.Send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Header{Header: hdr}}); err != nil {
		_, rerr := stream.CloseAndRecv()
		return errors.Join(err, rerr)
	}
	buf := make([]byte, chunkSize)
	for {
		n, rerr := f.Read(buf)
		if n > 0 {
			if err := stream.Send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				// The server ended the stream; its status says why.
				_, err = stream.CloseAndRecv()
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	state := "stored"
	if !resp.GetCreated() {
		state = "already stored"
	}
	fmt.Fprintf(c.out, "artifact %s %s in the %s tier (%s, sha256 %s", resp.GetArtifactId(), state,
		roleName(resp.GetRole()), FormatBytes(resp.GetSizeBytes()), resp.GetSha256())
	if resp.GetExperts() > 0 {
		fmt.Fprintf(c.out, ", %d experts", resp.GetExperts())
	}
	fmt.Fprintln(c.out, ")")
	return nil
}

func (c *cli) persona(ctx context.Context, fs *flag.FlagSet, args []string) error {
	id := fs.String("persona", "", "persona id (UUID)")
	capacity := fs.String("capacity", "", "working-set capacity, like 512MiB")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" || *capacity == "" {
		return errors.New("--persona and --capacity are required")
	}
	n, err := ParseBytes(*capacity)
	if err != nil {
		return err
	}
	resp, err := c.client.RegisterPersona(ctx, &genomev1.RegisterPersonaRequest{PersonaId: *id, CapacityBytes: n})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	if resp.GetCreated() {
		fmt.Fprintf(c.out, "persona %s registered with a working set of %s\n", *id, FormatBytes(n))
	} else {
		fmt.Fprintf(c.out, "persona %s now has a working set of %s\n", *id, FormatBytes(n))
	}
	return nil
}

func (c *cli) owner(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var pf pageFlags
	pf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	persona, page, err := pf.parse()
	if err != nil {
		return err
	}
	resp, err := c.client.RegisterPageOwner(ctx, &genomev1.RegisterPageOwnerRequest{Page: page, OwnerPersonaId: persona})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	fmt.Fprintf(c.out, "persona %s owns %s\n", persona, pf.page)
	return nil
}

func (c *cli) pageIn(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var pf pageFlags
	pf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	persona, page, err := pf.parse()
	if err != nil {
		return err
	}
	resp, err := c.client.PageIn(ctx, &genomev1.PageInRequest{PersonaId: persona, Page: page})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	r := resp.GetResident()
	fmt.Fprintf(c.out, "resident in %s (%s, handle %s", roleName(r.GetRole()), FormatBytes(r.GetSizeBytes()), r.GetHandle())
	if r.GetPinned() {
		fmt.Fprint(c.out, ", pinned")
	}
	fmt.Fprintln(c.out, ")")
	if f := resp.GetFault(); f != nil {
		fmt.Fprintf(c.out, "page fault: %s -> %s\n", roleName(f.GetFrom()), roleName(f.GetTo()))
	} else {
		fmt.Fprintln(c.out, "hit")
	}
	c.printEvictions(resp.GetEvictions())
	return nil
}

func (c *cli) printEvictions(recs []*genomev1.EvictionRecord) {
	for _, e := range recs {
		ref, err := refFromProto(e.GetPage())
		name := e.GetPage().GetArtifactId()
		if err == nil {
			name = ref.String()
		}
		fmt.Fprintf(c.out, "evicted %s (persona %s): %s -> %s by %s\n", name, e.GetPersonaId(), roleName(e.GetFrom()), roleName(e.GetTo()), e.GetPolicy())
	}
}

func (c *cli) read(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var pf pageFlags
	pf.register(fs)
	outPath := fs.String("out", "", "file to write the bytes to, or - for standard output")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	persona, page, err := pf.parse()
	if err != nil {
		return err
	}
	if *outPath == "" {
		return errors.New("--out is required (- writes to standard output)")
	}
	stream, err := c.client.ReadPage(ctx, &genomev1.ReadPageRequest{PersonaId: persona, Page: page})
	if err != nil {
		return err
	}
	w := c.out
	var f *os.File
	if *outPath != "-" {
		f, err = os.Create(*outPath)
		if err != nil {
			return err
		}
		w = f
	}
	var n, total uint64
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if f != nil {
				_ = f.Close()
				_ = os.Remove(*outPath)
			}
			return err
		}
		if msg.GetTotalBytes() > 0 {
			total = msg.GetTotalBytes()
		}
		if _, err := w.Write(msg.GetChunk()); err != nil {
			return err
		}
		n += uint64(len(msg.GetChunk()))
	}
	if n != total {
		return fmt.Errorf("read %d of %d bytes", n, total)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "wrote %s to %s\n", FormatBytes(n), *outPath)
	}
	return nil
}

func (c *cli) pageOut(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var pf pageFlags
	pf.register(fs)
	to := fs.String("to", "", "target tier: fast, warm, bench, cold or frozen")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	persona, page, err := pf.parse()
	if err != nil {
		return err
	}
	role, err := ParseRole(*to)
	if err != nil {
		return err
	}
	resp, err := c.client.PageOut(ctx, &genomev1.PageOutRequest{PersonaId: persona, Page: page, Target: roleProto(role)})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	switch {
	case resp.GetSkippedPinned():
		fmt.Fprintf(c.out, "pinned: stays in %s\n", roleName(resp.GetFrom()))
	case !resp.GetMoved():
		fmt.Fprintf(c.out, "already in %s, at or below %s\n", roleName(resp.GetFrom()), role)
	default:
		fmt.Fprintf(c.out, "moved %s -> %s\n", roleName(resp.GetFrom()), roleName(resp.GetTo()))
	}
	c.printEvictions(resp.GetEvictions())
	return nil
}

func (c *cli) pin(ctx context.Context, fs *flag.FlagSet, args []string, pin bool) error {
	var pf pageFlags
	pf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	persona, page, err := pf.parse()
	if err != nil {
		return err
	}
	if pin {
		resp, err := c.client.Pin(ctx, &genomev1.PinRequest{PersonaId: persona, Page: page})
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(resp)
		}
		fmt.Fprintf(c.out, "pinned in %s\n", roleName(resp.GetResident().GetRole()))
		return nil
	}
	resp, err := c.client.Unpin(ctx, &genomev1.UnpinRequest{PersonaId: persona, Page: page})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	if resp.GetUnpinned() {
		fmt.Fprintln(c.out, "unpinned")
	} else {
		fmt.Fprintln(c.out, "was not pinned by this persona")
	}
	return nil
}

func (c *cli) workingSet(ctx context.Context, fs *flag.FlagSet, args []string) error {
	id := fs.String("persona", "", "persona id (UUID)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("--persona is required")
	}
	resp, err := c.client.WorkingSet(ctx, &genomev1.WorkingSetRequest{PersonaId: *id})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	fmt.Fprintf(c.out, "persona %s: %s of %s used, %d pages\n", resp.GetPersonaId(), FormatBytes(resp.GetUsedBytes()),
		FormatBytes(resp.GetCapacityBytes()), len(resp.GetPages()))
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tSIZE\tPINNED\tPAGE")
	for _, p := range resp.GetPages() {
		ref, err := refFromProto(p.GetPage())
		name := p.GetPage().GetArtifactId()
		if err == nil {
			name = ref.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", roleName(p.GetRole()), FormatBytes(p.GetSizeBytes()), p.GetPinned(), name)
	}
	return tw.Flush()
}

func (c *cli) tiers(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	resp, err := c.client.Tiers(ctx, &genomev1.TiersRequest{})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIER\tPOLICY\tCAPACITY\tUSED\tAVAILABLE\tUTIL\tPAGES\tFAULTS\tEVICTIONS")
	for _, t := range resp.GetTiers() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f%%\t%d\t%d\t%d\n", roleName(t.GetRole()), t.GetPolicy(),
			FormatBytes(t.GetCapacityBytes()), FormatBytes(t.GetUsedBytes()), FormatBytes(t.GetAvailableBytes()),
			100*t.GetUtilization(), t.GetPages(), t.GetFaults(), t.GetEvictions())
	}
	return tw.Flush()
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func (c *cli) prefetch(ctx context.Context, fs *flag.FlagSet, args []string) error {
	id := fs.String("persona", "", "persona id (UUID)")
	var pages multiFlag
	fs.Var(&pages, "page", "page to prefetch (repeatable)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *id == "" || len(pages) == 0 {
		return errors.New("--persona and at least one --page are required")
	}
	req := &genomev1.PrefetchRequest{PersonaId: *id}
	for _, p := range pages {
		ref, err := ParsePageRef(p)
		if err != nil {
			return err
		}
		req.Pages = append(req.Pages, refProto(ref))
	}
	resp, err := c.client.Prefetch(ctx, req)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(resp)
	}
	fmt.Fprintf(c.out, "queued %d, already resident %d, rejected (queue full) %d\n", resp.GetAccepted(), resp.GetAlreadyResident(), resp.GetRejected())
	return nil
}

// roleName is a role's short name for humans ("none" for unspecified).
func roleName(r genomev1.Role) string { return Role(r).String() }
