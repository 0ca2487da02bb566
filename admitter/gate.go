package admitter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/batch"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/lua"
	"github.com/redis/go-redis/v9"
)

var (
	_ coupon.Gate     = (*Gate)(nil)
	_ coupon.GateThen = (*Gate)(nil)
)

// Config configures the gate's Redis client and its admission batching.
// Start from DefaultConfig.
type Config struct {
	// Addrs is one Redis address, or the seed list of a Redis Cluster (two
	// or more addresses, or Cluster set, select the cluster client), or
	// with MasterName the Sentinels' addresses.
	Addrs   []string
	Cluster bool
	// MasterName selects Redis Sentinel: the client asks the Sentinels at
	// Addrs for the primary monitored under this name and follows its
	// failovers.
	MasterName string
	Username   string
	Password   string
	DB         int // standalone only

	PoolSize     int // connections per node; 0 = go-redis default (10 per CPU)
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration

	// BatchMax is how many concurrent Admit calls at most share one
	// pipeline; 1 disables batching (one round trip per call). A batch is
	// what queued while the pipelines were busy: a lone call goes out at
	// once, batches grow with load.
	BatchMax int
	// BatchPipelines is how many batch pipelines may be in flight at once.
	BatchPipelines int

	// WaitReplicas makes admissions durable across a failover of the Redis
	// primary: each admit pipeline ends with WAIT WaitReplicas WaitTimeout
	// (one per pipeline, covering all its users, on the connection that ran
	// the scripts), and its admissions are returned only when that many
	// replicas acknowledged them. Fewer acknowledgements release them and
	// answer EUNAVAILABLE "retry" (see docs/redis-failover.md). 0 = off (a
	// standalone Redis); not available with the cluster client.
	WaitReplicas int
	// WaitTimeout bounds the WAIT; it must be shorter than ReadTimeout.
	WaitTimeout time.Duration
}

// Batching defaults (see BenchmarkAdmit for the figures behind them).
// Two pipelines, not four: in the whole co-located system (couponctl
// bench, 2 cores shared with Redis, Kafka and MariaDB) fewer, fuller
// pipelines (about 36 admissions per Redis read instead of 28) cost the
// gateway 53-56 us of CPU per accepted request instead of 62-69, and the
// closed-model rate went from 12.8-13.5k to 15.4-16.4k req/s (three runs
// each); one pipeline was in between. Measured again on 2026-12-02
// (couponctl bench async,async-many, five pairs alternating): one pipeline
// doubles the users per script call (9-10 to 14-20 on one hot coupon, 12
// to 20-28 over 1,000 coupons: a request waits for the call in flight),
// but saves Redis only ~0.6 us per accepted request (6.8 to 6.2 hot, 9.8 to
// 9.2 many) while the hot coupon's rate was lower in four pairs of five
// (mean -6%): the batches in the running system are small because few
// requests are at the gate at once (most wait for Kafka), not for want of
// a free pipeline, so two stay.
const (
	DefaultBatchMax       = 256
	DefaultBatchPipelines = 2
)

// DefaultWaitTimeout bounds the replicas' acknowledgement of a batch: on
// loopback a replica acknowledges within a millisecond; a replica that has
// not after 200 ms is lagging or gone.
const DefaultWaitTimeout = 200 * time.Millisecond

// MaxBatch bounds BatchMax: one script call admits at most that many users
// of a coupon, and Lua's unpack of their HMGET and HSET arguments must stay
// under its stack limit (8,000 values).
const MaxBatch = 2048

// DefaultConfig is the production configuration against the dev stack's
// Redis.
func DefaultConfig() Config {
	return Config{
		Addrs:          []string{"127.0.0.1:6379"},
		DialTimeout:    2 * time.Second,
		ReadTimeout:    time.Second,
		WriteTimeout:   time.Second,
		BatchMax:       DefaultBatchMax,
		BatchPipelines: DefaultBatchPipelines,
		WaitTimeout:    DefaultWaitTimeout,
	}
}

