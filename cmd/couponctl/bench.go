package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	coupon "github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/bench"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/internal/redisbench"
	"github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
)

func init() {
	register("bench", "compare db-lock, redis-lock and async on the local stack: table, JSON and HTML report", runBench)
}

// benchFlags are couponctl bench's settings. The defaults fit the whole run
// in under three minutes on a 2-core machine.
type benchFlags struct {
	stack stackFlags

	url, token, dsn, redisAddr string // bench a running system instead of starting one
	binDir, outDir             string
	strategies                 string

	baseConc, baseReqs, baseSupply    int
	asyncConc, asyncReqs, asyncSupply int
	openRate, warmupReqs              int
	openDur                           time.Duration
	dupPercent, coupons               int
	redisBenchReqs                    int
	drainTimeout, timeout             time.Duration
}

func (f *benchFlags) bind(fs *cli.FlagSet) {
	f.stack.bind(fs)
	fs.StringVar(&f.url, "url", "COUPON_BENCH_URL", "", "bench this running gateway (its sinker running too) instead of starting the stack, gateway and sinker")
	fs.SecretVar(&f.token, "admin-token", "COUPON_ADMIN_TOKEN", "", "admin token of --url's gateway (generated when bench starts its own)")
	fs.SecretVar(&f.dsn, "mysql-dsn", "COUPON_BENCH_MYSQL_DSN", "", "MySQL DSN read to verify, with --url (default: the stack profile's)")
	fs.StringVar(&f.redisAddr, "redis-addr", "COUPON_BENCH_REDIS_ADDR", "", "Redis for redis-benchmark, with --url (default: the stack profile's)")
	fs.StringVar(&f.binDir, "bin-dir", "COUPON_BIN_DIR", "", "use the gateway and sinker binaries in this folder instead of building them")
	fs.StringVar(&f.outDir, "out", "COUPON_BENCH_OUT", "", "results folder (default <repo>/bench-results)")
	fs.StringVar(&f.strategies, "strategies", "COUPON_BENCH_STRATEGIES", "db-lock,redis-lock,async,async-open", "phases to run: db-lock, redis-lock, async (closed model), async-open (open model)")
	fs.IntVar(&f.baseConc, "baseline-concurrency", "COUPON_BENCH_BASELINE_CONCURRENCY", 32, "closed-model workers for db-lock and redis-lock")
	fs.IntVar(&f.baseReqs, "baseline-requests", "COUPON_BENCH_BASELINE_REQUESTS", 3000, "requests per baseline phase")
	fs.IntVar(&f.baseSupply, "baseline-supply", "COUPON_BENCH_BASELINE_SUPPLY", 2000, "supply of each baseline coupon (below demand)")
	fs.IntVar(&f.asyncConc, "async-concurrency", "COUPON_BENCH_ASYNC_CONCURRENCY", 256, "closed-model workers for async")
	fs.IntVar(&f.asyncReqs, "async-requests", "COUPON_BENCH_ASYNC_REQUESTS", 120000, "requests of the async closed-model phase")
	fs.IntVar(&f.asyncSupply, "async-supply", "COUPON_BENCH_ASYNC_SUPPLY", 80000, "supply of each async coupon (below demand)")
	fs.IntVar(&f.warmupReqs, "warmup-requests", "COUPON_BENCH_WARMUP_REQUESTS", 40000, "unmeasured async requests before the phases, so the JIT, pools and caches are warm (0: none)")
	fs.IntVar(&f.openRate, "open-rate", "COUPON_BENCH_OPEN_RATE", 10000, "arrival rate of the async open-model phase, req/s")
	fs.DurationVar(&f.openDur, "open-duration", "COUPON_BENCH_OPEN_DURATION", 4*time.Second, "length of the open-model phase")
	fs.IntVar(&f.dupPercent, "dup-percent", "COUPON_BENCH_DUP_PERCENT", 10, "share of requests repeating an earlier user, percent (closed-model phases)")
	fs.IntVar(&f.coupons, "coupons", "COUPON_BENCH_COUPONS", 1, "coupons per phase: 1 is one hot coupon, more spread the load (round robin)")
	fs.IntVar(&f.redisBenchReqs, "redis-benchmark-requests", "COUPON_BENCH_REDIS_REQUESTS", 100000, "EVALSHA calls of the redis-benchmark run, one user per call (0: skip)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", "COUPON_BENCH_DRAIN_TIMEOUT", time.Minute, "bound on waiting for the sinker to write every accepted request")
	fs.DurationVar(&f.timeout, "request-timeout", "COUPON_BENCH_REQUEST_TIMEOUT", 10*time.Second, "per-request timeout of the load generator")
}

