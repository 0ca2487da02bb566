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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/lua"
	"github.com/redis/go-redis/v9"
)

var _ coupon.Gate = (*Gate)(nil)

// Config configures the gate's Redis client and its admission batching.
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

	PoolSize     int           // connections per node; 0 = go-redis default (10 per CPU)
	DialTimeout  time.Duration // default 2s
	ReadTimeout  time.Duration // default 1s
	WriteTimeout time.Duration // default 1s

	// BatchMax is how many concurrent Admit calls at most share one
	// pipeline; 0 means DefaultBatchMax, 1 disables batching (one round
	// trip per call). A batch is what queued while the pipelines were busy:
	// a lone call goes out at once, batches grow with load.
	BatchMax int
	// BatchPipelines is how many batch pipelines may be in flight at once;
	// 0 means DefaultBatchPipelines.
	BatchPipelines int
}

// Batching defaults (see BenchmarkAdmit for the figures behind them).
// Two pipelines, not four: in the whole co-located system (couponctl
// bench, 2 cores shared with Redis, Kafka and MariaDB) fewer, fuller
// pipelines (about 36 admissions per Redis read instead of 28) cost the
// gateway 53-56 us of CPU per accepted request instead of 62-69, and the
// closed-model rate went from 12.8-13.5k to 15.4-16.4k req/s (three runs
// each); one pipeline was in between.
const (
	DefaultBatchMax       = 256
	DefaultBatchPipelines = 2
)

// MaxBatch bounds BatchMax: one script call admits at most that many users
// of a coupon, and Lua's unpack of their HMGET and HSET arguments must stay
// under its stack limit (8,000 values).
const MaxBatch = 2048

func (c *Config) setDefaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = time.Second
	}
	if c.BatchMax == 0 {
		c.BatchMax = DefaultBatchMax
	}
	if c.BatchPipelines == 0 {
		c.BatchPipelines = DefaultBatchPipelines
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case len(c.Addrs) == 0:
		return errors.New("redis: at least one address is required")
	case c.MasterName != "" && c.Cluster:
		return errors.New("redis: a Sentinel master name and the cluster client exclude each other")
	case c.PoolSize < 0:
		return errors.New("redis: pool size must not be negative")
	}
	if err := c.validateBatch(); err != nil {
		return err
	}
	for _, a := range c.Addrs {
		if strings.TrimSpace(a) == "" {
			return errors.New("redis: empty address")
		}
	}
	return nil
}

// validateBatch checks the batch settings, the part of Config NewFromClient uses.
func (c *Config) validateBatch() error {
	switch {
	case c.BatchMax < 0 || c.BatchPipelines < 0:
		return errors.New("redis: batch settings must not be negative")
	case c.BatchMax > MaxBatch:
		return fmt.Errorf("redis: batch max must be at most %d, got %d", MaxBatch, c.BatchMax)
	}
	return nil
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
	batch   *batcher // nil: one round trip per Admit
}

// New connects to Redis (checking it answers), loads the scripts and
// returns the gate.
func New(cfg Config, logger *slog.Logger) (*Gate, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
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
// open), loading the scripts. Only cfg's batch settings and timeouts are used.
func NewFromClient(client redis.UniversalClient, cfg Config, logger *slog.Logger) (*Gate, error) {
	if err := cfg.validateBatch(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DialTimeout+cfg.ReadTimeout)
	defer cancel()
	g := &Gate{
		client:  client,
		logger:  logger,
		admit:   redis.NewScript(lua.Admit),
		release: redis.NewScript(lua.Release),
		resize:  redis.NewScript(lua.Resize),
	}
	if err := g.loadScripts(ctx); err != nil {
		return nil, err
	}
	if cfg.BatchMax > 1 {
		g.batch = newBatcher(g, cfg.BatchMax, cfg.BatchPipelines)
	}
	logger.Info("admission gate ready", "batch_max", cfg.BatchMax, "batch_pipelines", cfg.BatchPipelines)
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

// Client returns the underlying Redis client (for readiness checks).
func (g *Gate) Client() redis.UniversalClient { return g.client }

// Init creates the coupon's gate state with its total (SET NX of the total,
// then of seq 0, in one MULTI/EXEC); an existing state is left untouched.
func (g *Gate) Init(ctx context.Context, couponID, total int64) error {
	_, err := g.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, totalKey(couponID), total, 0)
		p.SetNX(ctx, seqKey(couponID), 0, 0)
		return nil
	})
	if err != nil {
		return g.wrap(err, "init gate of coupon %d", couponID)
	}
	return nil
}

