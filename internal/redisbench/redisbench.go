// Package redisbench measures the Redis ceiling of the admission script with
// Debian's redis-benchmark, so benchmarks can print their figure beside it.
package redisbench

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"

	"github.com/coupondrop/coupon/admitter"
	"github.com/redis/go-redis/v9"
)

// Options of one redis-benchmark run; zero fields take the defaults shown.
type Options struct {
	Addr     string // host:port of a standalone Redis (required)
	Password string
	Requests int   // -n: total EVALSHA calls; default 200,000
	Clients  int   // -c: parallel connections; default 50
	Pipeline int   // -P: requests per round trip; default 1
	Threads  int   // --threads: client threads; default 2 (one thread is often the bottleneck)
	Users    int   // -r: user IDs are drawn from [0, Users); default 10,000,000
	Total    int64 // the coupon's supply; default 1<<40 (never sold out)
	CouponID int64 // whose keys the run uses (deleted after); default 1<<50
	Binary   string
}

// Result is what redis-benchmark reported.
type Result struct {
	Command   string // the command line as redis-benchmark names the test
	OpsPerSec float64
	P50Ms     float64
	P99Ms     float64
}

func (o *Options) setDefaults() {
	if o.Requests == 0 {
		o.Requests = 200_000
	}
	if o.Clients == 0 {
		o.Clients = 50
	}
	if o.Pipeline == 0 {
		o.Pipeline = 1
	}
	if o.Threads == 0 {
		o.Threads = 2
	}
	if o.Users == 0 {
		o.Users = 10_000_000
	}
	if o.Total == 0 {
		o.Total = 1 << 40
	}
	if o.CouponID == 0 {
		o.CouponID = 1 << 50
	}
	if o.Binary == "" {
		o.Binary = "redis-benchmark"
	}
}

// AdmitCeiling runs redis-benchmark doing EVALSHA of the real admit script
// (loaded first), one random user per call (what a lone request costs the
// server), on one initialised coupon, and returns the rate it reports. The coupon's keys are deleted afterwards.
func AdmitCeiling(ctx context.Context, o Options) (Result, error) {
	o.setDefaults()
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return Result{}, fmt.Errorf("redis-benchmark address %q: %w", o.Addr, err)
	}
	bin, err := exec.LookPath(o.Binary)
	if err != nil {
		return Result{}, fmt.Errorf("redis-benchmark not installed (Debian package redis-tools): %w", err)
	}
	client := redis.NewClient(&redis.Options{Addr: o.Addr, Password: o.Password})
	defer client.Close()
	cfg := admitter.DefaultConfig()
	cfg.BatchMax = 1
	gate, err := admitter.NewFromClient(client, cfg, nil)
	if err != nil {
		return Result{}, fmt.Errorf("load admit script: %w", err)
	}
	defer gate.Close()
	if err := gate.Drop(ctx, o.CouponID); err != nil {
		return Result{}, fmt.Errorf("reset benchmark coupon: %w", err)
	}
	if err := gate.Init(ctx, o.CouponID, o.Total); err != nil {
		return Result{}, fmt.Errorf("init benchmark coupon: %w", err)
	}
	defer gate.Drop(context.WithoutCancel(ctx), o.CouponID)

	args := []string{"-h", host, "-p", port,
		"-n", strconv.Itoa(o.Requests), "-c", strconv.Itoa(o.Clients),
		"-P", strconv.Itoa(o.Pipeline), "--threads", strconv.Itoa(o.Threads),
		"-r", strconv.Itoa(o.Users), "--csv"}
	if o.Password != "" {
		args = append(args, "-a", o.Password)
	}
	args = append(append(args, gate.AdmitCommand(o.CouponID, o.Total)...), "__rand_int__")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("redis-benchmark: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	res, err := ParseCSV(stdout.Bytes())
	if err != nil {
		return Result{}, err
	}
	// redis-benchmark reports errors replies on stderr only; a run whose
	// script failed would measure error replies, not admissions.
	if n, err := gate.Admitted(ctx, o.CouponID); err != nil || n == 0 {
		return Result{}, fmt.Errorf("redis-benchmark admitted no user (%d admitted, %v): %s", n, err, strings.TrimSpace(stderr.String()))
	}
	return res, nil
}

// ParseCSV reads redis-benchmark --csv output: a header row naming the
// columns ("test","rps",...,"p50_latency_ms",...,"p99_latency_ms",...) and
// one row for the command.
func ParseCSV(out []byte) (Result, error) {
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return Result{}, fmt.Errorf("parse redis-benchmark csv: %w", err)
	}
	if len(rows) < 2 {
		return Result{}, fmt.Errorf("parse redis-benchmark csv: no result row in %q", out)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	row := rows[len(rows)-1]
	get := func(name string) (float64, error) {
		i, ok := col[name]
		if !ok || i >= len(row) {
			return 0, fmt.Errorf("parse redis-benchmark csv: no %q column in %q", name, out)
		}
		return strconv.ParseFloat(row[i], 64)
	}
	var r Result
	var errs []error
	var e error
	r.OpsPerSec, e = get("rps")
	errs = append(errs, e)
	if _, ok := col["p50_latency_ms"]; ok { // redis-benchmark 7+
		r.P50Ms, e = get("p50_latency_ms")
		errs = append(errs, e)
		r.P99Ms, e = get("p99_latency_ms")
		errs = append(errs, e)
	}
	if i, ok := col["test"]; ok && i < len(row) {
		r.Command = row[i]
	}
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	if r.OpsPerSec <= 0 {
		return Result{}, fmt.Errorf("parse redis-benchmark csv: no rate in %q", out)
	}
	return r, nil
}
