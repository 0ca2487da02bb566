package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/internal/proc"
	"github.com/coupondrop/coupon/internal/redisbench"
	"github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
)

// Options are what one bench run (couponctl bench) does. DefaultOptions
// fits the whole run in under three minutes on a 2-core machine.
type Options struct {
	// URL, when set, is a running gateway (its sinker running too) to
	// bench instead of starting the stack, gateway and sinker; AdminToken
	// is its admin token, DSN and RedisAddr what to verify and
	// redis-benchmark (default the stack's).
	URL, AdminToken, DSN, RedisAddr string
	BinDir                          string // prebuilt gateway and sinker (default: build them into the results folder)
	OutDir                          string // results root (default <repo>/bench-results)
	Strategies                      []string

	BaselineConcurrency, BaselineRequests, BaselineSupply int
	AsyncConcurrency, AsyncRequests, AsyncSupply          int
	OpenRate, WarmupRequests                              int
	OpenDuration                                          time.Duration
	DupPercent, Coupons, ManyCoupons                      int
	RedisBenchRequests                                    int
	DrainTimeout, RequestTimeout                          time.Duration
	// SystemEnv are KEY=VALUE settings (COUPON_* only) given to the gateway
	// and sinker a run starts, to bench a setting: the caller's own
	// COUPON_* variables never reach them.
	SystemEnv []string
}

// Phase names --strategies takes, in the order they run.
var phaseNames = []string{"db-lock", "redis-lock", PhaseCeiling, PhaseAsync, PhaseAsyncMany, PhaseAsyncOpen, PhaseCeilingOpen}

// DefaultOptions are the defaults of couponctl bench.
func DefaultOptions() Options {
	return Options{
		Strategies:          append([]string(nil), phaseNames...),
		BaselineConcurrency: 32, BaselineRequests: 3000, BaselineSupply: 2000,
		AsyncConcurrency: 256, AsyncRequests: 200000, AsyncSupply: 0,
		OpenRate: 0, WarmupRequests: 40000, OpenDuration: 10 * time.Second,
		DupPercent: 10, Coupons: 1, ManyCoupons: 1000, RedisBenchRequests: 100000,
		DrainTimeout: time.Minute, RequestTimeout: 10 * time.Second,
	}
}

