package router

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/handle"
	"github.com/continuum-mesh/continuum/pkg/jsonvalue"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/telemetry"
	"github.com/continuum-mesh/continuum/pkg/uri"
	optionsv1 "github.com/continuum-mesh/continuum/proto/continuum/options/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// Metadata a router sends to the next router. Believed only from an
// authenticated mesh peer.
const (
	// hopsHeader counts how often a command was forwarded.
	hopsHeader = "x-continuum-hops"
	// deliverLocalHeader asks the far router to run a fanned-out command
	// on its own node rather than route it again.
	deliverLocalHeader = "x-continuum-deliver-local"
	// EnvHeader names the env a command addresses, for services that care.
	EnvHeader = "x-continuum-env"
)

// Route explains a URI's route without running anything.
func (s *Service) Route(_ context.Context, req *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
	u, err := uri.Parse(req.GetUri())
	if err != nil {
		return nil, uriError(req.GetUri(), err)
	}
	return &routerv1.RouteResponse{Decision: decisionProto(u)}, nil
}

func routeKind(k uri.Kind) routerv1.RouteKind {
	switch k {
	case uri.KindPeer:
		return routerv1.RouteKind_ROUTE_KIND_PEER
	case uri.KindRoom:
		return routerv1.RouteKind_ROUTE_KIND_ROOM
	case uri.KindBroadcast:
		return routerv1.RouteKind_ROUTE_KIND_BROADCAST
	default:
		return routerv1.RouteKind_ROUTE_KIND_LOCAL
	}
}

func decisionProto(u uri.URI) *routerv1.RouteDecision {
	d := uri.Route(u)
	return &routerv1.RouteDecision{
		Kind: routeKind(d.Kind), Peer: d.Peer, Node: d.Node, Env: d.Env, Room: d.Room,
		Path: d.Path, Query: d.Query, Fragment: d.Fragment, Uri: u.String(),
	}
}

// incoming reads what a previous router said about this command; only a
// mesh peer's word counts.
type incoming struct {
	hops         int
	deliverLocal bool
}

func readIncoming(ctx context.Context) incoming {
	var in incoming
	if !auth.Hop(ctx).IsMeshPeer() {
		return in
	}
	if v := metadata.ValueFromIncomingContext(ctx, hopsHeader); len(v) == 1 {
		if n, err := strconv.Atoi(v[0]); err == nil && n >= 0 {
			in.hops = n
		}
	}
	if v := metadata.ValueFromIncomingContext(ctx, deliverLocalHeader); len(v) == 1 && v[0] == "1" {
		in.deliverLocal = true
	}
	return in
}

// Dispatch parses, routes, gates and runs a command.
func (s *Service) Dispatch(ctx context.Context, req *routerv1.DispatchRequest) (*routerv1.DispatchResponse, error) {
	resp, err := s.dispatch(ctx, req)
	if err == nil {
		// Every response is built for its call and not kept: an
		// in-process caller may have it without a deep copy.
		rpc.HandOver(ctx)
	}
	return resp, err
}

