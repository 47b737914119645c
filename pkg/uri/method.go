package uri

import "strings"

// A command path <service>/<method> names a gRPC method by convention alone,
// so the router needs no per-command glue:
//
//	genome/page-in       ->  /continuum.genome.v1.GenomeService/PageIn
//	debug/set-log-level  ->  /continuum.debug.v1.DebugService/SetLogLevel
//	event-bus/publish    ->  /continuum.event_bus.v1.EventBusService/Publish
//
// Both segments are lower-case kebab words: [a-z][a-z0-9]*(-[a-z][a-z0-9]*)*.
// A word after a hyphen must start with a letter, because "v-2" and "v2"
// would otherwise both name V2: two spellings of one method would let a path
// dodge a policy rule written for the other. With that restriction the
// mapping is one-to-one and CommandPathFor is its exact inverse. A hyphen in
// the service becomes "_" in the proto package (buf's lower_snake_case).

const (
	methodPrefix  = "continuum."
	methodVersion = ".v1."
	serviceSuffix = "Service"
)

// MethodFor maps a command path to its gRPC method. fullMethod is in the form
// grpc.UnaryServerInfo.FullMethod uses ("/pkg.Service/Method"), service is
// the fully-qualified service name ("continuum.genome.v1.GenomeService", as
// in grpc.ServiceDesc and health checks) and method the bare method name
// ("PageIn"). A path that is not exactly two kebab segments is a
// *ParseError with Reason URI_NOT_A_COMMAND.
func MethodFor(path string) (fullMethod, service, method string, err error) {
	svc, m, ok := strings.Cut(path, "/")
	if !ok || !isKebab(svc) || !isKebab(m) {
		return "", "", "", newError(ReasonNotACommand, path,
			"a command path is <service>/<method> in lower-case kebab case")
	}
	service = methodPrefix + strings.ReplaceAll(svc, "-", "_") + methodVersion + pascal(svc) + serviceSuffix
	method = pascal(m)
	return "/" + service + "/" + method, service, method, nil
}

// CommandPathFor is the inverse of MethodFor: it accepts a full method with
// or without the leading "/" and reports false for any method that MethodFor
// cannot produce (another package, version or naming scheme).
func CommandPathFor(fullMethod string) (string, bool) {
	s := strings.TrimPrefix(fullMethod, "/")
	s, ok := strings.CutPrefix(s, methodPrefix)
	if !ok {
		return "", false
	}
	pkg, s, ok := strings.Cut(s, methodVersion)
	if !ok || !isSnake(pkg) {
		return "", false
	}
	svcName, m, ok := strings.Cut(s, "/")
	if !ok || !isPascal(m) {
		return "", false
	}
	svc := strings.ReplaceAll(pkg, "_", "-")
	if svcName != pascal(svc)+serviceSuffix {
		return "", false
	}
	return svc + "/" + kebab(m), true
}

// isKebab reports [a-z][a-z0-9]*(-[a-z][a-z0-9]*)*.
func isKebab(s string) bool { return isWords(s, '-') }

// isSnake reports [a-z][a-z0-9]*(_[a-z][a-z0-9]*)*, the proto package form.
func isSnake(s string) bool { return isWords(s, '_') }

func isWords(s string, sep byte) bool {
	if s == "" {
		return false
	}
	wordStart := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isLower(c):
			wordStart = false
		case isDigit(c) && !wordStart:
		case c == sep && !wordStart && i != len(s)-1:
			wordStart = true
		default:
			return false
		}
	}
	return true
}

// isPascal reports ([A-Z][a-z0-9]*)+, the image of pascal over kebab words.
func isPascal(s string) bool {
	if s == "" || !isUpper(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isUpper(c) && !isLower(c) && !isDigit(c) {
			return false
		}
	}
	return true
}

// pascal turns valid kebab ("set-log-level") into "SetLogLevel".
func pascal(k string) string {
	b := make([]byte, 0, len(k))
	up := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '-' {
			up = true
			continue
		}
		if up && isLower(c) {
			c -= 'a' - 'A'
		}
		up = false
		b = append(b, c)
	}
	return string(b)
}

// kebab turns valid Pascal case ("SetLogLevel") into "set-log-level"; every
// upper-case letter starts a word.
func kebab(p string) string {
	b := make([]byte, 0, len(p)+4)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if isUpper(c) {
			if i > 0 {
				b = append(b, '-')
			}
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}
