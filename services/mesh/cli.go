package mesh

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

// CLIUsage documents the `continuum mesh` commands.
const CLIUsage = `usage:
  continuum mesh members [--all] [--json]
      list the members this node knows of (--all: also DEAD and LEFT)
  continuum mesh resolve [--json] <service> [key]
      name the member a call for <service> goes to; with a key, the owner
      of that key of a sharded service`

// ErrUsage is returned (wrapped) for a command line RunCLI cannot parse.
var ErrUsage = errors.New("usage")

// RunCLI runs a `continuum mesh` command (args exclude "mesh") against the
// MeshService on conn and writes the answer to out. Errors from the server
// are returned with their code, reason and metadata in the text.
func RunCLI(ctx context.Context, args []string, conn grpc.ClientConnInterface, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no mesh command\n%s", ErrUsage, CLIUsage)
	}
	client := meshv1.NewMeshServiceClient(conn)
	fs := flag.NewFlagSet("mesh "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the protobuf JSON answer")
	switch args[0] {
	case "members":
		all := fs.Bool("all", false, "include DEAD and LEFT members")
		rest, err := parseFlags(fs, args[1:])
		if err != nil {
			return err
		}
		if len(rest) != 0 {
			return fmt.Errorf("%w: mesh members takes no arguments\n%s", ErrUsage, CLIUsage)
		}
		resp, err := client.Members(ctx, &meshv1.MembersRequest{IncludeGone: *all})
		if err != nil {
			return cliError("mesh members", err)
		}
		if *asJSON {
			return printJSON(out, resp)
		}
		return printMembers(out, resp.GetMembers())
	case "resolve":
		rest, err := parseFlags(fs, args[1:])
		if err != nil {
			return err
		}
		if len(rest) < 1 || len(rest) > 2 {
			return fmt.Errorf("%w: mesh resolve takes <service> [key]\n%s", ErrUsage, CLIUsage)
		}
		req := &meshv1.ResolveRequest{Service: rest[0]}
		if len(rest) == 2 {
			req.Key = rest[1]
		}
		resp, err := client.Resolve(ctx, req)
		if err != nil {
			return cliError("mesh resolve", err)
		}
		if *asJSON {
			return printJSON(out, resp)
		}
		return printMembers(out, []*meshv1.Member{resp.GetMember()})
	}
	return fmt.Errorf("%w: unknown mesh command %q\n%s", ErrUsage, args[0], CLIUsage)
}

// parseFlags accepts flags before and after the positional arguments (no
// flag here takes a value).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, rest []string
	for i, a := range args {
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			flags = append(flags, a)
		} else {
			rest = append(rest, a)
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, fmt.Errorf("%w: %w\n%s", ErrUsage, err, CLIUsage)
	}
	return rest, nil
}

// cliError renders a status error as "op: CODE REASON k=v ...: message",
// keeping the status reachable with errors.As and status.FromError.
func cliError(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	parts := []string{st.Code().String()}
	if r := rpcerr.Reason(err); r != "" {
		parts = append(parts, r)
	}
	parts = append(parts, rpcerr.Metadata(err)...)
	return &commandError{text: fmt.Sprintf("%s: %s: %s", op, strings.Join(parts, " "), st.Message()), err: err}
}

type commandError struct {
	text string
	err  error
}

func (e *commandError) Error() string { return e.text }

func (e *commandError) Unwrap() error { return e.err }

func printJSON(out io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return fmt.Errorf("render json: %w", err)
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

// printMembers writes a table: one row per member, "*" marking this node.
func printMembers(out io.Writer, ms []*meshv1.Member) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSINCE\tGRPC\tGOSSIP\tSERVICES\tPEERS\tROOMS")
	for _, m := range ms {
		name := m.GetName()
		if m.GetSelf() {
			name += " *"
		}
		since := "-"
		if m.GetStateSince() != nil {
			since = m.GetStateSince().AsTime().UTC().Format(time.RFC3339)
		}
		peers := make([]string, 0, len(m.GetPeers()))
		for _, p := range m.GetPeers() {
			if len(p.GetEnvs()) > 0 {
				peers = append(peers, p.GetName()+":"+strings.Join(p.GetEnvs(), "|"))
			} else {
				peers = append(peers, p.GetName())
			}
		}
		peerCol, roomCol := orDash(strings.Join(peers, ",")), orDash(strings.Join(m.GetRooms(), ","))
		if m.GetMetadataTruncated() {
			peerCol += " (truncated)"
		}
		state := strings.TrimPrefix(m.GetState().String(), "MEMBER_STATE_")
		if m.GetDraining() {
			state += " (draining)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name,
			state, since,
			orDash(m.GetGrpcAddress()), orDash(m.GetGossipAddress()),
			orDash(strings.Join(m.GetServices(), ",")), peerCol, roomCol)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
