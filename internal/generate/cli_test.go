package generate

import (
	"errors"
	"strings"
	"testing"
)

func TestRunCLI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		// usage: a *UsageError is wanted; help: the usage text is printed.
		usage, help bool
		// out holds what the output must say, for a run that generates.
		out []string
	}{
		{name: "nothing", args: nil, usage: true},
		{name: "unknown generator", args: []string{"client", "x"}, usage: true},
		{name: "no name", args: []string{"service"}, usage: true},
		{name: "two names", args: []string{"service", "a", "b"}, usage: true},
		{name: "unknown flag", args: []string{"service", "widget", "--nope"}, usage: true},
		{name: "help", args: []string{"--help"}, help: true},
		{name: "service help", args: []string{"service", "-h"}, help: true},
		{
			name: "flags after the name",
			args: []string{"service", "widget", "--method", "Ping", "--method=Echo"},
			out: []string{
				"continuum generate service widget (methods Ping, Echo)",
				"wrote    proto/continuum/widget/v1/widget.proto",
				"wrote    services/widget/widget.go",
				"wrote    services/widget/config.go",
				"wrote    services/widget/errors.go",
				"wrote    services/widget/widget_test.go",
				`updated  pkg/node/wiring.go: case "widget" in wire()`,
				`updated  pkg/node/config.go: "widget" in AllServices`,
				"updated  docker-compose.yml: service widget, volume widget-data",
				"Command paths: widget/ping, widget/echo.",
				"make generate && make test",
				"bin/buf generate --path proto/continuum/widget",
				"go test -race ./services/widget/...",
			},
		},
		{
			name: "flags before the name, default method",
			args: []string{"service", "--force", "gadget"},
			out:  []string{"(methods Ping)", "Command paths: gadget/ping."},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := fixture(t)
			args := append([]string(nil), tc.args...)
			if len(args) > 0 && args[0] == "service" {
				args = append(args, "--root", root)
			}
			var out strings.Builder
			err := RunCLI(args, &out)
			var usage *UsageError
			switch {
			case tc.usage:
				if !errors.As(err, &usage) {
					t.Fatalf("err = %v, want *UsageError", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tc.help:
				if out.String() != Usage {
					t.Errorf("help printed %q", out.String())
				}
				return
			}
			for _, want := range tc.out {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
