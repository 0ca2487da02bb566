package stack_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
)

func newStack(tb testing.TB, dir string, ports []int, services ...string) *stack.Stack {
	tb.Helper()
	st, err := stack.New(stack.Config{
		Dir: dir, RedisPort: ports[0], MySQLPort: ports[1], KafkaPort: ports[2], KafkaControllerPort: ports[3],
		Services: services, MySQLBufferPool: "128M", MySQLLogFileSize: "48M", KafkaHeap: "384m",
	}, testenv.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func ports(tb testing.TB) []int {
	tb.Helper()
	seen := map[int]bool{}
	var out []int
	for len(out) < 4 {
		if p := testenv.FreePort(tb); !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// gone reports whether no process with pid exists, or only a zombie whose
// threads have all exited.
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if f[0] != "Z" && f[0] != "X" {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}

// TestUpIdempotentAndDownLeavesNothing starts all three services, checks a
// second Up is a no-op (same pids) and that Down leaves no process behind.
var gcLogStart = regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}\]\[info\]\[gc\] Using G1\n`)

func TestUpIdempotentAndDownLeavesNothing(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st := newStack(t, t.TempDir(), ports(t))
	t.Cleanup(func() { _ = st.Down(context.Background()) })
	if err := st.Up(ctx); err != nil {
		t.Fatalf("first up: %v", err)
	}
	first := st.PIDs()
	if len(first) != 3 {
		t.Fatalf("running after up: %v, want redis, mysql and kafka", first)
	}
	// The broker logs its GC with UTC stamps, which couponctl bench reads
	// for each phase's pauses.
	logs := st.KafkaGCLogs()
	if len(logs) != 1 {
		t.Fatalf("Kafka GC logs %v, want one", logs)
	}
	if b, err := os.ReadFile(logs[0]); err != nil || !gcLogStart.Match(b) {
		t.Errorf("GC log %s (%v) does not start with a stamped \"Using G1\" line:\n%.300s", logs[0], err, b)
	}
	for _, s := range st.Status(ctx) {
		if !s.Running || !s.Answers {
			t.Fatalf("status %s: running=%v answers=%v err=%v", s.Name, s.Running, s.Answers, s.Err)
		}
	}
	t0 := time.Now()
	if err := st.Up(ctx); err != nil {
		t.Fatalf("second up: %v", err)
	}
	t.Logf("second up took %s", time.Since(t0))
	if second := st.PIDs(); fmt.Sprint(second) != fmt.Sprint(first) {
		t.Fatalf("second up changed pids: %v -> %v", first, second)
	}
	if err := st.Down(ctx); err != nil {
		t.Fatalf("down: %v", err)
	}
	for name, pid := range first {
		if !gone(pid) {
			t.Errorf("%s pid %d still running after down", name, pid)
		}
	}
	if left := st.PIDs(); len(left) != 0 {
		t.Errorf("pids after down: %v", left)
	}
	// The ports are free again.
	for _, s := range st.Status(ctx) {
		if s.Running {
			t.Errorf("%s still running after down", s.Name)
		}
	}
}

// TestConcurrentUpStartsOnce: two stack managers (separate lock handles, as
// two processes would have) bring up the same folder at once; one starts
// Redis, the other finds it running.
func TestConcurrentUpStartsOnce(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, p := t.TempDir(), ports(t)
	a, b := newStack(t, dir, p, stack.Redis), newStack(t, dir, p, stack.Redis)
	t.Cleanup(func() { _ = a.Down(context.Background()) })
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, st := range []*stack.Stack{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = st.Up(ctx) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("up %d: %v", i, err)
		}
	}
	pa, pb := a.PIDs()[stack.Redis], b.PIDs()[stack.Redis]
	if pa == 0 || pa != pb {
		t.Fatalf("redis pids %d and %d: want one running server", pa, pb)
	}
}

// TestKillAndRestart kills Redis with SIGKILL and starts it again.
func TestKillAndRestart(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := newStack(t, t.TempDir(), ports(t), stack.Redis)
	t.Cleanup(func() { _ = st.Down(context.Background()) })
	if err := st.Up(ctx); err != nil {
		t.Fatal(err)
	}
	pid := st.PIDs()[stack.Redis]
	if err := st.Kill(stack.Redis); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if !gone(pid) {
		t.Fatalf("pid %d alive after Kill", pid)
	}
	if s := st.Status(ctx)[0]; s.Running {
		t.Fatalf("status after kill: %+v", s)
	}
	if err := st.Start(ctx, stack.Redis); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if np := st.PIDs()[stack.Redis]; np == 0 || np == pid {
		t.Fatalf("pid after restart %d (before %d)", np, pid)
	}
}

// TestPortInUse: a port held by someone else gives an error naming it.
func TestPortInUse(t *testing.T) {
	testenv.Integration(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	p := ports(t)
	p[0] = busy
	st := newStack(t, t.TempDir(), p, stack.Redis)
	err = st.Up(context.Background())
	if err == nil {
		_ = st.Down(context.Background())
		t.Fatal("up on a busy port succeeded")
	}
	if want := fmt.Sprintf("port %d", busy); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error %q does not say %q is in use", err, want)
	}
	if len(st.PIDs()) != 0 {
		t.Fatalf("something started: %v", st.PIDs())
	}
}

// TestFailedStartShowsLog: a server that exits at start-up is reported with
// the last lines of its log.
func TestFailedStartShowsLog(t *testing.T) {
	testenv.Integration(t)
	dir := t.TempDir()
	// A corrupt AOF manifest makes redis-server refuse to start.
	aof := filepath.Join(dir, "redis", "data", "appendonlydir")
	if err := os.MkdirAll(aof, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(aof, "appendonly.aof.manifest"), []byte("this is not a manifest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := newStack(t, dir, ports(t), stack.Redis)
	t.Cleanup(func() { _ = st.Down(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := st.Up(ctx)
	if err == nil {
		t.Fatal("redis started on a corrupt AOF manifest")
	}
	if !strings.Contains(err.Error(), "last lines of") || !strings.Contains(err.Error(), "redis.log") {
		t.Fatalf("error does not show the log: %v", err)
	}
	t.Logf("error as shown:\n%v", err)
}

// TestConfigErrors covers bad configurations.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  stack.Config
		want string
	}{
		{"no dir", stack.Config{RedisPort: 1, MySQLPort: 2, KafkaPort: 3, KafkaControllerPort: 4}, "Dir is empty"},
		{"same port", stack.Config{Dir: "x", RedisPort: 1, MySQLPort: 1, KafkaPort: 3, KafkaControllerPort: 4}, "both 1"},
		{"bad port", stack.Config{Dir: "x", RedisPort: 70000, MySQLPort: 2, KafkaPort: 3, KafkaControllerPort: 4}, "out of range"},
		{"bad service", stack.Config{Dir: "x", RedisPort: 1, MySQLPort: 2, KafkaPort: 3, KafkaControllerPort: 4, Services: []string{"postgres"}}, "unknown service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stack.New(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want error containing %q", err, tt.want)
			}
		})
	}
	if _, err := stack.Profile("prod", "."); err == nil {
		t.Fatal("unknown profile accepted")
	}
}