func (s *Service) dispatch(ctx context.Context, req *routerv1.DispatchRequest) (*routerv1.DispatchResponse, error) {
	u, err := uri.Parse(req.GetUri())
	if err != nil {
		return nil, uriError(req.GetUri(), err)
	}
	if n := proto.Size(req.GetParams()); n > s.cfg.MaxParamsBytes {
		return nil, rpcerr.New(codes.InvalidArgument, ReasonParamsInvalid, "params too large",
			"size", strconv.Itoa(n), "limit", strconv.Itoa(s.cfg.MaxParamsBytes))
	}
	if err := jsonvalue.Check(req.GetParams(), jsonvalue.Limits{MaxValues: s.cfg.MaxParamsValues}); err != nil {
		return nil, rpcerr.New(codes.InvalidArgument, ReasonParamsInvalid, "params: "+err.Error())
	}
	caller := auth.Caller(ctx)
	canonical := u.String()
	kind := routeKind(u.Kind)
	ctx = telemetry.WithCommand(ctx, canonical, kind.String())
	if err := s.gate(ctx, caller, u, canonical, kind); err != nil {
		return nil, err
	}
	s.metrics.Dispatched.Add(1)
	in := readIncoming(ctx)

	if h := req.GetHandle(); h != nil {
		if h.GetOwnerNode() == "" || h.GetId() == "" {
			return nil, rpcerr.New(codes.InvalidArgument, ReasonHandleInvalid, "a handle needs owner_node and id")
		}
		if h.GetOwnerNode() != s.deps.Directory.Self() && !in.deliverLocal {
			return s.forward(ctx, caller, h.GetOwnerNode(), req, in, kind)
		}
	}
	if in.deliverLocal {
		return s.local(ctx, caller, u, req.GetParams(), kind)
	}
	switch u.Kind {
	case uri.KindPeer:
		hosts, err := s.deps.Directory.PeerHosts(u.Peer)
		if err != nil {
			return nil, err
		}
		target, ok := pickHost(hosts, u.Node, s.deps.Directory.Self())
		if !ok {
			return nil, rpcerr.New(codes.NotFound, ReasonPeerUnknown, "peer "+u.Peer+" is not hosted on node "+u.Node,
				"peer", u.Peer, "node", u.Node)
		}
		if target == s.deps.Directory.Self() {
			return s.local(ctx, caller, u, req.GetParams(), kind)
		}
		return s.forward(ctx, caller, target, req, in, kind)
	case uri.KindBroadcast:
		hosts, err := s.deps.Directory.PeerHosts(u.Peer)
		if err != nil {
			return nil, err
		}
		return s.fanout(ctx, caller, u, req, broadcastTargets(u, hosts), kind)
	case uri.KindRoom:
		nodes, err := s.deps.Directory.RoomMembers(u.Room)
		if err != nil {
			return nil, err
		}
		targets := make([]fanTarget, 0, len(nodes))
		for _, n := range nodes {
			targets = append(targets, fanTarget{node: n, env: u.Env})
		}
		return s.fanout(ctx, caller, u, req, targets, kind)
	default:
		return s.local(ctx, caller, u, req.GetParams(), kind)
	}
}

// pickHost chooses the node for a peer route: the named node, else this
// node when it hosts the peer, else the first host.
func pickHost(hosts []PeerHost, node, self string) (string, bool) {
	if node != "" {
		for _, h := range hosts {
			if h.Node == node {
				return h.Node, true
			}
		}
		return "", false
	}
	for _, h := range hosts {
		if h.Node == self {
			return self, true
		}
	}
	if len(hosts) == 0 {
		return "", false
	}
	return hosts[0].Node, true
}

type fanTarget struct {
	node string
	env  string
}

// broadcastTargets is one target per (node, env) of the peer; a node that
// declares no envs for the peer is one target with no env.
func broadcastTargets(u uri.URI, hosts []PeerHost) []fanTarget {
	var out []fanTarget
	for _, h := range hosts {
		if u.Node != "" && h.Node != u.Node {
			continue
		}
		if len(h.Envs) == 0 {
			out = append(out, fanTarget{node: h.Node})
			continue
		}
		for _, env := range h.Envs {
			out = append(out, fanTarget{node: h.Node, env: env})
		}
	}
	return out
}

// forward sends the command to another node's router, carrying the
// caller; the far router gates again with its own policy.
func (s *Service) forward(ctx context.Context, caller auth.Principal, node string, req *routerv1.DispatchRequest, in incoming, kind routerv1.RouteKind) (*routerv1.DispatchResponse, error) {
	if in.hops+1 > s.cfg.MaxHops {
		return nil, rpcerr.New(codes.Unavailable, ReasonRouteLoop, "command forwarded too often; membership views disagree",
			"hops", strconv.Itoa(in.hops), "node", s.cfg.Node)
	}
	conn, err := s.deps.Directory.Conn(ctx, node)
	if err != nil {
		return nil, unreachable(node, err)
	}
	s.metrics.ForwardedToPeers.Add(1)
	ctx, cancel := s.withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	octx := auth.OnBehalfOf(ctx, caller)
	octx = metadata.AppendToOutgoingContext(octx, hopsHeader, strconv.Itoa(in.hops+1))
	resp, err := routerv1.NewRouterServiceClient(conn).Dispatch(octx, req)
	if err != nil {
		return nil, transportError(node, err)
	}
	resp.RouteKind = kind
	return resp, nil
}