// Bind binds every option to a flag with a COUPON_* environment default;
// the defaults are o's values.
func (o *Options) Bind(fs *cli.FlagSet) {
	fs.StringVar(&o.URL, "url", "COUPON_BENCH_URL", o.URL, "bench this running gateway (its sinker running too) instead of starting the stack, gateway and sinker")
	fs.SecretVar(&o.AdminToken, "admin-token", "COUPON_ADMIN_TOKEN", o.AdminToken, "admin token of --url's gateway (generated when bench starts its own)")
	fs.SecretVar(&o.DSN, "mysql-dsn", "COUPON_BENCH_MYSQL_DSN", o.DSN, "MySQL DSN read to verify, with --url (default: the stack profile's)")
	fs.StringVar(&o.RedisAddr, "redis-addr", "COUPON_BENCH_REDIS_ADDR", o.RedisAddr, "Redis for redis-benchmark, with --url (default: the stack profile's)")
	fs.StringVar(&o.BinDir, "bin-dir", "COUPON_BIN_DIR", o.BinDir, "use the gateway and sinker binaries in this folder instead of building them")
	fs.StringVar(&o.OutDir, "out", "COUPON_BENCH_OUT", o.OutDir, "results folder (default <repo>/bench-results)")
	fs.ListVar(&o.Strategies, "strategies", "COUPON_BENCH_STRATEGIES", o.Strategies, "phases to run: db-lock, redis-lock, ceiling (the HTTP ceiling, closed model), async (one hot coupon, closed model), async-many (--many-coupons round robin, closed model), async-open and ceiling-open (open model at --open-rate)")
	fs.IntVar(&o.BaselineConcurrency, "baseline-concurrency", "COUPON_BENCH_BASELINE_CONCURRENCY", o.BaselineConcurrency, "closed-model workers for db-lock and redis-lock")
	fs.IntVar(&o.BaselineRequests, "baseline-requests", "COUPON_BENCH_BASELINE_REQUESTS", o.BaselineRequests, "requests per baseline phase")
	fs.IntVar(&o.BaselineSupply, "baseline-supply", "COUPON_BENCH_BASELINE_SUPPLY", o.BaselineSupply, "supply of each baseline coupon (below demand)")
	fs.IntVar(&o.AsyncConcurrency, "async-concurrency", "COUPON_BENCH_ASYNC_CONCURRENCY", o.AsyncConcurrency, "closed-model workers for async")
	fs.IntVar(&o.AsyncRequests, "async-requests", "COUPON_BENCH_ASYNC_REQUESTS", o.AsyncRequests, "requests of the async closed-model phase")
	fs.IntVar(&o.AsyncSupply, "async-supply", "COUPON_BENCH_ASYNC_SUPPLY", o.AsyncSupply, "supply of the async closed-model phases, shared among their coupons (0: every request, the goal ratios' load; below --async-requests they sell out)")
	fs.IntVar(&o.WarmupRequests, "warmup-requests", "COUPON_BENCH_WARMUP_REQUESTS", o.WarmupRequests, "unmeasured async requests before the phases, so the JIT, pools and caches are warm (0: none)")
	fs.IntVar(&o.OpenRate, "open-rate", "COUPON_BENCH_OPEN_RATE", o.OpenRate, "arrival rate of the open-model phases, req/s (0: half the async phase's accepted req/s, or 5000 without it)")
	fs.DurationVar(&o.OpenDuration, "open-duration", "COUPON_BENCH_OPEN_DURATION", o.OpenDuration, "length of the open-model phase")
	fs.IntVar(&o.DupPercent, "dup-percent", "COUPON_BENCH_DUP_PERCENT", o.DupPercent, "share of requests repeating an earlier user, percent (db-lock and redis-lock; the ceiling and async phases send distinct users, the goal ratios' load)")
	fs.IntVar(&o.Coupons, "coupons", "COUPON_BENCH_COUPONS", o.Coupons, "coupons per phase: 1 is one hot coupon, more spread the load (round robin)")
	fs.IntVar(&o.ManyCoupons, "many-coupons", "COUPON_BENCH_MANY_COUPONS", o.ManyCoupons, "coupons of the async-many phase (round robin; the async supply is shared among them)")
	fs.IntVar(&o.RedisBenchRequests, "redis-benchmark-requests", "COUPON_BENCH_REDIS_REQUESTS", o.RedisBenchRequests, "EVALSHA calls of the redis-benchmark run, one user per call (0: skip)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", "COUPON_BENCH_DRAIN_TIMEOUT", o.DrainTimeout, "bound on waiting for the sinker to write every accepted request")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", "COUPON_BENCH_REQUEST_TIMEOUT", o.RequestTimeout, "per-request timeout of the load generator")
	fs.ListVar(&o.SystemEnv, "system-env", "COUPON_BENCH_SYSTEM_ENV", o.SystemEnv, "COUPON_*=value settings for the gateway and sinker the run starts, comma-separated (e.g. COUPON_GATE_PIPELINES=1); the caller's own COUPON_* variables never reach them")
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		n    int
	}{{"baseline-concurrency", o.BaselineConcurrency}, {"baseline-requests", o.BaselineRequests}, {"baseline-supply", o.BaselineSupply},
		{"async-concurrency", o.AsyncConcurrency}, {"async-requests", o.AsyncRequests},
		{"coupons", o.Coupons}, {"many-coupons", o.ManyCoupons}} {
		if v.n < 1 {
			errs = append(errs, fmt.Errorf("--%s must be at least 1 (it is %d)", v.name, v.n))
		}
	}
	if o.AsyncSupply < 0 {
		errs = append(errs, fmt.Errorf("--async-supply must not be negative (it is %d)", o.AsyncSupply))
	}
	if o.OpenRate < 0 {
		errs = append(errs, fmt.Errorf("--open-rate must not be negative (it is %d)", o.OpenRate))
	}
	if o.WarmupRequests < 0 {
		errs = append(errs, fmt.Errorf("--warmup-requests must not be negative (it is %d)", o.WarmupRequests))
	}
	if o.DupPercent < 0 || o.DupPercent > 90 {
		errs = append(errs, fmt.Errorf("--dup-percent must be 0..90 (it is %d)", o.DupPercent))
	}
	if o.OpenDuration <= 0 {
		errs = append(errs, errors.New("--open-duration must be positive"))
	}
	for _, s := range o.Strategies {
		if !o.known(s) {
			errs = append(errs, fmt.Errorf("--strategies: unknown phase %q (want %s)", s, strings.Join(phaseNames, ", ")))
		}
	}
	for _, kv := range o.SystemEnv {
		if err := checkSystemEnv(kv); err != nil {
			errs = append(errs, fmt.Errorf("--system-env: %w", err))
		}
	}
	if o.URL != "" && len(o.SystemEnv) > 0 {
		errs = append(errs, errors.New("--system-env needs a system the run starts, not --url"))
	}
	if o.URL != "" && o.AdminToken == "" {
		errs = append(errs, errors.New("--url needs --admin-token (COUPON_ADMIN_TOKEN)"))
	}
	return errors.Join(errs...)
}

