package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
)

// TestUsageRedactsSecrets: -h and a mistyped flag print the usage text,
// whose defaults come from the environment: a secret set there shows as
// [redacted], like in Redacted, and never as its value.
func TestUsageRedactsSecrets(t *testing.T) {
	const secret = "hunter2-0123456789-secret"
	t.Setenv("CLITEST_SECRET", secret)
	t.Setenv("CLITEST_PLAIN", "shown")
	for _, args := range [][]string{{"-h"}, {"--nope"}} {
		var out bytes.Buffer
		var s, unset, p string
		fs := New("test")
		fs.SetOutput(&out)
		fs.SecretVar(&s, "secret", "CLITEST_SECRET", "", "a secret")
		fs.SecretVar(&unset, "unset", "CLITEST_UNSET", "", "an unset secret")
		fs.StringVar(&p, "plain", "CLITEST_PLAIN", "", "not a secret")
		err := fs.Parse(args)
		if err == nil || args[0] == "-h" && !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("Parse(%v) = %v", args, err)
		}
		usage := out.String()
		if strings.Contains(usage, secret) || strings.Contains(fmt.Sprint(fs.Redacted()...), secret) {
			t.Fatalf("%v: the secret is shown:\n%s", args, usage)
		}
		if !strings.Contains(usage, `(default "[redacted]")`) || !strings.Contains(usage, `(default "shown")`) {
			t.Fatalf("%v: usage lacks the redacted and the plain defaults:\n%s", args, usage)
		}
		if strings.Count(usage, "[redacted]") != 1 {
			t.Fatalf("%v: an unset secret shows a default:\n%s", args, usage)
		}
		if s != secret {
			t.Fatalf("the secret's value is %q, want the environment's", s)
		}
	}
}