// Bind binds the settings an operator sets to flags with COUPON_*
// environment defaults; the defaults are c's values.
func (c *Config) Bind(fs *cli.FlagSet) {
	fs.RedisAddrsVar(&c.Addrs)
	fs.BoolVar(&c.Cluster, "redis-cluster", "COUPON_REDIS_CLUSTER", c.Cluster, "use the Redis Cluster client even with one address")
	fs.RedisMasterNameVar(&c.MasterName)
	fs.RedisPasswordVar(&c.Password)
	fs.IntVar(&c.PoolSize, "redis-pool-size", "COUPON_REDIS_POOL_SIZE", c.PoolSize, "Redis connections per node (0: go-redis default, 10 per CPU)")
	fs.IntVar(&c.BatchMax, "gate-batch-max", "COUPON_GATE_BATCH_MAX", c.BatchMax, fmt.Sprintf("admissions per Redis pipeline at most, 1..%d (1: no batching)", MaxBatch))
	fs.IntVar(&c.BatchPipelines, "gate-pipelines", "COUPON_GATE_PIPELINES", c.BatchPipelines, "admission pipelines in flight at once")
	fs.IntVar(&c.WaitReplicas, "redis-wait-replicas", "COUPON_REDIS_WAIT_REPLICAS", c.WaitReplicas, "Redis replicas that must acknowledge each admission batch (WAIT) before it is published (0: off, for a standalone Redis)")
	fs.DurationVar(&c.WaitTimeout, "redis-wait-timeout", "COUPON_REDIS_WAIT_TIMEOUT", c.WaitTimeout, "how long a batch waits for the replicas' acknowledgement (shorter than the Redis read timeout, 1s)")
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := []error{c.validateClient()}
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("redis: at least one address is required (COUPON_REDIS_ADDRS)"))
	}
	for _, a := range c.Addrs {
		if strings.TrimSpace(a) == "" {
			errs = append(errs, errors.New("redis: empty address (COUPON_REDIS_ADDRS)"))
		}
	}
	if c.MasterName != "" && c.Cluster {
		errs = append(errs, errors.New("redis: a Sentinel master name (COUPON_REDIS_MASTER_NAME) and the cluster client (COUPON_REDIS_CLUSTER) exclude each other"))
	}
	if c.WaitReplicas > 0 && (c.Cluster || c.MasterName == "" && len(c.Addrs) > 1) {
		errs = append(errs, errors.New("redis: waiting for replicas (WAIT, COUPON_REDIS_WAIT_REPLICAS) is not available with the cluster client"))
	}
	if c.PoolSize < 0 {
		errs = append(errs, errors.New("redis: pool size must not be negative (COUPON_REDIS_POOL_SIZE)"))
	}
	return errors.Join(errs...)
}

// validateClient checks the batch, wait and timeout settings, the part of
// Config NewFromClient uses.
func (c Config) validateClient() error {
	var errs []error
	if c.BatchMax < 1 || c.BatchMax > MaxBatch {
		errs = append(errs, fmt.Errorf("gate batch max must be 1..%d (COUPON_GATE_BATCH_MAX), not %d", MaxBatch, c.BatchMax))
	}
	if c.BatchPipelines < 1 {
		errs = append(errs, fmt.Errorf("gate pipelines must be at least 1 (COUPON_GATE_PIPELINES), not %d", c.BatchPipelines))
	}
	if c.DialTimeout <= 0 || c.ReadTimeout <= 0 || c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("redis: dial, read and write timeouts must be positive"))
	}
	if c.WaitReplicas < 0 || c.WaitTimeout <= 0 {
		errs = append(errs, errors.New("redis: wait replicas must not be negative (COUPON_REDIS_WAIT_REPLICAS) and the wait timeout must be positive (COUPON_REDIS_WAIT_TIMEOUT)"))
	} else if c.WaitTimeout >= c.ReadTimeout {
		errs = append(errs, fmt.Errorf("redis: the wait timeout %s (COUPON_REDIS_WAIT_TIMEOUT) must be shorter than the read timeout %s", c.WaitTimeout, c.ReadTimeout))
	}
	return errors.Join(errs...)
}

// Gate is the Redis admission gate (coupon.Gate). Admit runs the admit Lua
// script by EVALSHA; with batching on, concurrent calls share pipelines.
type Gate struct {
	client  redis.UniversalClient
	owned   bool // Close closes client
	logger  *slog.Logger
	admit   *redis.Script
	release *redis.Script
	resize  *redis.Script
	init    *redis.Script
	migrate *redis.Script
	batch   *batcher // nil: one round trip per Admit
	// waitReplicas > 0: each admit pipeline ends with WAIT waitReplicas waitMillis.
	waitReplicas int
	waitMillis   int64

	cluster   bool // one admit script call per hash slot, not one per pipeline
	perCoupon bool // one admit script call per coupon (how it was before; benchmarks compare)

	calls, users atomic.Int64 // admit script calls sent and the users they carried (Stats)
	// Writes the replicas did not acknowledge (Stats): admissions released
	// for it, releases and pending marks left on the primary only.
	unackedAdmits, unackedReleases, unackedPending atomic.Int64
}

// New connects to Redis (checking it answers), loads the scripts and
// returns the gate. A nil logger logs nothing.
func New(cfg Config, logger *slog.Logger) (*Gate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:         cfg.Addrs,
		IsClusterMode: cfg.Cluster,
		MasterName:    cfg.MasterName,
		Username:      cfg.Username,
		Password:      cfg.Password,
		DB:            cfg.DB,
		PoolSize:      cfg.PoolSize,
		DialTimeout:   cfg.DialTimeout,
		ReadTimeout:   cfg.ReadTimeout,
		WriteTimeout:  cfg.WriteTimeout,
		// No automatic retries: a retried admit whose first attempt ran
		// would answer "already admitted" to the very request that was
		// admitted. A failed call surfaces as EUNAVAILABLE instead.
		MaxRetries: -1,
	})
	g, err := NewFromClient(client, cfg, logger)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	g.owned = true
	return g, nil
}