// transportError passes the far side's typed errors through unchanged and
// turns a failure to reach it into PEER_UNREACHABLE.
func transportError(node string, err error) error {
	st, _ := status.FromError(err)
	if st.Code() == codes.Unavailable && rpcerr.Reason(err) == "" {
		return unreachable(node, err)
	}
	return err
}

func unreachable(node string, err error) error {
	if rpcerr.Reason(err) != "" {
		return err
	}
	return rpcerr.New(codes.Unavailable, ReasonPeerUnreachable, "node "+node+" is unreachable: "+status.Convert(err).Message(), "node", node)
}

func (s *Service) withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// fanout runs the command on every target and reports each member's
// result or error; a partial failure is never hidden.
func (s *Service) fanout(ctx context.Context, caller auth.Principal, u uri.URI, req *routerv1.DispatchRequest, targets []fanTarget, kind routerv1.RouteKind) (*routerv1.DispatchResponse, error) {
	results := make([]*routerv1.MemberResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, s.cfg.FanoutTimeout)
			defer cancel()
			mr := &routerv1.MemberResult{Node: t.node, Peer: u.Peer, Env: t.env}
			var resp *routerv1.DispatchResponse
			var err error
			if t.node == s.deps.Directory.Self() {
				lctx := cctx
				if t.env != "" {
					lctx = metadata.NewIncomingContext(cctx, metadata.Join(mdIn(cctx), metadata.Pairs(EnvHeader, t.env)))
				}
				resp, err = s.local(lctx, caller, u, req.GetParams(), kind)
			} else {
				resp, err = s.deliverRemote(cctx, caller, t, u, req)
			}
			if err != nil {
				mr.Error = flatten(err)
			} else {
				mr.Result = resp.GetResult()
			}
			results[i] = mr
		}()
	}
	wg.Wait()
	return &routerv1.DispatchResponse{RouteKind: kind, ServedBy: s.cfg.Node, MemberResults: results}, nil
}

func mdIn(ctx context.Context) metadata.MD {
	md, _ := metadata.FromIncomingContext(ctx)
	return md
}

// deliverRemote asks a member's router to run a fanned-out command on its
// own node; it gates the original URI again with its own policy.
func (s *Service) deliverRemote(ctx context.Context, caller auth.Principal, t fanTarget, u uri.URI, req *routerv1.DispatchRequest) (*routerv1.DispatchResponse, error) {
	conn, err := s.deps.Directory.Conn(ctx, t.node)
	if err != nil {
		return nil, unreachable(t.node, err)
	}
	octx := auth.OnBehalfOf(ctx, caller)
	octx = metadata.AppendToOutgoingContext(octx, deliverLocalHeader, "1", hopsHeader, "1")
	if t.env != "" {
		octx = metadata.AppendToOutgoingContext(octx, EnvHeader, t.env)
	}
	resp, err := routerv1.NewRouterServiceClient(conn).Dispatch(octx, &routerv1.DispatchRequest{Uri: u.String(), Params: req.GetParams()})
	if err != nil {
		return nil, transportError(t.node, err)
	}
	return resp, nil
}

// flatten turns an error into a fan-out result's error.
func flatten(err error) *routerv1.Error {
	st := status.Convert(err)
	e := &routerv1.Error{Code: st.Code().String(), Message: st.Message()}
	if info := rpcerr.Info(err); info != nil {
		e.Reason = info.GetReason()
		e.Metadata = info.GetMetadata()
	}
	return e
}