func (f *benchFlags) validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		n    int
	}{{"baseline-concurrency", f.baseConc}, {"baseline-requests", f.baseReqs}, {"baseline-supply", f.baseSupply},
		{"async-concurrency", f.asyncConc}, {"async-requests", f.asyncReqs}, {"async-supply", f.asyncSupply},
		{"open-rate", f.openRate}, {"coupons", f.coupons}} {
		if v.n < 1 {
			errs = append(errs, fmt.Errorf("--%s must be at least 1 (it is %d)", v.name, v.n))
		}
	}
	if f.warmupReqs < 0 {
		errs = append(errs, fmt.Errorf("--warmup-requests must not be negative (it is %d)", f.warmupReqs))
	}
	if f.dupPercent < 0 || f.dupPercent > 90 {
		errs = append(errs, fmt.Errorf("--dup-percent must be 0..90 (it is %d)", f.dupPercent))
	}
	if f.openDur <= 0 {
		errs = append(errs, errors.New("--open-duration must be positive"))
	}
	for _, s := range cli.List(f.strategies) {
		switch s {
		case "db-lock", "redis-lock", "async", "async-open":
		default:
			errs = append(errs, fmt.Errorf("--strategies: unknown phase %q (want db-lock, redis-lock, async, async-open)", s))
		}
	}
	if f.url != "" && f.token == "" {
		errs = append(errs, errors.New("--url needs --admin-token (COUPON_ADMIN_TOKEN)"))
	}
	return errors.Join(errs...)
}

// wanted is the set of phases --strategies names.
func (f *benchFlags) wanted() map[string]bool {
	want := map[string]bool{}
	for _, s := range cli.List(f.strategies) {
		want[s] = true
	}
	return want
}

// phases returns the phases to run, in order.
func (f *benchFlags) phases() []bench.PhaseSpec {
	want := f.wanted()
	dup := float64(f.dupPercent) / 100
	var out []bench.PhaseSpec
	for _, s := range []coupon.Strategy{coupon.StrategyDBLock, coupon.StrategyRedisLock} {
		if want[string(s)] {
			out = append(out, bench.PhaseSpec{Name: string(s), Strategy: s, Coupons: f.coupons, Supply: int64(f.baseSupply), InTable: true, DrainTimeout: f.drainTimeout,
				Load: bench.Load{Requests: f.baseReqs, Concurrency: f.baseConc, DupShare: dup, UserBase: 1, Seed: 1, Timeout: f.timeout}})
		}
	}
	if want["async"] {
		out = append(out, bench.PhaseSpec{Name: "async", Strategy: coupon.StrategyAsync, Coupons: f.coupons, Supply: int64(f.asyncSupply), InTable: true, DrainTimeout: f.drainTimeout,
			Load: bench.Load{Requests: f.asyncReqs, Concurrency: f.asyncConc, DupShare: dup, UserBase: 1, Seed: 2, Timeout: f.timeout}})
	}
	if want["async-open"] {
		n := int(float64(f.openRate) * f.openDur.Seconds())
		// Supply covers every request: this phase measures the accepted
		// path's latency at a fixed arrival rate, not the sell-out.
		out = append(out, bench.PhaseSpec{Name: "async-open", Strategy: coupon.StrategyAsync, Coupons: f.coupons, Supply: int64(n/f.coupons + 1), DrainTimeout: f.drainTimeout,
			Load: bench.Load{Requests: n, Rate: float64(f.openRate), Concurrency: 512, UserBase: 1, Seed: 3, Timeout: f.timeout, MaxDuration: f.openDur + 30*time.Second}})
	}
	return out
}

// warmup returns the unmeasured async phase run before the others, if any:
// a fresh broker's JIT, the gateway's pools and the sinker's batches reach
// their steady state on it, so the first measured phase does not pay for
// them. Every request is accepted (supply covers them all).
func (f *benchFlags) warmup() (bench.PhaseSpec, bool) {
	want := f.wanted()
	if f.warmupReqs == 0 || !(want["async"] || want["async-open"]) {
		return bench.PhaseSpec{}, false
	}
	return bench.PhaseSpec{Name: "warm-up", Strategy: coupon.StrategyAsync, Coupons: 1, Supply: int64(f.warmupReqs), DrainTimeout: f.drainTimeout,
		Load: bench.Load{Requests: f.warmupReqs, Concurrency: f.asyncConc, UserBase: 1, Seed: 4, Timeout: f.timeout}}, true
}