// NewFromClient returns a gate on an existing client (which Close leaves
// open), loading the scripts. Only cfg's batch settings and timeouts are
// used. A nil logger logs nothing.
func NewFromClient(client redis.UniversalClient, cfg Config, logger *slog.Logger) (*Gate, error) {
	if err := cfg.validateClient(); err != nil {
		return nil, err
	}
	logger = cli.OrDiscard(logger)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout+cfg.ReadTimeout)
	defer cancel()
	_, cluster := client.(*redis.ClusterClient)
	if cluster && cfg.WaitReplicas > 0 {
		return nil, errors.New("redis: waiting for replicas (WAIT) is not available with the cluster client")
	}
	g := &Gate{
		cluster:      cluster,
		client:       client,
		logger:       logger,
		admit:        redis.NewScript(lua.Admit),
		release:      redis.NewScript(lua.Release),
		resize:       redis.NewScript(lua.Resize),
		init:         redis.NewScript(lua.Init),
		migrate:      redis.NewScript(lua.Migrate),
		waitReplicas: cfg.WaitReplicas,
		waitMillis:   cfg.WaitTimeout.Milliseconds(),
	}
	if err := g.loadScripts(ctx); err != nil {
		return nil, err
	}
	if cfg.BatchMax > 1 {
		g.batch = newBatcher(g, cfg.BatchMax, cfg.BatchPipelines)
	}
	logger.Info("admission gate ready", "batch_max", cfg.BatchMax, "batch_pipelines", cfg.BatchPipelines,
		"wait_replicas", cfg.WaitReplicas, "wait_timeout", cfg.WaitTimeout)
	return g, nil
}

func (g *Gate) loadScripts(ctx context.Context) error {
	for _, s := range []*redis.Script{g.admit, g.release, g.resize} {
		if err := s.Load(ctx, g.client).Err(); err != nil {
			return g.wrap(err, "load scripts")
		}
	}
	return nil
}

// Close drains queued admissions, waits for those in flight and closes the
// client if New opened it.
func (g *Gate) Close() error {
	if g.batch != nil {
		g.batch.close()
	}
	if g.owned {
		return g.client.Close()
	}
	return nil
}

// Stats are the gate's counters since it opened: admit script calls sent
// and the users they carried; with WaitReplicas, the writes fewer replicas
// acknowledged than waited for: admissions (released again and answered
// unknown), releases and pending marks (standing on the primary only).
type Stats struct {
	Calls, Users                                   int64
	UnackedAdmits, UnackedReleases, UnackedPending int64
}

// UsersPerCall is Users/Calls (0 before the first call).
func (s Stats) UsersPerCall() float64 {
	if s.Calls == 0 {
		return 0
	}
	return float64(s.Users) / float64(s.Calls)
}

// Stats returns the gate's counters.
func (g *Gate) Stats() Stats {
	return Stats{Calls: g.calls.Load(), Users: g.users.Load(), UnackedAdmits: g.unackedAdmits.Load(),
		UnackedReleases: g.unackedReleases.Load(), UnackedPending: g.unackedPending.Load()}
}

// Client returns the underlying Redis client (for readiness checks).
func (g *Gate) Client() redis.UniversalClient { return g.client }

// Init creates the coupon's gate state with its total and seq 0 (one
// script); an existing state, in either layout, is left untouched.
func (g *Gate) Init(ctx context.Context, couponID, total int64) error {
	if err := g.init.Run(ctx, g.client, []string{usersKey(couponID), oldSeqKey(couponID)}, total).Err(); err != nil {
		return g.wrap(err, "init gate of coupon %d", couponID)
	}
	return nil
}

// migrateState moves the coupon's gate state from the layout before its hash
// held seq and total into the hash, if it is still there, and reports
// whether the hash holds a state now (false: the state is lost). A reader
// that finds no seq field calls it (readState) before it answers "lost".
func (g *Gate) migrateState(ctx context.Context, couponID int64) (bool, error) {
	n, err := g.migrate.Run(ctx, g.client, migrateKeys(couponID)).Int64()
	if err != nil {
		return false, g.wrap(err, "migrate gate state of coupon %d", couponID)
	}
	return n == 1, nil
}

// readState runs read, which reports whether it found the coupon's seq
// field; if not, it migrates an old-layout state and reads again. A coupon
// without state in either layout is lostState.
func (g *Gate) readState(ctx context.Context, couponID int64, read func() (present bool, err error)) error {
	if present, err := read(); err != nil || present {
		return err
	}
	switch ok, err := g.migrateState(ctx, couponID); {
	case err != nil:
		return err
	case !ok:
		return lostState(couponID)
	}
	present, err := read()
	if err == nil && !present {
		return lostState(couponID)
	}
	return err
}

