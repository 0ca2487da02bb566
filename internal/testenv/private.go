package testenv

import (
	"context"
	"database/sql"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon/infra/stack"
	couponmysql "github.com/coupondrop/coupon/mysql"
)

// MustStartPrivate starts a PRIVATE stack of the given services (default
// all) on free ports in a temporary folder, for tests that stop, kill or
// wipe a server (broker restarts, FLUSHALL) without touching the shared test
// stack. Everything is stopped at cleanup. Use st.RedisAddr(),
// st.MySQLDSN(db), st.KafkaBrokers(), and st.Stop/Start/Kill(name).
//
// A private MariaDB takes ~5 s to initialise and a private Kafka ~10 s to
// start: share one per test binary (TestMain or sync.Once) where you can.
func MustStartPrivate(tb testing.TB, services ...string) *stack.Stack {
	tb.Helper()
	return MustStartPrivateShape(tb, Shape{}, services...)
}

// Shape selects a replicated private stack: KafkaNodes 3 and RedisMode
// stack.RedisSentinel or stack.RedisCluster (zero values: one node each).
type Shape struct {
	KafkaNodes int
	RedisMode  string
}

// MustStartPrivateShape is MustStartPrivate in a replicated shape, each
// service's nodes on a block of consecutive free ports. st.Status lists
// the nodes (kafka-1..3, redis-1..3 and sentinel-1..3, or redis-1..6)
// with their role, address and pid; st.Kill(node) crashes one.
func MustStartPrivateShape(tb testing.TB, shape Shape, services ...string) *stack.Stack {
	tb.Helper()
	Integration(tb)
	if len(services) == 0 {
		services = stack.AllServices
	}
	redisPorts := map[string]int{stack.RedisSentinel: 6, stack.RedisCluster: 12}[shape.RedisMode]
	kafkaPorts := 2 * max(shape.KafkaNodes, 1)
	blocks := freeBlocks(tb, max(redisPorts, 1), 1, kafkaPorts)
	cfg := stack.Config{
		Dir:                 tb.TempDir(),
		RedisPort:           blocks[0],
		MySQLPort:           blocks[1],
		KafkaPort:           blocks[2],
		KafkaControllerPort: blocks[2] + 1,
		KafkaNodes:          shape.KafkaNodes,
		RedisMode:           shape.RedisMode,
		Services:            services,
		MySQLBufferPool:     "128M",
		MySQLLogFileSize:    "48M",
		KafkaHeap:           "384m",
		Out:                 tbWriter{tb},
	}
	if shape.KafkaNodes > 1 {
		cfg.KafkaHeap = "256m"
	}
	st, err := stack.New(cfg, Logger(tb))
	if err != nil {
		tb.Fatalf("private stack: %v", err)
	}
	// Registered before Up, so a failed Up still stops what it started.
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := st.Down(ctx); err != nil {
			tb.Errorf("stop private stack: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := st.Up(ctx); err != nil {
		tb.Fatalf("start private stack (%s): %v", strings.Join(services, ","), err)
	}
	return st
}

// MustOpenStackDB creates and migrates the database coupon on a private
// stack's MariaDB and returns a pool on it (closed at cleanup) and its DSN.
func MustOpenStackDB(tb testing.TB, st *stack.Stack) (*sql.DB, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := st.MySQLDSN("coupon")
	if err := couponmysql.Migrate(ctx, dsn, Logger(tb)); err != nil {
		tb.Fatalf("migrate private MariaDB: %v", err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db, dsn
}

// freeBlocks returns the first port of blocks of consecutive ports, of the
// given sizes, that were all free a moment ago and do not overlap.
func freeBlocks(tb testing.TB, sizes ...int) []int {
	tb.Helper()
	taken := map[int]bool{}
	out := make([]int, len(sizes))
	for i, n := range sizes {
		for attempt := 0; ; attempt++ {
			if attempt == 200 {
				tb.Fatalf("no %d consecutive free ports found", n)
			}
			// 20000-29999: below the kernel's ephemeral range (32768 up),
			// where an outgoing connection can take a port between this check
			// and the server's bind (a JVM binds seconds later), and below
			// the fixed test stacks' ports (30000 up).
			base := 20000 + mrand.IntN(10000)
			ok := !reservedPorts(base, n)
			for p := base; p < base+n && ok; p++ {
				ok = !taken[p] && portFree(p)
			}
			if ok {
				for p := base; p < base+n; p++ {
					taken[p] = true
				}
				out[i] = base
				break
			}
		}
	}
	return out
}

// reservedPorts reports whether [base, base+n) meets the fixed ports of
// CI's stacks (23306, 26379, 29092/29093 and their replicated shapes).
func reservedPorts(base, n int) bool {
	for _, r := range [][2]int{{23300, 23320}, {26370, 26395}, {29085, 29105}} {
		if base < r[1] && base+n > r[0] {
			return true
		}
	}
	return false
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		p := FreePort(tb)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// tbWriter sends the stack's progress lines to the test log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