// Resize sets the coupon's total in the gate, for revision (the coupon's
// revision in MySQL). It refuses with ECONFLICT, atomically in the script,
// a total below the users admitted; a revision older than the one set
// already changes nothing and is not an error (a later change won). It
// returns how many users are admitted.
func (g *Gate) Resize(ctx context.Context, couponID, total, revision int64) (int64, error) {
	keys := []string{usersKey(couponID), seqKey(couponID), totalKey(couponID), revisionKey(couponID)}
	v, err := g.resize.Run(ctx, g.client, keys, total, revision).Int64Slice()
	if err == nil && len(v) != 2 {
		err = fmt.Errorf("resize script: %d values", len(v))
	}
	if err != nil {
		return 0, g.wrap(err, "resize coupon %d to %d", couponID, total)
	}
	switch code, held := v[0], v[1]; code {
	case lua.ResizeOK, lua.ResizeStale:
		return held, nil
	case lua.ResizeConflict:
		return held, coupon.Errorf(coupon.ECONFLICT,
			"totalQuantity %d is below the %d users already admitted to coupon %d.", total, held, couponID)
	case lua.ResizeLost:
		return 0, lostState(couponID)
	default:
		return 0, fmt.Errorf("resize script: unknown code %d", code)
	}
}

// Admit admits userID to the coupon and returns its new rank. On EALREADY
// the returned rank is the user's existing rank. If ctx ends while the call
// is queued for a batch, nothing is sent and ctx's error is returned; once
// sent, Admit waits for the reply (bounded by the read timeout), so the
// caller always learns an admission that happened.
func (g *Gate) Admit(ctx context.Context, couponID, userID, total int64) (int64, error) {
	var code, rank int64
	var err error
	if g.batch != nil {
		code, rank, err = g.batch.admit(ctx, couponID, userID, total)
	} else {
		var res []admitResult
		if res, err = parseAdmit(g.admit.Run(ctx, g.client, admitKeys(couponID), total, userID), 1); err == nil {
			code, rank = res[0].code, res[0].rank
		}
	}
	if err != nil {
		return 0, g.wrap(err, "admit user %d to coupon %d", userID, couponID)
	}
	return rank, admitError(code, couponID, userID)
}

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
func (g *Gate) Release(ctx context.Context, couponID, userID, rank int64) (bool, error) {
	keys := []string{usersKey(couponID), pendingKey(couponID)}
	n, err := g.release.Run(ctx, g.client, keys, userID, rank).Int64()
	if err != nil {
		return false, g.wrap(err, "release user %d of coupon %d", userID, couponID)
	}
	return n == 1, nil
}

// MarkPending records userID's admission (rank) as having an unknown
// publish outcome; the slot stays taken.
func (g *Gate) MarkPending(ctx context.Context, couponID, userID, rank int64) error {
	if err := g.client.HSet(ctx, pendingKey(couponID), userID, rank).Err(); err != nil {
		return g.wrap(err, "mark user %d of coupon %d pending", userID, couponID)
	}
	return nil
}

// Rank returns userID's rank if admitted. A lost gate state is EUNAVAILABLE.
func (g *Gate) Rank(ctx context.Context, couponID, userID int64) (int64, bool, error) {
	var get *redis.StringCmd
	var exists *redis.IntCmd
	_, err := g.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HGet(ctx, usersKey(couponID), strconv.FormatInt(userID, 10))
		exists = p.Exists(ctx, seqKey(couponID))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, false, g.wrap(err, "rank of user %d in coupon %d", userID, couponID)
	}
	if rank, err := get.Int64(); err == nil {
		return rank, true, nil
	}
	if exists.Val() == 0 {
		return 0, false, lostState(couponID)
	}
	return 0, false, nil
}

// Admitted returns how many users hold a slot. A lost gate state is EUNAVAILABLE.
func (g *Gate) Admitted(ctx context.Context, couponID int64) (int64, error) {
	var n, exists *redis.IntCmd
	_, err := g.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		n = p.HLen(ctx, usersKey(couponID))
		exists = p.Exists(ctx, seqKey(couponID))
		return nil
	})
	if err != nil {
		return 0, g.wrap(err, "admitted count of coupon %d", couponID)
	}
	if exists.Val() == 0 {
		return 0, lostState(couponID)
	}
	return n.Val(), nil
}