// Resize sets the coupon's total in the gate, for revision (the coupon's
// revision in MySQL). It refuses with ECONFLICT, atomically in the script,
// a total below the users admitted; a revision older than the one set
// already changes nothing and is not an error (a later change won). It
// returns how many users are admitted.
func (g *Gate) Resize(ctx context.Context, couponID, total, revision int64) (int64, error) {
	keys := []string{usersKey(couponID), revisionKey(couponID)}
	var code, held int64
	err := g.readState(ctx, couponID, func() (bool, error) {
		v, err := g.resize.Run(ctx, g.client, keys, total, revision).Int64Slice()
		if err == nil && len(v) != 2 {
			err = fmt.Errorf("resize script: %d values", len(v))
		}
		if err != nil {
			return false, g.wrap(err, "resize coupon %d to %d", couponID, total)
		}
		code, held = v[0], v[1]
		return code != lua.ResizeLost, nil
	})
	if err != nil {
		return 0, err
	}
	switch code {
	case lua.ResizeOK, lua.ResizeStale:
		return held, nil
	case lua.ResizeConflict:
		return held, coupon.Errorf(coupon.ECONFLICT,
			"totalQuantity %d is below the %d users already admitted to coupon %d.", total, held, couponID)
	default:
		return 0, fmt.Errorf("resize script: unknown code %d", code)
	}
}

// Admit admits userID to the coupon and returns its new rank. On EALREADY
// the returned rank is the user's existing rank. If ctx ends while the call
// is queued for a batch, nothing is sent and ctx's error is returned; once
// sent, Admit waits for the reply (bounded by the read timeout), so the
// caller always learns an admission that happened. An error that may follow
// an admission (the call was sent, its reply did not come) has
// coupon.ErrGateUnknown in its chain; every other failure admitted nobody.
func (g *Gate) Admit(ctx context.Context, couponID, userID, total int64) (int64, error) {
	r := &admitReq{couponID: couponID, userID: userID, total: total}
	if g.batch != nil {
		if err := g.batch.q.Do(ctx, r); err != nil {
			r.err = queueError(err)
		}
	} else {
		g.admitCalls(ctx, g.split([][]*admitReq{{r}}))
	}
	return g.result(r)
}

// AdmitThen is Admit without waiting (coupon.GateThen): then gets Admit's
// results, once, from the goroutine that ran the user's batch, which goes
// on with the batch's other users once then returns. A call whose ctx has
// ended by the time a batch takes it is not sent (Admit's "given up while
// queued"). Without batching it calls Admit and then before returning.
func (g *Gate) AdmitThen(ctx context.Context, couponID, userID, total int64, then func(rank int64, err error)) {
	if g.batch == nil {
		then(g.Admit(ctx, couponID, userID, total))
		return
	}
	g.batch.q.Go(ctx, &admitReq{couponID: couponID, userID: userID, total: total, then: then})
}

// result is Admit's answer for r once its batch (or its queueing) set it.
func (g *Gate) result(r *admitReq) (int64, error) {
	couponID, userID := r.couponID, r.userID
	if r.err != nil {
		if mayHaveRun(r.err) {
			return 0, fmt.Errorf("admit user %d to coupon %d: %w: %w", userID, couponID, coupon.ErrGateUnknown, r.err)
		}
		return 0, g.wrap(r.err, "admit user %d to coupon %d", userID, couponID)
	}
	return r.rank, admitError(r.code, couponID, userID)
}

// errQueued marks a call whose context ended while it was queued for a
// batch: it was never sent.
var errQueued = errors.New("not sent: the caller's context ended while queued")

// mayHaveRun tells whether a failed admit call may have run on the server:
// it was sent and no reply came (the connection broke, the read timed out).
// A server error reply, a refused or timed-out dial, a pool timeout, a
// closed client and a call still queued admitted nobody.
func mayHaveRun(err error) bool {
	var rerr redis.Error
	var oerr *net.OpError
	switch {
	case errors.Is(err, errNotDurable):
		return true // released on the primary, which may not survive
	case errors.As(err, &rerr), errors.Is(err, errQueued),
		errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &oerr) && oerr.Op == "dial",
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return false
	}
	return true
}

// errNotDurable is the cause of an admission the replicas did not
// acknowledge in time, released again (see releaseUnacked).
var errNotDurable = errors.New("the Redis replicas did not acknowledge the admission in time; released on the primary")

// admitResult is one user's {code, rank} pair of the admit script's reply.
type admitResult struct{ code, rank int64 }

// parseAdmit decodes the admit script's reply for n users: n {code, rank}
// pairs, flattened.
func parseAdmit(cmd *redis.Cmd, n int) ([]admitResult, error) {
	v, err := cmd.Int64Slice()
	if err != nil {
		return nil, err
	}
	if len(v) != 2*n {
		return nil, fmt.Errorf("admit script: %d values for %d users", len(v), n)
	}
	out := make([]admitResult, n)
	for i := range out {
		out[i] = admitResult{v[2*i], v[2*i+1]}
	}
	return out, nil
}

