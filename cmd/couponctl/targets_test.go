package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
	gomysql "github.com/go-sql-driver/mysql"
)

// mustBuild builds couponctl into a temporary folder.
func mustBuild(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "couponctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runCtl runs bin with args in an environment holding no COUPON_* variable
// but env; it returns stdout, stderr and the exit code.
func runCtl(tb testing.TB, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COUPON_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		tb.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func port(tb testing.TB, addr string) string {
	tb.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestOperatorCommandTouchesItsStackOnly starts `couponctl reconcile` with
// nothing but the test stack's settings (COUPON_STACK_*): it names the test
// stack's servers and no other, and its --fix changes the test stack's gate.
// A database without the coupon schema, or an explicit DSN contradicting
// the stack settings, is refused before anything changes.
func TestOperatorCommandTouchesItsStackOnly(t *testing.T) {
	testenv.Integration(t)
	dsn, err := gomysql.ParseDSN(testenv.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	if dsn.DBName != dbName("test") {
		t.Skipf("the test database is %s, not the test profile's %s", dsn.DBName, dbName("test"))
	}
	bin := mustBuild(t)
	ctx := context.Background()
	rdb := testenv.MustOpenRedis(t)
	gate, err := admitter.NewFromClient(rdb, admitter.DefaultConfig(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	sdb := testenv.MustOpenDB(t)
	res, err := sdb.ExecContext(ctx, `INSERT INTO coupons (name, total_quantity) VALUES ('couponctl-targets', 5)`)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	t.Cleanup(func() { _ = gate.Drop(context.Background(), id) })
	if err := gate.Init(ctx, id, 5); err != nil {
		t.Fatal(err)
	}
	// An admission never published: reconcile reports it, --fix releases it.
	if _, err := gate.Admit(ctx, id, 7, 5); err != nil {
		t.Fatal(err)
	}
	admitted := func() bool {
		t.Helper()
		_, ok, err := gate.Rank(ctx, id, 7)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	topic := testenv.MustCreateTopic(t, 2)
	brokers := testenv.KafkaBrokers
	// The test stack's Redis shape: with a Redis Cluster (make test
	// COUPON_STACK_REDIS_MODE=cluster) couponctl must be told, as an
	// operator would, or it talks to one node as a standalone Redis and
	// meets MOVED; it then names every node of the cluster.
	mode := stack.RedisStandalone
	if testenv.RedisCluster {
		mode = stack.RedisCluster
	}
	redisPort, err := strconv.Atoi(port(t, testenv.RedisAddr))
	if err != nil {
		t.Fatal(err)
	}
	st, err := (&stackFlags{profile: "test", redisPort: redisPort, redisMode: mode}).open()
	if err != nil {
		t.Fatal(err)
	}
	redisAddrs := st.Clients(dbName("test")).RedisAddrs
	stackEnv := []string{
		"COUPON_STACK_PROFILE=test",
		"COUPON_STACK_DIR=" + t.TempDir(),
		"COUPON_STACK_REDIS_PORT=" + port(t, testenv.RedisAddr),
		"COUPON_STACK_REDIS_MODE=" + mode,
		"COUPON_STACK_MYSQL_PORT=" + port(t, dsn.Addr),
		"COUPON_STACK_KAFKA_PORT=" + port(t, brokers[0]),
		"COUPON_TOPIC=" + topic,
		"COUPON_GROUP_ID=nobody-" + testenv.RandomID(),
		"COUPON_RECONCILE_GRACE=0s",
	}
	want := append([]string{dsn.Addr, brokers[0]}, redisAddrs...)
	args := []string{"reconcile", "--coupon", testenv.Itoa(id)}

	// Read only: the admission is an inconsistency, the exit code says so.
	out, errOut, code := runCtl(t, bin, stackEnv, args...)
	t.Logf("reconcile:\n%s%s", errOut, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || lines[len(lines)-1] != "1 inconsistency" {
		t.Fatalf("reconcile exited %d ending %q, want 1 and \"1 inconsistency\"", code, lines[len(lines)-1])
	}
	addrs := regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`).FindAllString(errOut, -1)
	for _, a := range addrs {
		if !slices.Contains(want, a) {
			t.Fatalf("reconcile names %s, not a server of the test stack %v", a, want)
		}
	}
	for _, w := range []string{"Redis  " + strings.Join(redisAddrs, ","), "MySQL  " + dsn.Addr + "/" + dsn.DBName, "Kafka  " + brokers[0]} {
		if !strings.Contains(errOut, w+", from the test stack (COUPON_STACK_PROFILE, COUPON_STACK_") {
			t.Fatalf("reconcile does not announce %q from the test stack's settings:\n%s", w, errOut)
		}
	}

	// Refused before any change: the stack settings and an explicit DSN
	// disagree; a database without the coupon schema.
	admin := *dsn
	admin.DBName = ""
	adb, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	empty := "coupon_empty_" + testenv.RandomID()
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE `"+empty+"`"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = adb.Exec("DROP DATABASE IF EXISTS `" + empty + "`") })
	other := *dsn
	other.DBName = empty
	explicit := []string{
		"COUPON_REDIS_ADDRS=" + testenv.RedisAddr, "COUPON_KAFKA_BROKERS=" + brokers[0],
		"COUPON_MYSQL_DSN=" + other.FormatDSN(), "COUPON_TOPIC=" + topic, "COUPON_RECONCILE_GRACE=0s",
	}
	for _, tc := range []struct {
		name, want string
		env        []string
	}{
		{"ambiguous", "ambiguous servers", append(slices.Clone(stackEnv), "COUPON_MYSQL_DSN="+other.FormatDSN())},
		{"no coupon schema", "has no coupon schema", explicit},
	} {
		out, errOut, code := runCtl(t, bin, tc.env, append(args, "--fix")...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Fatalf("%s: reconcile --fix exited %d, want 1 with %q:\n%s%s", tc.name, code, tc.want, errOut, out)
		}
		if !admitted() {
			t.Fatalf("%s: reconcile --fix was refused but released the admission", tc.name)
		}
	}

	// --fix with the stack settings: the test stack's gate is fixed.
	out, errOut, code = runCtl(t, bin, stackEnv, append(args, "--fix")...)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || !strings.HasPrefix(lines[len(lines)-1], "all consistent") || admitted() {
		t.Fatalf("reconcile --fix exited %d, admission kept %v:\n%s%s", code, admitted(), errOut, out)
	}
}