// AdmittedMany returns how many users hold a slot of each coupon, in one
// pipeline; a coupon whose gate state is lost is missing from the map.
func (g *Gate) AdmittedMany(ctx context.Context, couponIDs []int64) (map[int64]int64, error) {
	type pair struct{ n, exists *redis.IntCmd }
	cmds := make([]pair, len(couponIDs))
	_, err := g.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range couponIDs {
			cmds[i] = pair{p.HLen(ctx, usersKey(id)), p.Exists(ctx, seqKey(id))}
		}
		return nil
	})
	if err != nil {
		return nil, g.wrap(err, "admitted counts of %d coupons", len(couponIDs))
	}
	out := make(map[int64]int64, len(couponIDs))
	for i, id := range couponIDs {
		if cmds[i].exists.Val() > 0 {
			out[id] = cmds[i].n.Val()
		}
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
// call per coupon of a batch: a loop takes the queued calls once a pipeline
// slot is free, so batches grow with load and a lone call goes out at once.
// (A timed collection window was measured slower: with callers waiting on
// replies, it only adds latency.)
type batcher struct {
	g         *Gate
	max       int
	reqs      chan *admitReq
	slots     chan struct{} // one token per pipeline in flight
	mu        sync.RWMutex  // held (read) while sending to reqs; Close takes it to close reqs
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type admitReq struct {
	couponID, userID, total int64
	claimed                 atomic.Bool // set by whoever decides first: the loop (send) or the caller (abandon)
	code, rank              int64
	err                     error
	done                    chan struct{}
}

func newBatcher(g *Gate, max, pipelines int) *batcher {
	b := &batcher{
		g:     g,
		max:   max,
		reqs:  make(chan *admitReq, 4*max),
		slots: make(chan struct{}, pipelines),
	}
	b.wg.Add(1)
	go b.loop()
	return b
}

var errClosed = &coupon.Error{Code: coupon.EUNAVAILABLE, Message: "The admission gate is shutting down; please retry."}

func (b *batcher) admit(ctx context.Context, couponID, userID, total int64) (int64, int64, error) {
	r := &admitReq{couponID: couponID, userID: userID, total: total, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return 0, 0, errClosed
	}
	select {
	case b.reqs <- r:
		b.mu.RUnlock()
	case <-ctx.Done():
		b.mu.RUnlock()
		return 0, 0, ctx.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.claimed.CompareAndSwap(false, true) { // not sent yet: abandon it
			return 0, 0, ctx.Err()
		}
		<-r.done // sent: the reply tells what happened
	}
	return r.code, r.rank, r.err
}

func (b *batcher) loop() {
	defer b.wg.Done()
	for first := range b.reqs {
		b.slots <- struct{}{} // wait for a free pipeline; calls queue meanwhile
		batch := make([]*admitReq, 1, b.max)
		batch[0] = first
		b.wg.Add(1)
		go b.exec(b.drain(batch))
	}
}

// drain appends the calls queued right now, up to max.
func (b *batcher) drain(batch []*admitReq) []*admitReq {
	for len(batch) < b.max {
		select {
		case r, ok := <-b.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (b *batcher) exec(batch []*admitReq) {
	defer b.wg.Done()
	defer func() { <-b.slots }()
	live := batch[:0]
	for _, r := range batch {
		if r.claimed.CompareAndSwap(false, true) { // else abandoned by its caller
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx := context.Background() // callers' contexts are honoured while queued
	groups := groupByCoupon(live)
	cmds := b.run(ctx, groups)
	if noScript(cmds) {
		// The server lost its script cache (restart, SCRIPT FLUSH): those
		// commands did not run. Load the script and run them again.
		if err := b.g.admit.Load(ctx, b.g.client).Err(); err == nil {
			var retry [][]*admitReq
			var at []int
			for i, c := range cmds {
				if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
					retry, at = append(retry, groups[i]), append(at, i)
				}
			}
			for j, c := range b.run(ctx, retry) {
				cmds[at[j]] = c
			}
		}
	}
	for i, group := range groups {
		res, err := parseAdmit(cmds[i], len(group))
		for j, r := range group {
			if err != nil {
				r.err = err
			} else {
				r.code, r.rank = res[j].code, res[j].rank
			}
			close(r.done)
		}
	}
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

// run sends one EVALSHA per group in one pipeline.
func (b *batcher) run(ctx context.Context, groups [][]*admitReq) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(groups))
	pipe := b.g.client.Pipeline()
	for i, group := range groups {
		args := make([]any, 1, 1+len(group))
		args[0] = group[0].total
		for _, r := range group {
			args = append(args, r.userID)
		}
		cmds[i] = b.g.admit.EvalSha(ctx, pipe, admitKeys(group[0].couponID), args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	return cmds
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
func (b *batcher) close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		close(b.reqs)
		b.mu.Unlock()
		b.wg.Wait()
	})
}