// admitError maps an admit script code to the domain error.
func admitError(code, couponID, userID int64) error {
	switch code {
	case lua.AdmitOK:
		return nil
	case lua.AdmitAlready:
		return coupon.Errorf(coupon.EALREADY, "User %d already holds coupon %d.", userID, couponID)
	case lua.AdmitSoldOut:
		return coupon.Errorf(coupon.ESOLDOUT, "Coupon %d is sold out.", couponID)
	case lua.AdmitLost:
		return lostState(couponID)
	}
	return fmt.Errorf("admit script: unknown code %d", code)
}

func lostState(couponID int64) error {
	return errors.Join(coupon.Errorf(coupon.EUNAVAILABLE,
		"The gate state of coupon %d is missing and is being rebuilt (couponctl rebuild-gate --coupon %d); retry later.", couponID, couponID),
		coupon.ErrGateLost)
}

// Release removes the admission of userID if it still has rank, with its
// pending mark of that rank, and reports whether it did; ranks are never
// reused. Releasing an admission that is gone is not an error.
//
// With WaitReplicas, a release that removed the admission is followed by
// WAIT in the same pipeline. When fewer replicas acknowledged it, Release
// reports released true with an error wrapping coupon.ErrGateUnacked: the
// admission is gone on the primary, but a failover to a replica without the
// release brings it back (with no record behind it, which reconciliation
// releases). The caller logs it; Stats counts it.
func (g *Gate) Release(ctx context.Context, couponID, userID, rank int64) (bool, error) {
	keys := []string{usersKey(couponID), pendingKey(couponID)}
	var cmd *redis.Cmd
	// EVAL, not EVALSHA: a rare path, and no NOSCRIPT to handle in the pipeline.
	short := g.waited(ctx, func(p redis.Pipeliner) { cmd = g.release.Eval(ctx, p, keys, userID, rank) })
	n, err := cmd.Int64()
	if err != nil {
		return false, g.wrap(err, "release user %d of coupon %d", userID, couponID)
	}
	if n == 1 && short != nil { // a release that removed nothing wrote nothing
		g.unackedReleases.Add(1)
		return true, fmt.Errorf("release user %d of coupon %d: %w", userID, couponID, short)
	}
	return n == 1, nil
}

// MarkPending records userID's admission (rank) as having an unknown
// publish outcome; the slot stays taken. With WaitReplicas the mark is
// followed by WAIT in the same pipeline; when fewer replicas acknowledged
// it, the mark stands on the primary and the error wraps
// coupon.ErrGateUnacked: a failover may lose the mark, not the admission,
// which reconciliation finds unpublished without it. Stats counts it.
func (g *Gate) MarkPending(ctx context.Context, couponID, userID, rank int64) error {
	var cmd *redis.IntCmd
	short := g.waited(ctx, func(p redis.Pipeliner) { cmd = p.HSet(ctx, pendingKey(couponID), userID, rank) })
	if err := cmd.Err(); err != nil {
		return g.wrap(err, "mark user %d of coupon %d pending", userID, couponID)
	}
	if short != nil {
		g.unackedPending.Add(1)
		return fmt.Errorf("mark user %d of coupon %d pending: %w", userID, couponID, short)
	}
	return nil
}

// waited runs the commands queue queues in one pipeline, followed by WAIT
// when the gate waits for replicas (the WAIT covers every write of the
// connection so far, so it covers them). The commands carry their own
// errors; waited returns the WAIT's shortfall (unackedError), nil when
// enough replicas acknowledged or the gate does not wait.
func (g *Gate) waited(ctx context.Context, queue func(redis.Pipeliner)) error {
	pipe := g.client.Pipeline()
	queue(pipe)
	wait := g.queueWait(ctx, pipe)
	_, _ = pipe.Exec(ctx) // each command carries its own error
	if g.acked(wait) {
		return nil
	}
	return g.unackedError(wait)
}

// queueWait queues the WAIT of a pipeline of writes; nil when the gate does
// not wait for replicas.
func (g *Gate) queueWait(ctx context.Context, p redis.Pipeliner) *redis.Cmd {
	if g.waitReplicas == 0 {
		return nil
	}
	return p.Do(ctx, "WAIT", g.waitReplicas, g.waitMillis)
}

// unackedError is the error of writes that wait (not nil) did not see
// acknowledged by enough replicas: they ran on the primary only.
func (g *Gate) unackedError(wait *redis.Cmd) error {
	n, werr := wait.Int64()
	return fmt.Errorf("%w (%d of %d replicas within %d ms, %v)", coupon.ErrGateUnacked, n, g.waitReplicas, g.waitMillis, werr)
}

