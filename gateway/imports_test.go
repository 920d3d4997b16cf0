package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoCaddyOrZap keeps the package (and everything it imports) free of Caddy and zap: only
// the caddymodule adapter may import them.
func TestNoCaddyOrZap(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/caddyserver/") || strings.HasPrefix(dep, "go.uber.org/zap") {
			t.Errorf("gateway depends on %s", dep)
		}
	}
}
