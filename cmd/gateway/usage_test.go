package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestBinariesUsageRedactsSecrets runs every binary (gateway, sinker and
// each couponctl command) with -h and with a mistyped flag, secrets set in
// the environment: the usage text shows them as [redacted], never their
// values.
func TestBinariesUsageRedactsSecrets(t *testing.T) {
	bins := buildBinaries(t, "gateway", "sinker", "couponctl")
	secrets := map[string]string{
		"COUPON_ADMIN_TOKEN":      "usage-admin-token-0123456789",
		"COUPON_JWT_HS256_SECRET": "usage-hs256-secret-0123456789abcdef0123",
		"COUPON_MYSQL_DSN":        "root:usage-dsn-password@tcp(127.0.0.1:1)/coupon",
		"COUPON_BENCH_MYSQL_DSN":  "root:usage-bench-dsn-password@tcp(127.0.0.1:1)/coupon",
		"COUPON_REDIS_PASSWORD":   "usage-redis-password",
	}
	env := os.Environ()
	for k, v := range secrets {
		env = append(env, k+"="+v)
	}
	run := func(bin string, args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		out, _ := cmd.CombinedOutput() // exit 2 for usage
		return string(out)
	}
	type invocation struct {
		bin  string
		args []string
	}
	var runs []invocation
	for _, bad := range []string{"-h", "--no-such-flag"} {
		runs = append(runs, invocation{bins["gateway"], []string{bad}}, invocation{bins["sinker"], []string{bad}})
		// Every couponctl command, from its own command list.
		for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]+) `).FindAllStringSubmatch(run(bins["couponctl"]), -1) {
			args := []string{m[1], bad}
			if m[1] == "stack" {
				args = []string{"stack", "up", bad}
			}
			runs = append(runs, invocation{bins["couponctl"], args})
		}
	}
	if len(runs) < 10 {
		t.Fatalf("only %d invocations: is the couponctl command list parsed?", len(runs))
	}
	redacted := 0
	for _, r := range runs {
		out := run(r.bin, r.args...)
		for k, v := range secrets {
			if strings.Contains(out, v) {
				t.Errorf("%s %s prints %s:\n%s", r.bin, strings.Join(r.args, " "), k, out)
			}
		}
		if strings.Contains(out, `(default "[redacted]")`) {
			redacted++
		}
	}
	if redacted < len(runs)/2 {
		t.Fatalf("only %d of %d usage texts show a [redacted] default: are they printed?", redacted, len(runs))
	}
}