// Rank returns userID's rank if admitted. A lost gate state is EUNAVAILABLE.
func (g *Gate) Rank(ctx context.Context, couponID, userID int64) (int64, bool, error) {
	var rank int64
	var held bool
	err := g.readState(ctx, couponID, func() (bool, error) {
		v, err := g.client.HMGet(ctx, usersKey(couponID), strconv.FormatInt(userID, 10), seqField).Result()
		if err != nil {
			return false, g.wrap(err, "rank of user %d in coupon %d", userID, couponID)
		}
		if s, ok := v[0].(string); ok {
			if rank, err = strconv.ParseInt(s, 10, 64); err != nil {
				return false, fmt.Errorf("rank of user %d in coupon %d: %w", userID, couponID, err)
			}
			held = true
		}
		return held || v[1] != nil, nil
	})
	return rank, held, err
}

// Admitted returns how many users hold a slot. A lost gate state is EUNAVAILABLE.
func (g *Gate) Admitted(ctx context.Context, couponID int64) (int64, error) {
	var held int64
	err := g.readState(ctx, couponID, func() (present bool, err error) {
		var c heldCmd
		if _, err := g.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			c = queueHeld(ctx, p, couponID)
			return nil
		}); err != nil {
			return false, g.wrap(err, "admitted count of coupon %d", couponID)
		}
		held, present = c.result()
		return present, nil
	})
	return held, err
}

// heldCmd reads how many users hold a slot of a coupon, in a pipeline: the
// HLEN of its hash less the fields that are not users.
type heldCmd struct {
	n    *redis.IntCmd
	meta *redis.SliceCmd
}

func queueHeld(ctx context.Context, p redis.Pipeliner, couponID int64) heldCmd {
	return heldCmd{p.HLen(ctx, usersKey(couponID)), p.HMGet(ctx, usersKey(couponID), seqField, totalField)}
}

// result is the users holding a slot, and whether the state is there (the
// hash has its seq field).
func (c heldCmd) result() (held int64, present bool) {
	held = c.n.Val()
	meta := c.meta.Val()
	for _, v := range meta {
		if v != nil {
			held--
		}
	}
	return held, len(meta) == 2 && meta[0] != nil
}

// AdmittedMany returns how many users hold a slot of each coupon, in one
// pipeline; a coupon whose gate state is lost is missing from the map.
func (g *Gate) AdmittedMany(ctx context.Context, couponIDs []int64) (map[int64]int64, error) {
	cmds := make([]heldCmd, len(couponIDs))
	_, err := g.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range couponIDs {
			cmds[i] = queueHeld(ctx, p, id)
		}
		return nil
	})
	if err != nil {
		return nil, g.wrap(err, "admitted counts of %d coupons", len(couponIDs))
	}
	out := make(map[int64]int64, len(couponIDs))
	for i, id := range couponIDs {
		held, present := cmds[i].result()
		if !present { // lost, or in the old layout: Admitted migrates it
			if held, err = g.Admitted(ctx, id); errors.Is(err, coupon.ErrGateLost) {
				continue
			} else if err != nil {
				return nil, err
			}
		}
		out[id] = held
	}
	return out, nil
}

// RanksOf returns userID's rank in each of the coupons it is admitted to,
// in one pipeline (coupons whose state is lost count as not admitted).
func (g *Gate) RanksOf(ctx context.Context, userID int64, couponIDs []int64) (map[int64]int64, error) {
	user := strconv.FormatInt(userID, 10)
	cmds := make([]*redis.StringCmd, len(couponIDs))
	_, err := g.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range couponIDs {
			cmds[i] = p.HGet(ctx, usersKey(id), user)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, g.wrap(err, "ranks of user %d in %d coupons", userID, len(couponIDs))
	}
	out := map[int64]int64{}
	for i, id := range couponIDs {
		if rank, err := cmds[i].Int64(); err == nil {
			out[id] = rank
		}
	}
	return out, nil
}

// wrap adds context to err and marks failures of Redis itself (unreachable,
// timeouts, loading, cluster down, out of memory...) EUNAVAILABLE; a script
// or protocol error stays a plain (internal) error.
func (g *Gate) wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", what, errUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

var errUnavailable = &coupon.Error{Code: coupon.EUNAVAILABLE, Message: "The admission service is unavailable; please retry."}

func unavailable(err error) bool {
	var nerr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return false // the caller went away; not Redis' fault
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, redis.ErrClosed), errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return true // unreachable, too slow, or this client is shutting down
	}
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.IsNoReplicasError(err) || redis.HasErrorPrefix(err, "BUSY")
}

// batcher runs concurrent Admit calls as pipelines of EVALSHA, one script
// call for every coupon of a batch (one per hash slot with Redis Cluster):
// the batch loop takes the queued calls once a pipeline slot is free, so
// batches grow with load and a lone call goes out at once. (A timed
// collection window was measured slower: with callers waiting on replies,
// it only adds latency.)
type batcher struct {
	q *batch.Batcher[*admitReq]
}