func (o Options) known(phase string) bool {
	for _, n := range phaseNames {
		if n == phase {
			return true
		}
	}
	return false
}

// wanted is the set of phases Strategies names.
func (o Options) wanted() map[string]bool {
	want := map[string]bool{}
	for _, s := range o.Strategies {
		want[s] = true
	}
	return want
}

// Phases returns the phases to run, in order.
func (o Options) Phases() []PhaseSpec {
	want := o.wanted()
	dup := float64(o.DupPercent) / 100
	var out []PhaseSpec
	for _, s := range []coupon.Strategy{coupon.StrategyDBLock, coupon.StrategyRedisLock} {
		if want[string(s)] {
			out = append(out, PhaseSpec{Name: string(s), Strategy: s, Coupons: o.Coupons, Supply: int64(o.BaselineSupply), InTable: true, DrainTimeout: o.DrainTimeout,
				Load: Load{Requests: o.BaselineRequests, Concurrency: o.BaselineConcurrency, DupShare: dup, UserBase: 1, Seed: 1, Timeout: o.RequestTimeout}})
		}
	}
	// The ceiling, the hot coupon and the many coupons get the same load
	// (requests, workers): their ratios are the goals, measured as #10
	// defines them: distinct users, supply above demand (unless
	// --async-supply is set), so every answer is a 202 as the ceiling's.
	closed := Load{Requests: o.AsyncRequests, Concurrency: o.AsyncConcurrency, UserBase: 1, Seed: 2, Timeout: o.RequestTimeout}
	supply := int64(o.AsyncSupply)
	if supply == 0 {
		supply = int64(o.AsyncRequests)
	}
	if want[PhaseCeiling] {
		out = append(out, PhaseSpec{Name: PhaseCeiling, Strategy: coupon.StrategyAsync, Coupons: o.Coupons, Ceiling: true, Load: closed})
	}
	if want[PhaseAsync] {
		out = append(out, PhaseSpec{Name: PhaseAsync, Strategy: coupon.StrategyAsync, Coupons: o.Coupons, Supply: supply, InTable: true, DrainTimeout: o.DrainTimeout,
			Load: closed})
	}
	if want[PhaseAsyncMany] {
		// The same total supply over the coupons: with --async-supply they
		// sell out at the same point of the phase as the hot coupon does.
		out = append(out, PhaseSpec{Name: PhaseAsyncMany, Strategy: coupon.StrategyAsync, Coupons: o.ManyCoupons,
			Supply: max(1, (supply+int64(o.ManyCoupons)-1)/int64(o.ManyCoupons)), DrainTimeout: o.DrainTimeout, Load: closed})
	}
	return out
}