// local runs a command on a member of this mesh that serves its service:
// params become the request message through its descriptor, and the
// response comes back as JSON. No glue per command exists.
func (s *Service) local(ctx context.Context, caller auth.Principal, u uri.URI, params *structpb.Struct, kind routerv1.RouteKind) (*routerv1.DispatchResponse, error) {
	m, err := resolveMethod(u.Path)
	if err != nil {
		return nil, err
	}
	in := m.in.New().Interface()
	if params != nil && !jsonvalue.ToMessage(params, in.ProtoReflect()) {
		// Left to protojson: it gives the same message, or its own error.
		in = m.in.New().Interface()
		b, err := protojson.Marshal(params)
		if err != nil {
			return nil, rpcerr.New(codes.InvalidArgument, ReasonParamsInvalid, "params: "+err.Error())
		}
		if err := protojson.Unmarshal(b, in); err != nil {
			return nil, rpcerr.New(codes.InvalidArgument, ReasonParamsInvalid,
				"params do not fit "+string(m.desc.Input().FullName())+": "+err.Error(), "message", string(m.desc.Input().FullName()))
		}
	}
	member, err := s.member(m, in)
	if err != nil {
		return nil, err
	}
	conn, err := s.deps.Directory.Conn(ctx, member)
	if err != nil {
		return nil, unreachable(member, err)
	}
	var env string
	if auth.Hop(ctx).IsMeshPeer() { // only a router hop may name the environment
		if v := metadata.ValueFromIncomingContext(ctx, EnvHeader); len(v) == 1 {
			env = v[0]
		}
	}
	out, header, err := s.call(ctx, conn, m, caller, env, in)
	if err != nil {
		if member != s.deps.Directory.Self() {
			return nil, transportError(member, err)
		}
		return nil, err
	}
	result, err := resultValue(out)
	if err != nil {
		return nil, err
	}
	resp := &routerv1.DispatchResponse{Result: result, RouteKind: kind, ServedBy: member}
	if tag, id, ok := handle.Parse(header); ok {
		resp.Handle = &routerv1.Handle{OwnerService: m.service, OwnerNode: member, Id: id, TypeTag: tag}
	}
	return resp, nil
}

// directCaller is a connection that runs a method of this process for a
// caller that hands its request over and only reads the response
// (rpc.Channel.Call): the router's own node, without the copies and the
// metadata round trip of a call through Invoke.
type directCaller interface {
	Call(ctx context.Context, method string, caller auth.Principal, md metadata.MD, in proto.Message, timeout time.Duration) (proto.Message, metadata.MD, bool, error)
}

// call runs the resolved method on conn for caller (env, when set, named
// in the x-continuum-env header), bounded by CallTimeout when ctx has no
// deadline, and returns the response, to be read only, and the header.
func (s *Service) call(ctx context.Context, conn grpc.ClientConnInterface, m *method, caller auth.Principal, env string, in proto.Message) (proto.Message, metadata.MD, error) {
	if dc, ok := conn.(directCaller); ok {
		var md metadata.MD
		if env != "" {
			md = metadata.Pairs(EnvHeader, env)
		}
		timeout := s.cfg.CallTimeout
		if _, ok := ctx.Deadline(); ok {
			timeout = 0
		}
		// in was built here and is not touched again; the response is
		// only read (resultValue).
		out, header, ok, err := dc.Call(ctx, m.full, caller, md, in, timeout)
		if ok {
			return out, header, err
		}
	}
	ctx, cancel := s.withTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	octx := auth.OnBehalfOf(ctx, caller)
	if env != "" {
		octx = metadata.AppendToOutgoingContext(octx, EnvHeader, env)
	}
	out := m.out.New().Interface()
	var header metadata.MD
	if err := conn.Invoke(octx, m.full, in, out, grpc.Header(&header)); err != nil {
		return nil, nil, err
	}
	return out, header, nil
}

// resultValue is a response message's protobuf-JSON form: built directly
// from the message, or through protojson text for what the direct path
// leaves to it (an Any, say), which also reports what has no JSON form.
func resultValue(out proto.Message) (*structpb.Value, error) {
	if v, ok := jsonvalue.FromMessage(out.ProtoReflect()); ok {
		return v, nil
	}
	b, err := protojson.Marshal(out)
	if err != nil {
		return nil, rpcerr.New(codes.Internal, "RESULT_ENCODING", "encode result: "+err.Error())
	}
	result := &structpb.Value{}
	if err := protojson.Unmarshal(b, result); err != nil {
		return nil, rpcerr.New(codes.Internal, "RESULT_ENCODING", "encode result: "+err.Error())
	}
	return result, nil
}

