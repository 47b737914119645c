package hippocampus

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// CLIUsage is the help of `continuum hippo`.
const CLIUsage = `continuum hippo — the hippocampus from the command line

Usage:
  continuum hippo remember --persona P --channel C [--id ID] [--entity E]... [--topic T]...
                           [--importance 1-10] [--reply-to ID] [--at RFC3339] CONTENT...
  continuum hippo peek     --persona P --channel C [--content] [--stale]
  continuum hippo recall   --persona P [--channel C] [--k 8] [--content] CUE...

Every command also takes:
  --json     print the response as protobuf JSON
  --direct   call HippocampusService on the node itself instead of going
             through the router (hippocampus/<command>), which routes the
             persona to its owner and applies the node's policy
`

// UsageError is a command line that cannot run; the binary exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...) + "\n\n" + CLIUsage}
}

// RunCLI runs `continuum hippo <command> [flags] [args]` over conn (a
// connection to a node, with the caller's credentials). Calls go through
// the node's router (RouterService.Dispatch of hippocampus/<command>)
// unless --direct. A failed call's gRPC status is returned unchanged, so
// the binary renders its code, reason and metadata like any other command.
func RunCLI(ctx context.Context, args []string, conn grpc.ClientConnInterface, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		_, err := io.WriteString(out, CLIUsage)
		return err
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("hippo "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		persona, channel, id, replyTo, at string
		entities, topics                  multiFlag
		importance, k                     uint
		withContent, stale, asJSON        bool
		direct                            bool
	)
	fs.StringVar(&persona, "persona", "", "persona")
	fs.StringVar(&channel, "channel", "", "channel")
	fs.BoolVar(&asJSON, "json", false, "print protobuf JSON")
	fs.BoolVar(&direct, "direct", false, "call the node's HippocampusService, not the router")
	switch cmd {
	case "remember":
		fs.StringVar(&id, "id", "", "engram id (makes a retry idempotent)")
		fs.Var(&entities, "entity", "an entity (repeatable)")
		fs.Var(&topics, "topic", "a topic (repeatable)")
		fs.UintVar(&importance, "importance", 0, "importance 1-10 (0: unknown)")
		fs.StringVar(&replyTo, "reply-to", "", "the engram this one replies to")
		fs.StringVar(&at, "at", "", "when it happened, RFC 3339 (default now)")
	case "peek":
		fs.BoolVar(&withContent, "content", false, "include contents")
		fs.BoolVar(&stale, "stale", false, "show an expired slice's items")
	case "recall":
		fs.UintVar(&k, "k", 8, "how many engrams (1-64)")
		fs.BoolVar(&withContent, "content", false, "include contents")
	default:
		return usagef("unknown hippo command %q", cmd)
	}
	pos, err := parseInterleaved(fs, rest)
	if err != nil {
		return usagef("%v", err)
	}
	if persona == "" {
		return usagef("--persona is required")
	}
	var (
		method string
		req    proto.Message
		resp   proto.Message
	)
	switch cmd {
	case "remember":
		if channel == "" || len(pos) == 0 {
			return usagef("remember needs --channel and the content")
		}
		e := &hippocampusv1.Engram{Id: id, Content: strings.Join(pos, " "), Entities: entities, Topics: topics, Importance: uint32(importance), ReplyTo: replyTo}
		if at != "" {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return usagef("--at: %v", err)
			}
			e.At = timestamppb.New(t)
		}
		method, req, resp = "remember", &hippocampusv1.RememberRequest{Persona: persona, Channel: channel, Engram: e}, &hippocampusv1.RememberResponse{}
	case "peek":
		if channel == "" || len(pos) != 0 {
			return usagef("peek needs --channel and no arguments")
		}
		method, req, resp = "peek", &hippocampusv1.PeekRequest{Persona: persona, Channel: channel, WithContent: withContent, AllowStale: stale}, &hippocampusv1.PeekResponse{}
	case "recall":
		method, req, resp = "recall", &hippocampusv1.RecallRequest{Persona: persona, Channel: channel, Cue: strings.Join(pos, " "), K: uint32(k), WithContent: withContent}, &hippocampusv1.RecallResponse{}
	}
	if err := call(ctx, conn, direct, method, req, resp); err != nil {
		return err
	}
	if asJSON {
		b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(resp)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, string(b))
		return err
	}
	return printCLI(out, resp)
}

// call runs one method, through the router or directly.
func call(ctx context.Context, conn grpc.ClientConnInterface, direct bool, method string, req, resp proto.Message) error {
	if direct {
		full := "/" + hippocampusv1.HippocampusService_ServiceDesc.ServiceName + "/" + strings.ToUpper(method[:1]) + method[1:]
		return conn.Invoke(ctx, full, req, resp)
	}
	b, err := protojson.Marshal(req)
	if err != nil {
		return err
	}
	params := &structpb.Struct{}
	if err := protojson.Unmarshal(b, params); err != nil {
		return err
	}
	out, err := routerv1.NewRouterServiceClient(conn).Dispatch(ctx, &routerv1.DispatchRequest{Uri: "hippocampus/" + method, Params: params})
	if err != nil {
		return err
	}
	b, err = protojson.Marshal(out.GetResult())
	if err != nil {
		return err
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, resp); err != nil {
		return fmt.Errorf("decode the router's answer: %w", err)
	}
	return nil
}

func printCLI(out io.Writer, resp proto.Message) error {
	switch r := resp.(type) {
	case *hippocampusv1.RememberResponse:
		if r.GetDuplicate() {
			_, err := fmt.Fprintf(out, "already remembered %s\n", r.GetId())
			return err
		}
		_, err := fmt.Fprintf(out, "remembered %s\n", r.GetId())
		return err
	case *hippocampusv1.PeekResponse:
		if len(r.GetItems()) == 0 {
			_, err := fmt.Fprintf(out, "nothing staged (%s)\n", r.GetEmptyReason())
			return err
		}
		stale := ""
		if r.GetStale() {
			stale = ", stale"
		}
		fmt.Fprintf(out, "generation %d, staged %s ago%s, %d items\n", r.GetGeneration(), r.GetAge().AsDuration().Round(time.Millisecond), stale, len(r.GetItems()))
		return printItems(out, r.GetItems())
	case *hippocampusv1.RecallResponse:
		if len(r.GetItems()) == 0 {
			_, err := fmt.Fprintln(out, "nothing recalled")
			return err
		}
		if r.GetPartial() {
			fmt.Fprintln(out, "(partial: the recall timeout cut the search short)")
		}
		return printItems(out, r.GetItems())
	}
	return errors.New("unexpected response")
}

func printItems(out io.Writer, items []*hippocampusv1.ReadyItem) error {
	for i, it := range items {
		pool := ""
		switch it.GetPool() {
		case hippocampusv1.Pool_POOL_STABLE:
			pool = "stable"
		case hippocampusv1.Pool_POOL_ASSOCIATIVE:
			pool = "assoc"
		}
		line := fmt.Sprintf("%3d  %-30s %-6s %8.3f", i+1, it.GetEngramId(), pool, it.GetScore())
		if c := it.GetContent(); c != "" {
			q, _ := json.Marshal(c)
			line += "  " + string(q)
		}
		if _, err := fmt.Fprintln(out, strings.TrimRight(line, " ")); err != nil {
			return err
		}
	}
	return nil
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