type admitReq struct {
	couponID, userID, total int64
	code, rank              int64
	err                     error
	then                    func(rank int64, err error) // AdmitThen's; nil for Admit
}

func newBatcher(g *Gate, max, pipelines int) *batcher {
	return &batcher{q: batch.New(batch.Config[*admitReq]{Max: max, Slots: pipelines, WaitSent: true,
		// Callers' contexts are honoured while queued; once sent, the
		// pipeline is bounded by the client's timeouts.
		Run: func(reqs []*admitReq) { g.admitCalls(context.Background(), g.split(groupByCoupon(reqs))) },
		Then: func(r *admitReq, err error) {
			if err != nil {
				r.err = queueError(err)
			}
			r.then(g.result(r))
		}})}
}

var errClosed = &coupon.Error{Code: coupon.EUNAVAILABLE, Message: "The admission gate is shutting down; please retry."}

// queueError is the outcome of a call the batcher refused (err not nil):
// the gate is closed, or the call was given up while queued (nothing was
// sent).
func queueError(err error) error {
	if errors.Is(err, batch.ErrClosed) {
		return errClosed
	}
	return fmt.Errorf("%w: %w", errQueued, err)
}

// admitCalls runs the admit script calls in one pipeline and sets each
// request's code, rank or error. With waitReplicas, the pipeline ends with
// WAIT: its admissions stand only when enough replicas acknowledged them
// (the WAIT covers every write of the connection so far, so it covers the
// scripts before it); otherwise they are released (releaseUnacked). The
// coupons answered AdmitLost whose state is in the old layout are migrated
// and their groups run again (once).
func (g *Gate) admitCalls(ctx context.Context, calls []scriptCall) {
	lost := g.admitOnce(ctx, calls)
	if len(lost) == 0 {
		return
	}
	present := g.migrateMany(ctx, lost)
	var again [][]*admitReq
	for _, group := range lost {
		if present[group[0].couponID] {
			again = append(again, group)
		}
	}
	if len(again) > 0 {
		g.admitOnce(ctx, g.split(again))
	}
}

// migrateMany migrates the state of the groups' coupons in one pipeline
// (EVAL: a rare path, no NOSCRIPT to handle) and reports which coupons hold
// a state now. A coupon whose migration failed counts as lost: its users
// are refused as such, which admitted nobody.
func (g *Gate) migrateMany(ctx context.Context, groups [][]*admitReq) map[int64]bool {
	pipe := g.client.Pipeline()
	cmds := map[int64]*redis.Cmd{}
	for _, group := range groups {
		if id := group[0].couponID; cmds[id] == nil {
			cmds[id] = g.migrate.Eval(ctx, pipe, migrateKeys(id))
		}
	}
	_, _ = pipe.Exec(ctx)
	present := make(map[int64]bool, len(cmds))
	for id, c := range cmds {
		n, err := c.Int64()
		if err != nil {
			g.logger.Warn("migrating a gate state failed; its users are refused as lost", "coupon", id, "err", err)
		}
		present[id] = n == 1
	}
	return present
}

// admitOnce runs the calls (see admitCalls) and returns the groups answered
// AdmitLost.
func (g *Gate) admitOnce(ctx context.Context, calls []scriptCall) (lost [][]*admitReq) {
	cmds, wait := g.runAdmits(ctx, calls)
	waits := make([]*redis.Cmd, len(calls)) // the WAIT that covers each call
	for i := range waits {
		waits[i] = wait
	}
	if noScript(cmds) {
		// The server lost its script cache (restart, SCRIPT FLUSH): those
		// commands did not run. Load the script and run them again.
		if err := g.admit.Load(ctx, g.client).Err(); err == nil {
			var retry []scriptCall
			var at []int
			for i, c := range cmds {
				if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
					retry, at = append(retry, calls[i]), append(at, i)
				}
			}
			again, wait := g.runAdmits(ctx, retry)
			for j, c := range again {
				cmds[at[j]], waits[at[j]] = c, wait
			}
		}
	}
	var unacked []*admitReq
	var short *redis.Cmd
	for i, c := range calls {
		res, err := parseAdmit(cmds[i], c.users)
		k := 0
		for _, group := range c.groups {
			if err == nil && res[k].code == lua.AdmitLost { // every user of the coupon's group
				lost = append(lost, group)
			}
			for _, r := range group {
				if err != nil {
					r.err = err
					continue
				}
				r.code, r.rank = res[k].code, res[k].rank
				k++
				if r.code == lua.AdmitOK && !g.acked(waits[i]) {
					unacked, short = append(unacked, r), waits[i]
				}
			}
		}
	}
	if len(unacked) > 0 {
		g.releaseUnacked(ctx, unacked, short)
	}
	return lost
}