// OpenPhases returns the open-model phases at rate req/s: the gateway on
// the hot coupon, then the HTTP ceiling at the same offered rate (their
// p99s are a goal's ratio).
func (o Options) OpenPhases(rate int) []PhaseSpec {
	want := o.wanted()
	n := int(float64(rate) * o.OpenDuration.Seconds())
	open := Load{Requests: n, Rate: float64(rate), Concurrency: 512, UserBase: 1, Seed: 3, Timeout: o.RequestTimeout, MaxDuration: o.OpenDuration + 30*time.Second}
	var out []PhaseSpec
	if want[PhaseAsyncOpen] {
		// Supply covers every request: this phase measures the accepted
		// path's latency at a fixed arrival rate, not the sell-out.
		out = append(out, PhaseSpec{Name: PhaseAsyncOpen, Strategy: coupon.StrategyAsync, Coupons: o.Coupons, Supply: int64(n/o.Coupons + 1), DrainTimeout: o.DrainTimeout, Load: open})
	}
	if want[PhaseCeilingOpen] {
		out = append(out, PhaseSpec{Name: PhaseCeilingOpen, Strategy: coupon.StrategyAsync, Coupons: o.Coupons, Ceiling: true, Load: open})
	}
	return out
}

// OpenRateAfter is the open phases' rate: OpenRate, else half of what the
// async closed phase accepted (the goal's point: the open model at half the
// closed-model maximum), else 5,000.
func (o Options) OpenRateAfter(r *Report) int {
	if o.OpenRate > 0 {
		return o.OpenRate
	}
	if p := r.byName(PhaseAsync); p != nil && p.Stats.AcceptedPerSec > 0 {
		return max(1, int(p.Stats.AcceptedPerSec/2))
	}
	return 5000
}

// Warmup returns the unmeasured async phase run before the others, if any:
// a fresh broker's JIT, the gateway's pools and the sinker's batches reach
// their steady state on it, so the first measured phase does not pay for
// them. Every request is accepted (supply covers them all).
func (o Options) Warmup() (PhaseSpec, bool) {
	want := o.wanted()
	if o.WarmupRequests == 0 || !(want[PhaseAsync] || want[PhaseAsyncMany] || want[PhaseAsyncOpen]) {
		return PhaseSpec{}, false
	}
	return PhaseSpec{Name: "warm-up", Strategy: coupon.StrategyAsync, Coupons: 1, Supply: int64(o.WarmupRequests), DrainTimeout: o.DrainTimeout,
		Load: Load{Requests: o.WarmupRequests, Concurrency: o.AsyncConcurrency, UserBase: 1, Seed: 4, Timeout: o.RequestTimeout}}, true
}

// Local is the local stack a run starts its system on (or, with URL, reads
// its defaults from), and the source tree the gateway and sinker are built
// from.
type Local struct {
	Stack    *stack.Stack
	Database string // the stack's database name (coupon, coupon_test)
	Root     string // the repository, where go build runs and bench-results goes
}

// runner is one run's output: numbered step lines and progress.
type runner struct {
	out      io.Writer
	tty      bool
	n, total int
	started  time.Time
	open     bool // a ticking progress line is unfinished
}

func (r *runner) step(format string, args ...any) {
	r.endProgress()
	r.n++
	fmt.Fprintf(r.out, "[%d/%d %5.1fs] %s\n", r.n, r.total, time.Since(r.started).Seconds(), fmt.Sprintf(format, args...))
}

func (r *runner) say(format string, args ...any) { fmt.Fprintf(r.out, format+"\n", args...) }

