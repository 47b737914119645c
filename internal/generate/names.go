package generate

import (
	"fmt"
	"go/token"
	"slices"
	"strings"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

// MaxNameLen bounds a service name: it becomes a directory, a Go package, a
// proto package segment, a compose service and a command-path segment.
const MaxNameLen = 32

// MaxMethodLen bounds a method name.
const MaxMethodLen = 64

// MaxMethods bounds how many methods one run scaffolds.
const MaxMethods = 32

// builtinServices are the mesh's own services and the HTTP gateway: a
// generated service may never take one of these names, not even with
// --force.
var builtinServices = []string{
	"audit", "debug", "events", "gateway", "genome", "hippocampus", "mesh", "router",
}

// predeclared are Go's predeclared identifiers. A package named after one
// compiles, but shadows the built-in in every file that imports it.
var predeclared = []string{
	"any", "append", "bool", "byte", "cap", "clear", "close", "comparable", "complex",
	"complex128", "complex64", "copy", "delete", "error", "false", "float32", "float64",
	"imag", "int", "int16", "int32", "int64", "int8", "iota", "len", "make", "max", "min",
	"new", "nil", "panic", "print", "println", "real", "recover", "rune", "string", "true",
	"uint", "uint16", "uint32", "uint64", "uint8", "uintptr",
}

// reservedMethods are method names the generated Service type already
// uses for something else.
var reservedMethods = []string{"Register"}

// ValidateName reports why name cannot be a generated service's name, or
// nil. The name is at once the directory services/<name>, the Go package
// <name>, the proto package continuum.<name>.v1, the first segment of the
// service's command paths (<name>/<method>) and its compose service, so it
// must be valid as all of them.
func ValidateName(name string) error {
	bad := func(why string) error {
		return &InvalidNameError{Name: name, Why: why}
	}
	switch {
	case name == "":
		return bad("the name is empty")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("it is %d characters long; at most %d are allowed", len(name), MaxNameLen))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case isLowerLetter(c), isDigit(c):
		case c == '-':
			return bad("hyphens are not allowed: the name is also the proto package continuum.<name>.v1 " +
				"and the Go package <name>, and neither may contain a hyphen (write \"" + strings.ReplaceAll(name, "-", "") + "\")")
		case c == '_':
			return bad("underscores are not allowed: the name is also the Go package <name> and the command path <name>/<method>, " +
				"where the router maps an underscore to a hyphen (write \"" + strings.ReplaceAll(name, "_", "") + "\")")
		case 'A' <= c && c <= 'Z':
			return bad("upper-case letters are not allowed: proto packages and command paths are lower case (write \"" + strings.ToLower(name) + "\")")
		default:
			return bad(fmt.Sprintf("the character %q is not allowed: use lower-case letters and digits only", rune(c)))
		}
	}
	switch {
	case !isLowerLetter(name[0]):
		return bad("it must start with a lower-case letter (a-z)")
	case token.IsKeyword(name):
		return bad("it is a Go keyword and cannot name a Go package")
	case slices.Contains(predeclared, name):
		return bad("it is a Go predeclared identifier; a package of that name would shadow it wherever it is imported")
	case name == "all":
		return bad("`continuum serve all` reads \"all\" as every service")
	case slices.Contains(builtinServices, name):
		return bad("it is one of the mesh's own services (" + strings.Join(builtinServices, ", ") + ")")
	}
	// The router finds a service's methods by the command-path convention
	// alone; make sure this name round-trips through it.
	if _, svc, _, err := uri.MethodFor(name + "/ping"); err != nil || svc != protoPackage(name)+"."+title(name)+"Service" {
		return bad("it does not map to a gRPC service through the command-path convention (docs/generate.md)")
	}
	return nil
}

// ValidateMethods checks the method names of one run: each is a proto RPC
// name in Pascal case ([A-Z][A-Za-z0-9]*) whose command path maps back to
// it, listed once.
func ValidateMethods(name string, methods []string) error {
	if len(methods) == 0 {
		return &InvalidMethodError{Why: "no methods given"}
	}
	if len(methods) > MaxMethods {
		return &InvalidMethodError{Why: fmt.Sprintf("%d methods given; at most %d per run", len(methods), MaxMethods)}
	}
	seen := map[string]bool{}
	for _, m := range methods {
		bad := func(why string) error { return &InvalidMethodError{Method: m, Why: why} }
		switch {
		case m == "":
			return bad("the name is empty")
		case len(m) > MaxMethodLen:
			return bad(fmt.Sprintf("it is %d characters long; at most %d are allowed", len(m), MaxMethodLen))
		case !isUpperLetter(m[0]):
			return bad("it must start with an upper-case letter (RPC names are Pascal case, e.g. Ping, GetStatus)")
		case slices.Contains(reservedMethods, m):
			return bad("the generated Service type already has a method of that name")
		case seen[m]:
			return bad("it is listed twice")
		}
		for i := 0; i < len(m); i++ {
			if c := m[i]; !isLowerLetter(c) && !isUpperLetter(c) && !isDigit(c) {
				return bad(fmt.Sprintf("the character %q is not allowed: RPC names are letters and digits in Pascal case", rune(c)))
			}
		}
		full := "/" + protoPackage(name) + "." + title(name) + "Service/" + m
		path, ok := uri.CommandPathFor(full)
		if !ok {
			return bad("it does not map to a command path")
		}
		if back, _, _, err := uri.MethodFor(path); err != nil || back != full {
			return bad("its command path " + path + " does not map back to it")
		}
		seen[m] = true
	}
	return nil
}

// protoPackage is the proto package of a service: continuum.<name>.v1.
func protoPackage(name string) string { return "continuum." + name + ".v1" }

// title is the name with its first letter in upper case: the proto service
// is <Title>Service.
func title(name string) string {
	if name == "" {
		return ""
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

// commandPath is the command path of a method: <name>/<method-in-kebab>.
func commandPath(name, method string) string {
	path, _ := uri.CommandPathFor("/" + protoPackage(name) + "." + title(name) + "Service/" + method)
	return path
}

func isLowerLetter(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpperLetter(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool       { return '0' <= c && c <= '9' }