// member picks who serves a call: the owner of its shard key for a
// sharded service, else a live member serving the service.
func (s *Service) member(m *method, in proto.Message) (string, error) {
	if m.shardKey == nil {
		return s.deps.Directory.ServiceMember(m.service)
	}
	v := in.ProtoReflect().Get(m.shardKey).String()
	if v == "" {
		key := string(m.shardKey.Name())
		return "", rpcerr.New(codes.InvalidArgument, ReasonParamsInvalid, "params need "+key+" to route a "+m.service+" command",
			"field", key)
	}
	return s.deps.Directory.Owner(m.service, v)
}

// method is what a command path resolves to.
type method struct {
	desc    protoreflect.MethodDescriptor
	service string // the path's first segment, e.g. "genome"
	full    string // the gRPC method name, /package.Service/Method
	in, out protoreflect.MessageType
	// shardKey is the request field a sharded service is routed by, nil
	// for an unsharded one.
	shardKey protoreflect.FieldDescriptor
}

// methods caches resolutions that succeeded, keyed by command path; a
// path resolves only to a method this binary knows, so the cache is as
// big as the API at most (maxCachedMethods bounds it regardless).
var (
	methods       sync.Map // string → *method
	methodsCached atomic.Int64
)

const maxCachedMethods = 4096

// resolveMethod finds the method a command path names among the services
// this binary knows.
func resolveMethod(path string) (*method, error) {
	if m, ok := methods.Load(path); ok {
		return m.(*method), nil
	}
	md, svcShort, err := lookupMethod(path)
	if err != nil {
		return nil, err
	}
	m := &method{
		desc: md, service: svcShort,
		full: "/" + string(md.Parent().FullName()) + "/" + string(md.Name()),
		in:   messageType(md.Input()), out: messageType(md.Output()),
	}
	sd := md.Parent().(protoreflect.ServiceDescriptor)
	if key, _ := proto.GetExtension(sd.Options(), optionsv1.E_ShardKey).(string); key != "" {
		if fd := md.Input().Fields().ByName(protoreflect.Name(key)); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			m.shardKey = fd
		}
	}
	if methodsCached.Load() < maxCachedMethods {
		if _, loaded := methods.LoadOrStore(path, m); !loaded {
			methodsCached.Add(1)
		}
	}
	return m, nil
}

// messageType is the type of messages d describes: the generated type when
// this binary has one (its fast marshaling and field access matter on
// every dispatch), else a dynamic type.
func messageType(d protoreflect.MessageDescriptor) protoreflect.MessageType {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName()); err == nil && mt.Descriptor() == d {
		return mt
	}
	return dynamicpb.NewMessageType(d)
}

// lookupMethod finds the method descriptor a command path names.
func lookupMethod(path string) (protoreflect.MethodDescriptor, string, error) {
	_, service, method, err := uri.MethodFor(path)
	if err != nil {
		return nil, "", uriError(path, err)
	}
	svcShort, _, _ := strings.Cut(path, "/")
	svcName := protoreflect.FullName(service)
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(svcName)
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok {
		return nil, "", rpcerr.New(codes.NotFound, ReasonServiceUnknown, "no service "+svcShort+"; known: "+candidates(knownServices()),
			"service", svcShort, "candidates", candidates(knownServices()))
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, "", rpcerr.New(codes.NotFound, ReasonMethodUnknown, "service "+svcShort+" has no method for "+path+"; known: "+candidates(knownMethods(sd)),
			"service", svcShort, "candidates", candidates(knownMethods(sd)))
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, "", rpcerr.New(codes.InvalidArgument, ReasonMethodNotUnary, path+" is a streaming method; call it directly or use RouterService.Subscribe for events",
			"method", string(md.FullName()))
	}
	return md, svcShort, nil
}

func knownServices() []string {
	var out []string
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			if p, ok := uri.CommandPathFor("/" + string(fd.Services().Get(i).FullName()) + "/X"); ok {
				out = append(out, strings.SplitN(p, "/", 2)[0])
			}
		}
		return true
	})
	return out
}

func knownMethods(sd protoreflect.ServiceDescriptor) []string {
	var out []string
	for i := 0; i < sd.Methods().Len(); i++ {
		m := sd.Methods().Get(i)
		if p, ok := uri.CommandPathFor("/" + string(sd.FullName()) + "/" + string(m.Name())); ok {
			out = append(out, p)
		}
	}
	return out
}
