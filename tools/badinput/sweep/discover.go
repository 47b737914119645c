package sweep

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// discovery is what the server says it serves: the services whose names
// start with the prefix, and the descriptors of their files.
type discovery struct {
	files    *protoregistry.Files
	services []protoreflect.ServiceDescriptor
	// all lists every service the server named, for the health check.
	all []string
}

// discover asks the server's reflection service which services it serves
// and fetches their file descriptors with every dependency, so the sweep
// needs no compiled-in list: a service wired into the node tomorrow is
// swept tomorrow.
func discover(ctx context.Context, cc grpc.ClientConnInterface, prefix string) (*discovery, error) {
	stream, err := reflectionv1.NewServerReflectionClient(cc).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("reflection: %w", err)
	}
	defer func() { _ = stream.CloseSend() }()
	ask := func(req *reflectionv1.ServerReflectionRequest) (*reflectionv1.ServerReflectionResponse, error) {
		if err := stream.Send(req); err != nil {
			return nil, fmt.Errorf("reflection: send: %w", err)
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("reflection: %w", err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			return nil, fmt.Errorf("reflection: %s (code %d)", e.GetErrorMessage(), e.GetErrorCode())
		}
		return resp, nil
	}

	resp, err := ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}})
	if err != nil {
		return nil, err
	}
	d := &discovery{}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		d.all = append(d.all, s.GetName())
		if strings.HasPrefix(s.GetName(), prefix) {
			names = append(names, s.GetName())
		}
	}
	slices.Sort(names)
	slices.Sort(d.all)

	files := map[string]*descriptorpb.FileDescriptorProto{}
	add := func(resp *reflectionv1.ServerReflectionResponse) error {
		for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(raw, fd); err != nil {
				return fmt.Errorf("reflection: file descriptor: %w", err)
			}
			files[fd.GetName()] = fd
		}
		return nil
	}
	for _, name := range names {
		resp, err := ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: name}})
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		if err := add(resp); err != nil {
			return nil, err
		}
	}
	// The server sends each file's dependencies once per stream; fetch any
	// that are still missing by name.
	for {
		var missing []string
		for _, fd := range files {
			for _, dep := range fd.GetDependency() {
				if _, ok := files[dep]; !ok && !slices.Contains(missing, dep) {
					missing = append(missing, dep)
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		for _, dep := range missing {
			resp, err := ask(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileByFilename{FileByFilename: dep}})
			if err != nil {
				return nil, fmt.Errorf("file %s: %w", dep, err)
			}
			if err := add(resp); err != nil {
				return nil, err
			}
			if _, ok := files[dep]; !ok {
				return nil, fmt.Errorf("reflection: the server did not send %s", dep)
			}
		}
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range files {
		set.File = append(set.File, fd)
	}
	d.files, err = protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("reflection: build descriptors: %w", err)
	}
	for _, name := range names {
		desc, err := d.files.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		sd, ok := desc.(protoreflect.ServiceDescriptor)
		if !ok {
			return nil, fmt.Errorf("%s is not a service", name)
		}
		d.services = append(d.services, sd)
	}
	return d, nil
}

// methods lists every method of the discovered services, sorted by full
// name.
func (d *discovery) methods() []method {
	var out []method
	for _, sd := range d.services {
		ms := sd.Methods()
		for i := range ms.Len() {
			out = append(out, newMethod(ms.Get(i)))
		}
	}
	slices.SortFunc(out, func(a, b method) int { return strings.Compare(a.full, b.full) })
	return out
}