// scriptCall is one admit script call: groups of several coupons (their
// users in order) and how many users they hold.
type scriptCall struct {
	groups [][]*admitReq
	users  int
}

// split puts a batch's groups into script calls: one for all of them, or
// with Redis Cluster one per hash slot (a script's keys must share a slot).
// A coupon has two groups in one call only with two totals; the script
// runs them in turn.
func (g *Gate) split(groups [][]*admitReq) []scriptCall {
	if g.perCoupon {
		calls := make([]scriptCall, len(groups))
		for i, gr := range groups {
			calls[i] = scriptCall{groups: [][]*admitReq{gr}, users: len(gr)}
		}
		return calls
	}
	if !g.cluster {
		c := scriptCall{groups: groups}
		for _, gr := range groups {
			c.users += len(gr)
		}
		return []scriptCall{c}
	}
	var calls []scriptCall
	at := map[uint16]int{}
	for _, gr := range groups {
		sl := slot(gr[0].couponID)
		i, ok := at[sl]
		if !ok {
			i = len(calls)
			at[sl] = i
			calls = append(calls, scriptCall{})
		}
		calls[i].groups = append(calls[i].groups, gr)
		calls[i].users += len(gr)
	}
	return calls
}

// runAdmits sends the calls (EVALSHA each) in one pipeline, one round trip
// per Redis node, then the WAIT if replicas are waited for (nil otherwise).
func (g *Gate) runAdmits(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, *redis.Cmd) {
	cmds := make([]*redis.Cmd, len(calls))
	pipe := g.client.Pipeline()
	for i, c := range calls {
		g.calls.Add(1)
		g.users.Add(int64(c.users))
		keys := make([]string, 0, len(c.groups))
		args := make([]any, 0, 2*len(c.groups)+c.users)
		for _, group := range c.groups {
			keys = append(keys, usersKey(group[0].couponID))
			args = append(args, group[0].total)
			if len(c.groups) > 1 {
				args = append(args, len(group))
			}
			for _, r := range group {
				args = append(args, r.userID)
			}
		}
		cmds[i] = g.admit.EvalSha(ctx, pipe, keys, args...)
	}
	wait := g.queueWait(ctx, pipe)
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return cmds, wait
}

// acked tells whether wait (nil: not waiting) saw enough replicas.
func (g *Gate) acked(wait *redis.Cmd) bool {
	if wait == nil {
		return true
	}
	n, err := wait.Int64()
	return err == nil && n >= int64(g.waitReplicas)
}

// releaseUnacked releases admissions the replicas did not acknowledge in
// time: they are on the primary only, and a failover to a replica without
// them would let the new primary admit others to their slots while their
// records are in the topic. Their callers learn an unknown outcome, not
// "retry": a replica may have received the admission and not yet the
// release, and be promoted. If the primary lives on (the usual case: a slow
// or lost replica), the release stands and the status shows the user not
// admitted; otherwise reconciliation releases the unpublished admission.
func (g *Gate) releaseUnacked(ctx context.Context, reqs []*admitReq, wait *redis.Cmd) {
	pipe := g.client.Pipeline()
	cmds := make([]*redis.Cmd, len(reqs))
	for i, r := range reqs {
		// EVAL, not EVALSHA: a rare path, and no NOSCRIPT to handle.
		cmds[i] = g.release.Eval(ctx, pipe, []string{usersKey(r.couponID), pendingKey(r.couponID)}, r.userID, r.rank)
	}
	_, _ = pipe.Exec(ctx)
	g.unackedAdmits.Add(int64(len(reqs)))
	n, werr := wait.Int64()
	failed := 0
	for i, r := range reqs {
		r.err = fmt.Errorf("%w (%d of %d replicas, %v)", errNotDurable, n, g.waitReplicas, werr)
		if err := cmds[i].Err(); err != nil {
			r.err, failed = fmt.Errorf("%w; its release failed: %w", r.err, err), failed+1
		}
	}
	g.logger.Warn("the Redis replicas did not acknowledge admissions in time; released them on the primary",
		"admissions", len(reqs), "release_failed", failed, "replicas", n, "want", g.waitReplicas,
		"wait_ms", g.waitMillis, "err", werr)
}

// groupByCoupon splits a batch into one group per (coupon, total), each in
// arrival order: one script call admits a group, so within it ranks follow
// the order the calls were queued in (two pipelines in flight, or two
// groups of a coupon, may run in either order).
func groupByCoupon(batch []*admitReq) [][]*admitReq {
	type key struct{ couponID, total int64 }
	groups := make([][]*admitReq, 0, 1)
	at := make(map[key]int, 1)
	for _, r := range batch {
		k := key{r.couponID, r.total}
		i, ok := at[k]
		if !ok {
			i = len(groups)
			at[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

func noScript(cmds []*redis.Cmd) bool {
	for _, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

// close stops taking calls, runs those queued and waits for all in flight.
func (b *batcher) close() { b.q.Close() }
