package testenv

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon/infra"
	"github.com/coupondrop/coupon/infra/stack"
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
	Integration(tb)
	if len(services) == 0 {
		services = stack.AllServices
	}
	ports := freePorts(tb, 4)
	cfg := stack.Config{
		Dir:                 tb.TempDir(),
		RedisPort:           ports[0],
		MySQLPort:           ports[1],
		KafkaPort:           ports[2],
		KafkaControllerPort: ports[3],
		Services:            services,
		MySQLBufferPool:     "128M",
		MySQLLogFileSize:    "48M",
		KafkaHeap:           "384m",
		Out:                 tbWriter{tb},
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
	admin, err := sql.Open("mysql", st.MySQLDSN(""))
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS coupon"); err != nil {
		tb.Fatalf("private MariaDB: create database: %v", err)
	}
	dsn := st.MySQLDSN("coupon")
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := infra.Migrate(ctx, db, Logger(tb)); err != nil {
		tb.Fatalf("migrate private MariaDB: %v", err)
	}
	return db, dsn
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
