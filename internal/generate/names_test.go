package generate

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// why is a phrase the explanation must hold; "" is a valid name.
		why string
	}{
		{name: "widget"},
		{name: "s3store"},
		{name: "a"},
		{name: strings.Repeat("a", MaxNameLen)},
		{name: "", why: "empty"},
		{name: strings.Repeat("a", MaxNameLen+1), why: "at most 32"},
		{name: "1widget", why: "start with a lower-case letter"},
		{name: "my-svc", why: "proto package"},
		{name: "my_svc", why: "underscore"},
		{name: "Widget", why: "upper-case"},
		{name: "wid get", why: "not allowed"},
		{name: "wïdget", why: "not allowed"},
		{name: "func", why: "Go keyword"},
		{name: "string", why: "predeclared"},
		{name: "router", why: "mesh's own services"},
		{name: "gateway", why: "mesh's own services"},
		{name: "hippocampus", why: "mesh's own services"},
		{name: "all", why: "every service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateName(tc.name)
			if tc.why == "" {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v", tc.name, err)
				}
				return
			}
			var inv *InvalidNameError
			if !errors.As(err, &inv) || !strings.Contains(inv.Why, tc.why) {
				t.Fatalf("ValidateName(%q) = %v, want an InvalidNameError saying %q", tc.name, err, tc.why)
			}
		})
	}
}

func TestValidateMethods(t *testing.T) {
	t.Parallel()
	many := make([]string, MaxMethods+1)
	for i := range many {
		many[i] = "M" + strings.Repeat("a", i+1)
	}
	tests := []struct {
		name    string
		methods []string
		why     string
	}{
		{name: "one", methods: []string{"Ping"}},
		{name: "several", methods: []string{"Ping", "Echo", "GetHTTPStatus", "V2", "A1B"}},
		{name: "none", methods: nil, why: "no methods"},
		{name: "too many", methods: many, why: "at most 32"},
		{name: "lower case", methods: []string{"ping"}, why: "upper-case letter"},
		{name: "underscore", methods: []string{"Get_Status"}, why: "not allowed"},
		{name: "hyphen", methods: []string{"Get-Status"}, why: "not allowed"},
		{name: "empty", methods: []string{""}, why: "empty"},
		{name: "too long", methods: []string{"M" + strings.Repeat("a", MaxMethodLen)}, why: "at most 64"},
		{name: "twice", methods: []string{"Ping", "Echo", "Ping"}, why: "twice"},
		{name: "clashes with Register", methods: []string{"Register"}, why: "already has a method"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateMethods("widget", tc.methods)
			if tc.why == "" {
				if err != nil {
					t.Fatalf("ValidateMethods(%q) = %v", tc.methods, err)
				}
				return
			}
			var inv *InvalidMethodError
			if !errors.As(err, &inv) || !strings.Contains(inv.Why, tc.why) {
				t.Fatalf("ValidateMethods(%q) = %v, want an InvalidMethodError saying %q", tc.methods, err, tc.why)
			}
		})
	}
}

func TestCommandPath(t *testing.T) {
	t.Parallel()
	for method, want := range map[string]string{
		"Ping": "widget/ping", "GetStatus": "widget/get-status", "GetHTTPStatus": "widget/get-h-t-t-p-status", "PingV2": "widget/ping-v2",
	} {
		if got := commandPath("widget", method); got != want {
			t.Errorf("commandPath(widget, %s) = %q, want %q", method, got, want)
		}
	}
}
