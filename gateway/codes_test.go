package gateway

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestErrorCodesDocumented: every code of the root package's error.go maps
// to the status its comment states, and the README's error table lists it
// with that status.
func TestErrorCodesDocumented(t *testing.T) {
	src, err := os.ReadFile("../error.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`(?m)^\s*E[A-Z]+\s*=\s*"([a-z_]+)"\s*// (\d{3}):`)
	codes := decl.FindAllSubmatch(src, -1)
	if len(codes) < 10 {
		t.Fatalf("found only %d codes in error.go: is the pattern broken?", len(codes))
	}
	for _, m := range codes {
		code := string(m[1])
		status, _ := strconv.Atoi(string(m[2]))
		if got := statusOf(code); got != status {
			t.Errorf("%s: error.go says %d, statusOf answers %d", code, status, got)
		}
		if row := "| `" + code + "` | " + strconv.Itoa(status) + " |"; !strings.Contains(string(readme), row) {
			t.Errorf("the README's error table has no row %q", row)
		}
	}
}
