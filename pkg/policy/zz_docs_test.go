package policy_test

import (
	"os"
	"strings"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/policy"
)

func TestZZDocs(t *testing.T) {
	b, _ := os.ReadFile("../../docs/policy.md")
	parts := strings.Split(string(b), "```yaml\n")
	for _, p := range parts[1:] {
		y := strings.SplitN(p, "```", 2)[0]
		_, err := policy.Parse([]byte(y))
		t.Logf("err=%v\n%s", err, y[:40])
	}
}