// Compare runs the comparison o describes (couponctl bench): the phases,
// redis-benchmark, the table printed on out with the numbered steps, and
// the JSON and HTML report under the results folder; command is the
// command line the report records. It fails when a phase's verification
// fails.
func Compare(ctx context.Context, o Options, local Local, command string, out io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	started := time.Now()
	outRoot := o.OutDir
	if outRoot == "" {
		outRoot = filepath.Join(local.Root, "bench-results")
	}
	dir := filepath.Join(outRoot, started.Format("20060102-150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results folder: %w", err)
	}
	specs := o.Phases()
	warmSpec, warm := o.Warmup()
	r := &runner{out: out, total: len(specs) + len(o.OpenPhases(1)) + 3, started: started}
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			r.tty = true
		}
	}
	if warm {
		r.total++
	}
	if o.URL == "" {
		r.total += 4
	}
	report := &Report{Started: started, Command: command, Seed: SeedReferences,
		Machine: Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadAvg: loadAvg()}}
	report.Machine.Host, _ = os.Hostname()

	target := Target{BaseURL: strings.TrimRight(o.URL, "/"), AdminToken: o.AdminToken}
	dsn, redisAddr := o.DSN, o.RedisAddr
	var sys *system
	if o.URL == "" {
		var err error
		sys, err = startSystem(ctx, o, local, dir, r)
		if sys != nil {
			defer sys.stop(out)
		}
		if err != nil {
			return err
		}
		target.BaseURL, target.AdminToken, dsn, redisAddr = sys.url, sys.token, sys.clients.MySQLDSN, sys.redisAddr
		target.CeilingURL, target.CPU = sys.ceilingURL, NewCPUProbe(sys.pids(local.Stack))
		target.GCLogs = local.Stack.KafkaGCLogs()
		gatewayMetrics := sys.url + "/metrics"
		target.Counters = func(ctx context.Context) (GatewayCounters, error) { return scrapeCounters(ctx, gatewayMetrics) }
	} else {
		if dsn == "" {
			dsn = local.Stack.MySQLDSN(local.Database)
		}
		if redisAddr == "" {
			redisAddr = local.Stack.RedisAddr()
		}
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	db, err := mysql.Open(octx, mysql.Config{DSN: dsn, MaxConns: 4})
	cancel()
	if err != nil {
		return err
	}
	defer db.Close()
	target.DB = db
	r.step("warm up: one async issue until its row is in MySQL")
	if err := target.WarmUp(ctx, time.Minute); err != nil {
		return err
	}
	if warm {
		r.step("warm up: async %s, %d requests, not measured", warmSpec.Model(), warmSpec.Load.Requests)
		res, err := RunPhase(ctx, target, warmSpec, r.say)
		if err != nil {
			return err
		}
		r.say("      %d accepted (%.0f req/s), sink drained in %s, verified %s",
			res.Stats.Accepted, res.Stats.AcceptedPerSec, res.Sink.Drain.Round(time.Millisecond), okWord(res.Verdict.OK() && res.Sink.Drained))
		if !res.Verdict.OK() || !res.Sink.Drained {
			return fmt.Errorf("warm-up failed: sink drained %t, problems %q", res.Sink.Drained, res.Verdict.Problems)
		}
		if sys != nil {
			if err := sys.dropGateKeys(ctx, res.CouponIDs); err != nil {
				r.say("      could not drop the gate keys of the warm-up coupon: %v", err)
			}
		}
	}

	runOne := func(spec PhaseSpec) error {
		if spec.Ceiling && target.CeilingURL == "" {
			r.step("phase %s: skipped (no ceiling server: --url, or no ceiling binary in --bin-dir)", spec.Name)
			return nil
		}
		supply := fmt.Sprintf("supply %d x %d coupon(s)", spec.Supply, spec.Coupons)
		if spec.Ceiling {
			supply = "no system (every request answered 202)"
		}
		r.step("phase %s: %s, %d requests, %s, %d%% duplicates",
			spec.Name, spec.Model(), spec.Load.Requests, supply, int(spec.Load.DupShare*100))
		spec.Load.Progress = r.progress(spec.Load.Requests)
		res, err := RunPhase(ctx, target, spec, r.say)
		r.endProgress()
		if err != nil {
			return err
		}
		s := res.Stats
		r.say("      %d accepted (%s req/s), %d already, %d sold out, %d errors; p99 %.1f ms; rows %d, verified %s",
			s.Accepted, strconv.FormatFloat(s.AcceptedPerSec, 'f', 0, 64), s.Already, s.SoldOut, s.Errors, s.Latency.P99, res.Sink.Rows, okWord(res.Verdict.OK() && res.Sink.Drained))
		if res.CPU != nil {
			r.say("      cpu: %s", res.CPU)
		}
		if b := res.Batching; b != nil {
			r.say("      batching: %.1f records per produce request, %.1f users per script call", b.RecordsPerRequest, b.UsersPerCall)
		}
		report.Phases = append(report.Phases, res)
		if sys != nil && spec.Strategy == coupon.StrategyAsync && !spec.Ceiling {
			// The bench's coupons are done with: dropping their gate keys
			// keeps the dev Redis (and its append-only file rewrites, which
			// would skew the next phase) small from run to run.
			if err := sys.dropGateKeys(ctx, res.CouponIDs); err != nil {
				r.say("      could not drop the gate keys of the phase's coupons: %v", err)
			}
		}
		return nil
	}
	for _, spec := range specs {
		if err := runOne(spec); err != nil {
			return err
		}
	}
	// The open-model phases run at a rate derived from the closed ones.
	for _, spec := range o.OpenPhases(o.OpenRateAfter(report)) {
		if err := runOne(spec); err != nil {
			return err
		}
	}

	speed := &Speed{}
	if p := report.Phase(coupon.StrategyAsync); p != nil {
		speed.MaxAccepted, speed.Concurrency = p.Stats.AcceptedPerSec, p.Spec.Load.Concurrency
	}
	for _, p := range report.Phases {
		if p.Spec.Name == PhaseAsyncOpen {
			speed.OpenRate, speed.OpenAchieved, speed.OpenLatency, speed.OpenErrors = p.Stats.OfferedPerSec, p.Stats.AcceptedPerSec, p.Stats.Latency, p.Stats.Errors
		}
	}
	r.step("redis-benchmark: EVALSHA of the admit script on %s", redisAddr)
	if o.RedisBenchRequests <= 0 {
		speed.RedisNote = "skipped (--redis-benchmark-requests 0)"
	} else if rb, err := redisbench.AdmitCeiling(ctx, redisbench.Options{Addr: redisAddr, Requests: o.RedisBenchRequests}); err != nil {
		speed.RedisNote = err.Error()
		r.say("      not measured: %v", err)
	} else {
		speed.EvalshaPerSec, speed.EvalshaP99 = rb.OpsPerSec, rb.P99Ms
		r.say("      %.0f ops/s (p50 %.3f ms, p99 %.3f ms)", rb.OpsPerSec, rb.P50Ms, rb.P99Ms)
	}
	if speed.MaxAccepted > 0 || speed.OpenRate > 0 || speed.EvalshaPerSec > 0 {
		report.Speed = speed
	}

	r.step("report")
	report.Machine.LoadAvg += " -> " + loadAvg()
	report.Duration = time.Since(started)
	report.Notes = append(report.Notes, "Everything ran on this one machine: load generator, gateway, sinker, Redis, Kafka and MariaDB share its cores.")
	if len(o.SystemEnv) > 0 {
		report.Notes = append(report.Notes, "The gateway and sinker ran with --system-env "+strings.Join(o.SystemEnv, ",")+" (not the defaults).")
	}
	jsonPath, htmlPath, err := report.WriteFiles(dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	report.WriteTable(out)
	fmt.Fprintf(out, "\nmachine: %d cores, load average %s; run took %s\n", report.Machine.Cores, report.Machine.LoadAvg, report.Duration.Round(time.Second))
	fmt.Fprintf(out, "results: %s\n         %s\n", jsonPath, htmlPath)
	if sys != nil {
		fmt.Fprintf(out, "logs:    %s\n", sys.logDir)
	}
	if !report.OK() {
		return errors.New("verification failed: see the table")
	}
	return nil
}

// dropGateKeys deletes the gate state of finished bench coupons.
func (s *system) dropGateKeys(ctx context.Context, couponIDs []int64) error {
	cfg := admitter.DefaultConfig()
	cfg.Addrs, cfg.MasterName, cfg.BatchMax = s.clients.RedisAddrs, s.clients.RedisMaster, 1
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

// progress returns a Progress callback: a ticking counter on a terminal, a
// line every two seconds otherwise.
func (r *runner) progress(total int) func(Progress) {
	var lastLine time.Duration
	return func(p Progress) {
		line := fmt.Sprintf("      %6.1fs  sent %d/%d  answered %d  accepted %d  (%.0f answers/s)",
			p.Elapsed.Seconds(), p.Sent, total, p.Done, p.Accepted, float64(p.Done)/max(p.Elapsed.Seconds(), 1e-3))
		switch {
		case r.tty:
			fmt.Fprintf(r.out, "\r%s\033[K", line)
			r.open = true
		case p.Elapsed-lastLine >= 2*time.Second:
			lastLine = p.Elapsed
			fmt.Fprintln(r.out, line)
		}
	}
}

// endProgress ends a ticking counter's line.
func (r *runner) endProgress() {
	if r.open {
		fmt.Fprintln(r.out)
		r.open = false
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

// system is the stack, gateway and sinker a run started.
type system struct {
	url, token string
	ceilingURL string // the HTTP ceiling server ("": none)
	clients    stack.Clients
	redisAddr  string // the primary, for redis-benchmark
	topics     []string
	children   proc.Group
	logDir     string
}

// startSystem brings up the local stack, a per-run topic pair, and the
// gateway and sinker as subprocesses (built from local.Root unless BinDir
// names prebuilt ones), and waits until both are ready.
func startSystem(ctx context.Context, o Options, local Local, dir string, r *runner) (*system, error) {
	st := local.Stack
	r.step("stack up (%s)", st.Config().Dir)
	if err := st.Up(ctx); err != nil {
		return nil, err
	}
	sys := &system{clients: st.Clients(local.Database), redisAddr: st.RedisAddr(), logDir: dir}

	// A fresh topic pair per run: the sinker starts on an empty topic, so
	// the drain time is this run's alone. Deleted at the end.
	run := "bench-" + filepath.Base(dir)
	topic, dlq := coupon.DefaultTopic+"."+run, coupon.DefaultDeadLetterTopic+"."+run
	r.step("migrate %s, create topics %s", sys.clients.MySQLDSN, topic)
	if err := mysql.Migrate(ctx, sys.clients.MySQLDSN, nil); err != nil {
		return sys, err
	}
	for _, t := range []kafka.TopicSpec{kafka.AdmittedTopic(topic, 12, 1), kafka.DeadLetterTopic(dlq, 12, 1)} {
		if _, err := kafka.Ensure(ctx, sys.clients.KafkaBrokers, t); err != nil {
			return sys, err
		}
	}
	sys.topics = []string{topic, dlq}

	binDir := o.BinDir
	if binDir == "" {
		binDir = filepath.Join(dir, "bin")
		r.step("build gateway, sinker and ceiling into %s", binDir)
		for _, name := range []string{"gateway", "sinker", "ceiling"} {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, name), "./cmd/"+name)
			cmd.Dir = local.Root
			if out, err := cmd.CombinedOutput(); err != nil {
				return sys, fmt.Errorf("build %s: %w\n%s", name, err, out)
			}
		}
	} else {
		r.step("use gateway and sinker from %s", binDir)
	}

	httpAddr, err := proc.FreeAddr()
	if err != nil {
		return sys, err
	}
	metricsAddr, err := proc.FreeAddr()
	if err != nil {
		return sys, err
	}
	ceilingAddr, err := proc.FreeAddr()
	if err != nil {
		return sys, err
	}
	sys.ceilingURL = "http://" + ceilingAddr
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
	if len(o.SystemEnv) > 0 {
		r.say("      system settings: %s", strings.Join(o.SystemEnv, " "))
	}
	env = append(append(append(env, o.SystemEnv...), sys.clients.Env()...), // the run's own settings last: they win
		"COUPON_TOPIC="+topic,
		"COUPON_DLQ_TOPIC="+dlq,
		"COUPON_GROUP_ID="+coupon.DefaultSinkerGroup+"-"+run,
		"COUPON_ADMIN_TOKEN="+sys.token,
		"COUPON_HTTP_ADDR="+httpAddr,
		"COUPON_METRICS_ADDR="+metricsAddr,
		"COUPON_LOG_LEVEL=warn",
	)
	r.step("start sinker, gateway (%s) and the HTTP ceiling (%s); logs in %s", sys.url, sys.ceilingURL, dir)
	for _, name := range []string{"sinker", "gateway", "ceiling"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil && name == "ceiling" {
			// A --bin-dir from before the ceiling existed: no ceiling phases.
			r.say("      no ceiling binary in %s: the ceiling phases are skipped", binDir)
			sys.ceilingURL = ""
			continue
		}
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return sys, err
		}
		childEnv := env
		if name == "ceiling" {
			childEnv = append(slices.Clone(env), "COUPON_HTTP_ADDR="+ceilingAddr)
		}
		c, err := proc.Start(name, filepath.Join(binDir, name), nil, childEnv, logf, logf, func() { logf.Close() })
		if err != nil {
			logf.Close()
			return sys, err
		}
		sys.children = append(sys.children, c)
	}
	ready := []struct{ name, url string }{{"sinker", "http://" + metricsAddr + "/readyz"}, {"gateway", sys.url + "/readyz"}}
	if sys.ceilingURL != "" {
		ready = append(ready, struct{ name, url string }{"ceiling", sys.ceilingURL + "/readyz"})
	}
	for _, w := range ready {
		if err := sys.children.WaitReady(ctx, w.url, 60*time.Second); err != nil {
			return sys, fmt.Errorf("%s not ready (see %s): %w", w.name, filepath.Join(dir, w.name+".log"), err)
		}
	}
	return sys, nil
}

// pids are the processes whose CPU a phase reports: the children, the
// stack's servers and this process (the load generator).
func (s *system) pids(st *stack.Stack) map[string]int {
	m := map[string]int{"load generator": os.Getpid()}
	for _, c := range s.children {
		m[c.Name] = c.Pid()
	}
	for name, pid := range st.PIDs() {
		m[name] = pid
	}
	return m
}

// scrapeCounters reads the gateway's batching counters from its /metrics.
func scrapeCounters(ctx context.Context, url string) (GatewayCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return GatewayCounters{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return GatewayCounters{}, fmt.Errorf("gateway metrics: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return GatewayCounters{}, fmt.Errorf("gateway metrics: %w", err)
	}
	var c GatewayCounters
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		switch name {
		case "coupon_gateway_kafka_produce_requests_total":
			c.ProduceRequests = f
		case "coupon_gateway_kafka_records_total":
			c.Records = f
		case "coupon_gateway_gate_script_calls_total":
			c.ScriptCalls = f
		case "coupon_gateway_gate_script_users_total":
			c.ScriptUsers = f
		}
	}
	return c, nil
}

// stop ends the gateway and sinker and deletes the run's topics.
func (s *system) stop(out io.Writer) {
	if err := s.children.Stop(20*time.Second, out); err != nil {
		fmt.Fprintf(os.Stderr, "bench: stop: %v\n", err)
	}
	if len(s.topics) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kafka.DeleteTopics(ctx, s.clients.KafkaBrokers, s.topics...); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
	}
}

// checkSystemEnv checks one --system-env entry: COUPON_NAME=value, not one
// of the settings the run makes itself (where the stack, topic, ports and
// token are).
func checkSystemEnv(kv string) error {
	name, _, ok := strings.Cut(kv, "=")
	switch {
	case !ok || !strings.HasPrefix(name, "COUPON_") || len(name) == len("COUPON_"):
		if len(kv) > 64 {
			kv = kv[:64] + "…"
		}
		return fmt.Errorf("%q is not COUPON_NAME=value", kv)
	case slices.Contains(runSettings, name):
		return fmt.Errorf("%s is set by the run itself", name)
	}
	return nil
}

// runSettings are the variables startSystem sets for its gateway and sinker.
var runSettings = []string{"COUPON_TOPIC", "COUPON_DLQ_TOPIC", "COUPON_GROUP_ID", "COUPON_ADMIN_TOKEN", "COUPON_HTTP_ADDR",
	"COUPON_METRICS_ADDR", "COUPON_LOG_LEVEL", "COUPON_REDIS_ADDRS", "COUPON_REDIS_MASTER_NAME", "COUPON_REDIS_WAIT_REPLICAS",
	"COUPON_KAFKA_BROKERS", "COUPON_MYSQL_DSN"}