// benchStep prints numbered phase lines.
type benchStep struct {
	n, total int
	started  time.Time
}

func (s *benchStep) next(format string, args ...any) {
	s.n++
	fmt.Printf("[%d/%d %5.1fs] %s\n", s.n, s.total, time.Since(s.started).Seconds(), fmt.Sprintf(format, args...))
}

func runBench(ctx context.Context, args []string) error {
	fs := cli.New("bench")
	var f benchFlags
	f.bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	started := time.Now()
	root := repoRoot()
	outRoot := f.outDir
	if outRoot == "" {
		outRoot = filepath.Join(root, "bench-results")
	}
	dir := filepath.Join(outRoot, started.Format("20060102-150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results folder: %w", err)
	}
	specs := f.phases()
	warmSpec, warm := f.warmup()
	steps := &benchStep{total: len(specs) + 3, started: started}
	if warm {
		steps.total++
	}
	if f.url == "" {
		steps.total += 4
	}
	report := &bench.Report{Started: started, Command: "couponctl bench " + strings.Join(args, " "), Seed: bench.SeedReferences,
		Machine: bench.Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvg: loadAvg()}}
	report.Machine.Host, _ = os.Hostname()

	target := bench.Target{BaseURL: strings.TrimRight(f.url, "/"), AdminToken: f.token}
	dsn, redisAddr := f.dsn, f.redisAddr
	var sys *benchSystem
	if f.url == "" {
		var err error
		sys, err = startBenchSystem(ctx, &f, root, dir, steps)
		if sys != nil {
			defer sys.stop()
		}
		if err != nil {
			return err
		}
		target.BaseURL, target.AdminToken, dsn, redisAddr = sys.url, sys.token, sys.dsn, sys.redisAddr
	} else if dsn == "" || redisAddr == "" {
		st, err := f.stack.open()
		if err != nil {
			return err
		}
		if dsn == "" {
			dsn = st.MySQLDSN(dbName(f.stack.profile))
		}
		if redisAddr == "" {
			redisAddr = st.RedisAddr()
		}
	}
	db, err := openBenchDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	target.DB = db
	steps.next("warm up: one async issue until its row is in MySQL")
	if err := target.WarmUp(ctx, time.Minute); err != nil {
		return err
	}
	if warm {
		steps.next("warm up: async %s, %d requests, not measured", warmSpec.Model(), warmSpec.Load.Requests)
		res, err := bench.RunPhase(ctx, target, warmSpec, func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
		if err != nil {
			return err
		}
		fmt.Printf("      %d accepted (%.0f req/s), sink drained in %s, verified %s\n",
			res.Stats.Accepted, res.Stats.AcceptedPerSec, res.Sink.Drain.Round(time.Millisecond), okWord(res.Verdict.OK() && res.Sink.Drained))
		if !res.Verdict.OK() || !res.Sink.Drained {
			return fmt.Errorf("warm-up failed: sink drained %t, problems %q", res.Sink.Drained, res.Verdict.Problems)
		}
		if sys != nil {
			if err := dropGateKeys(ctx, redisAddr, res.CouponIDs); err != nil {
				fmt.Printf("      could not drop the gate keys of the warm-up coupon: %v\n", err)
			}
		}
	}

	for _, spec := range specs {
		steps.next("phase %s: %s, %d requests, supply %d x %d coupon(s), %d%% duplicates",
			spec.Name, spec.Model(), spec.Load.Requests, spec.Supply, spec.Coupons, int(spec.Load.DupShare*100))
		spec.Load.Progress = progressPrinter(spec.Load.Requests)
		res, err := bench.RunPhase(ctx, target, spec, func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
		endProgress()
		if err != nil {
			return err
		}
		s := res.Stats
		fmt.Printf("      %d accepted (%s req/s), %d already, %d sold out, %d errors; p99 %.1f ms; rows %d, verified %s\n",
			s.Accepted, strconv.FormatFloat(s.AcceptedPerSec, 'f', 0, 64), s.Already, s.SoldOut, s.Errors, s.Latency.P99, res.Sink.Rows, okWord(res.Verdict.OK() && res.Sink.Drained))
		report.Phases = append(report.Phases, res)
		if sys != nil && spec.Strategy == coupon.StrategyAsync {
			// The bench's coupons are done with: dropping their gate keys
			// keeps the dev Redis (and its append-only file rewrites, which
			// would skew the next phase) small from run to run.
			if err := dropGateKeys(ctx, redisAddr, res.CouponIDs); err != nil {
				fmt.Printf("      could not drop the gate keys of the phase's coupons: %v\n", err)
			}
		}
	}

	speed := &bench.Speed{}
	if p := report.Phase(coupon.StrategyAsync); p != nil {
		speed.MaxAccepted, speed.Concurrency = p.Stats.AcceptedPerSec, p.Spec.Load.Concurrency
	}
	for _, p := range report.Phases {
		if p.Spec.Name == "async-open" {
			speed.OpenRate, speed.OpenAchieved, speed.OpenLatency, speed.OpenErrors = p.Stats.OfferedPerSec, p.Stats.AcceptedPerSec, p.Stats.Latency, p.Stats.Errors
		}
	}
	steps.next("redis-benchmark: EVALSHA of the admit script on %s", redisAddr)
	if f.redisBenchReqs <= 0 {
		speed.RedisNote = "skipped (--redis-benchmark-requests 0)"
	} else if r, err := redisbench.AdmitCeiling(ctx, redisbench.Options{Addr: redisAddr, Requests: f.redisBenchReqs}); err != nil {
		speed.RedisNote = err.Error()
		fmt.Printf("      not measured: %v\n", err)
	} else {
		speed.EvalshaPerSec, speed.EvalshaP99 = r.OpsPerSec, r.P99Ms
		fmt.Printf("      %.0f ops/s (p50 %.3f ms, p99 %.3f ms)\n", r.OpsPerSec, r.P50Ms, r.P99Ms)
	}
	if speed.MaxAccepted > 0 || speed.OpenRate > 0 || speed.EvalshaPerSec > 0 {
		report.Speed = speed
	}

	steps.next("report")
	report.Machine.LoadAvg += " -> " + loadAvg()
	report.Duration = time.Since(started)
	report.Notes = append(report.Notes, "Everything ran on this one machine: load generator, gateway, sinker, Redis, Kafka and MariaDB share its cores.")
	jsonPath, htmlPath, err := report.WriteFiles(dir)
	if err != nil {
		return err
	}
	fmt.Println()
	report.WriteTable(os.Stdout)
	fmt.Printf("\nmachine: %d cores, load average %s; run took %s\n", report.Machine.Cores, report.Machine.LoadAvg, report.Duration.Round(time.Second))
	fmt.Printf("results: %s\n         %s\n", jsonPath, htmlPath)
	if sys != nil {
		fmt.Printf("logs:    %s\n", sys.logDir)
	}
	if !report.OK() {
		return errors.New("verification failed: see the table")
	}
	return nil
}

// dropGateKeys deletes the gate keys of finished bench coupons.
func dropGateKeys(ctx context.Context, addr string, couponIDs []int64) error {
	cfg := admitter.DefaultConfig()
	cfg.Addrs, cfg.BatchMax = []string{addr}, 1
	gate, err := admitter.New(cfg, nil)
	if err != nil {
		return err
	}
	defer gate.Close()
	return gate.Drop(ctx, couponIDs...)
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

// progressPrinter returns a Progress callback: a ticking counter on a
// terminal, a line every two seconds otherwise.
func progressPrinter(total int) func(bench.Progress) {
	tty := false
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		tty = true
	}
	var lastLine time.Duration
	return func(p bench.Progress) {
		line := fmt.Sprintf("      %6.1fs  sent %d/%d  answered %d  accepted %d  (%.0f answers/s)",
			p.Elapsed.Seconds(), p.Sent, total, p.Done, p.Accepted, float64(p.Done)/max(p.Elapsed.Seconds(), 1e-3))
		switch {
		case tty:
			fmt.Printf("\r%s\033[K", line)
			progressOpen = true
		case p.Elapsed-lastLine >= 2*time.Second:
			lastLine = p.Elapsed
			fmt.Println(line)
		}
	}
}

var progressOpen bool

// endProgress ends a ticking counter's line.
func endProgress() {
	if progressOpen {
		fmt.Println()
		progressOpen = false
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func openBenchDB(dsn string) (*mysql.DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return mysql.Open(ctx, mysql.Config{DSN: dsn, MaxConns: 4})
}

// benchSystem is the stack, gateway and sinker bench started for the run.
type benchSystem struct {
	url, token, dsn, redisAddr string
	brokers                    []string
	topics                     []string
	children                   []*child
	logDir                     string
}

// startBenchSystem brings up the dev stack, a per-run topic pair, and the
// gateway and sinker as subprocesses (built from this checkout unless
// --bin-dir names prebuilt ones), and waits until both are ready.
func startBenchSystem(ctx context.Context, f *benchFlags, root, dir string, steps *benchStep) (*benchSystem, error) {
	steps.next("stack up (profile %s)", f.stack.profile)
	st, err := f.stack.open()
	if err != nil {
		return nil, err
	}
	if err := st.Up(ctx); err != nil {
		return nil, err
	}
	sys := &benchSystem{dsn: st.MySQLDSN(dbName(f.stack.profile)), redisAddr: st.RedisAddr(), brokers: st.KafkaBrokers(), logDir: dir}

	// A fresh topic pair per run: the sinker starts on an empty topic, so
	// the drain time is this run's alone. Deleted at the end.
	run := "bench-" + filepath.Base(dir)
	topic, dlq := coupon.DefaultTopic+"."+run, coupon.DefaultDeadLetterTopic+"."+run
	steps.next("migrate %s, create topics %s", sys.dsn, topic)
	if err := migrateDB(ctx, sys.dsn); err != nil {
		return sys, err
	}
	tf := topicFlags{brokers: sys.brokers, topic: topic, dlq: dlq, partitions: 12, rf: 1}
	if err := tf.ensure(ctx); err != nil {
		return sys, err
	}
	sys.topics = []string{topic, dlq}

	binDir := f.binDir
	if binDir == "" {
		binDir = filepath.Join(dir, "bin")
		steps.next("build gateway and sinker into %s", binDir)
		for _, name := range []string{"gateway", "sinker"} {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, name), "./cmd/"+name)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				return sys, fmt.Errorf("build %s: %w\n%s", name, err, out)
			}
		}
	} else {
		steps.next("use gateway and sinker from %s", binDir)
	}

	httpAddr, err := freeAddr()
	if err != nil {
		return sys, err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return sys, err
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	sys.token, sys.url = hex.EncodeToString(b), "http://"+httpAddr
	// The children see no COUPON_* setting of the caller's shell (a rate
	// limit or user auth there would change what is measured), only these
	// and COUPON_PPROF_ADDR (the gateway's opt-in profiler, to profile a run).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "COUPON_") || strings.HasPrefix(kv, "COUPON_PPROF_ADDR=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"COUPON_REDIS_ADDRS="+sys.redisAddr,
		"COUPON_MYSQL_DSN="+sys.dsn,
		"COUPON_KAFKA_BROKERS="+strings.Join(sys.brokers, ","),
		"COUPON_TOPIC="+topic,
		"COUPON_DLQ_TOPIC="+dlq,
		"COUPON_GROUP_ID=coupon-sinker-"+run,
		"COUPON_ADMIN_TOKEN="+sys.token,
		"COUPON_HTTP_ADDR="+httpAddr,
		"COUPON_METRICS_ADDR="+metricsAddr,
		"COUPON_LOG_LEVEL=warn",
	)
	steps.next("start sinker and gateway (%s); logs in %s", sys.url, dir)
	for _, name := range []string{"sinker", "gateway"} {
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return sys, err
		}
		cmd := exec.Command(filepath.Join(binDir, name))
		cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return sys, fmt.Errorf("start %s: %w", name, err)
		}
		c := &child{name: name, cmd: cmd, done: make(chan struct{})}
		go func() { c.err = cmd.Wait(); logf.Close(); close(c.done) }()
		sys.children = append(sys.children, c)
	}
	for _, w := range []struct{ name, url string }{{"sinker", "http://" + metricsAddr + "/readyz"}, {"gateway", sys.url + "/readyz"}} {
		if err := waitReady(ctx, w.url, 60*time.Second, sys.children); err != nil {
			return sys, fmt.Errorf("%s not ready (see %s): %w", w.name, filepath.Join(dir, w.name+".log"), err)
		}
	}
	return sys, nil
}

// stop ends the gateway and sinker and deletes the run's topics.
func (s *benchSystem) stop() {
	if err := stopChildren(s.children, 20*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "bench: stop: %v\n", err)
	}
	if len(s.topics) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kafka.DeleteTopics(ctx, s.brokers, s.topics...); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
	}
}

// waitReady polls url until it answers 200, a child exits, or within passes.
func waitReady(ctx context.Context, url string, within time.Duration, children []*child) error {
	cl := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	last := errors.New("no answer yet")
	for time.Now().Before(deadline) {
		for _, c := range children {
			select {
			case <-c.done:
				return fmt.Errorf("%s exited: %v", c.name, c.err)
			default:
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := cl.Do(req); err != nil {
			last = err
		} else {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answers %s", url, resp.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
