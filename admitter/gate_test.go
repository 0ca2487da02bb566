package admitter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/lua"
	"github.com/redis/go-redis/v9"
)

// variants are the two admission paths; every behaviour test runs on both.
var variants = []struct {
	name string
	cfg  Config
}{
	{"unbatched", configWith(func(c *Config) { c.BatchMax = 1 })},
	{"batched", DefaultConfig()},
}

// configWith is DefaultConfig changed by change.
func configWith(change func(*Config)) Config {
	c := DefaultConfig()
	change(&c)
	return c
}

// mustOpenGate returns a gate on the test Redis, closed at cleanup.
func mustOpenGate(tb testing.TB, cfg Config) *Gate {
	tb.Helper()
	client := testenv.MustOpenRedis(tb)
	g, err := NewFromClient(client, cfg, testenv.Logger(tb))
	if err != nil {
		tb.Fatalf("new gate: %v", err)
	}
	tb.Cleanup(func() { _ = g.Close() })
	return g
}

// newCoupon returns a random coupon ID with an initialised gate state
// without a stored total (as states made before the total key: each admit
// call's total counts), deleted at cleanup.
func newCoupon(tb testing.TB, g *Gate) int64 {
	tb.Helper()
	id := testenv.RandomCouponID()
	if err := g.client.HSetNX(context.Background(), usersKey(id), seqField, 0).Err(); err != nil {
		tb.Fatalf("init: %v", err)
	}
	tb.Cleanup(func() { dropCoupon(g.client, id) })
	return id
}

// loseCounter deletes the coupon's rank counter and leaves its admitted
// users: the state counts as lost (as after a failover that kept part of it).
func loseCounter(tb testing.TB, g *Gate, id int64) {
	tb.Helper()
	if err := g.client.HDel(context.Background(), usersKey(id), seqField).Err(); err != nil {
		tb.Fatal(err)
	}
}

func dropCoupon(c redis.UniversalClient, id int64) {
	c.Del(context.Background(), stateKeys(id)...)
}

func TestAdmitOutcomes(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			g := mustOpenGate(t, v.cfg)
			ctx := context.Background()
			id := newCoupon(t, g)
			lost := testenv.RandomCouponID() // never initialised
			steps := []struct {
				name     string
				coupon   int64
				user     int64
				wantRank int64
				wantCode string
			}{
				{"first user gets rank 1", id, 10, 1, ""},
				{"duplicate is already issued with its rank", id, 10, 1, coupon.EALREADY},
				{"second user takes the last slot", id, 20, 2, ""},
				{"third user finds it sold out", id, 30, 0, coupon.ESOLDOUT},
				{"admitted user stays already issued when sold out", id, 20, 2, coupon.EALREADY},
				{"lost gate state is unavailable", lost, 10, 0, coupon.EUNAVAILABLE},
			}
			for _, s := range steps {
				rank, err := g.Admit(ctx, s.coupon, s.user, 2)
				if got := coupon.ErrorCode(err); got != s.wantCode || rank != s.wantRank {
					t.Fatalf("%s: got rank %d, code %q (%v); want rank %d, code %q", s.name, rank, got, err, s.wantRank, s.wantCode)
				}
			}
			_, err := g.Admit(ctx, id, 10, 2)
			if msg := coupon.ErrorMessage(err); !strings.Contains(msg, "User 10") || !strings.Contains(msg, fmt.Sprint(id)) {
				t.Errorf("already-issued message %q should name user and coupon", msg)
			}
			_, err = g.Admit(ctx, lost, 10, 2)
			if msg := coupon.ErrorMessage(err); !strings.Contains(msg, "couponctl rebuild-gate") {
				t.Errorf("lost-state message %q should tell the operator what to run", msg)
			}
			if n, _ := g.client.Exists(ctx, stateKeys(lost)...).Result(); n != 0 {
				t.Errorf("admit on a lost state wrote %d keys", n)
			}
		})
	}
}

func TestReleaseFreesSlotNeverRank(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			g := mustOpenGate(t, v.cfg)
			ctx := context.Background()
			id := newCoupon(t, g)
			mustAdmit(t, g, id, 1, 1, 1)
			if _, err := g.Admit(ctx, id, 2, 1); coupon.ErrorCode(err) != coupon.ESOLDOUT {
				t.Fatalf("second user: %v, want sold out", err)
			}
			// A release naming another rank is a no-op: that admission is not ours.
			if released, err := g.Release(ctx, id, 1, 7); err != nil || released {
				t.Fatalf("release of another rank: %v, %v; want a no-op", released, err)
			}
			if rank, ok, err := g.Rank(ctx, id, 1); err != nil || !ok || rank != 1 {
				t.Fatalf("after a mismatched release: rank %d, %v, %v; want 1, true", rank, ok, err)
			}
			if released, err := g.Release(ctx, id, 1, 1); err != nil || !released {
				t.Fatalf("release: %v, %v; want released", released, err)
			}
			if _, ok, err := g.Rank(ctx, id, 1); err != nil || ok {
				t.Fatalf("released user still admitted: %v, %v", ok, err)
			}
			mustAdmit(t, g, id, 2, 1, 2)                                           // the slot is reusable, the rank is new
			mustAdmit(t, g, id, 1, 2, 3)                                           // and the released user may come back
			if released, err := g.Release(ctx, id, 1, 1); err != nil || released { // a stale release of the old rank
				t.Fatalf("stale release: %v, %v; want a no-op", released, err)
			}
			if rank, ok, _ := g.Rank(ctx, id, 1); !ok || rank != 3 {
				t.Fatalf("stale release removed the newer admission (rank %d, %v)", rank, ok)
			}
		})
	}
}

func mustAdmit(tb testing.TB, g *Gate, id, user, total, wantRank int64) {
	tb.Helper()
	rank, err := g.Admit(context.Background(), id, user, total)
	if err != nil || rank != wantRank {
		tb.Fatalf("admit user %d: rank %d, %v; want rank %d", user, rank, err, wantRank)
	}
}

func TestInitIsIdempotent(t *testing.T) {
	g := mustOpenGate(t, DefaultConfig())
	id := newCoupon(t, g)
	mustAdmit(t, g, id, 1, 10, 1)
	if err := g.Init(context.Background(), id, 1<<40); err != nil {
		t.Fatal(err)
	}
	mustAdmit(t, g, id, 2, 10, 2) // the counter was not reset
}

// TestStoredTotalAndResize: the total Init stores wins over the caller's
// (a gateway with a stale cache cannot admit past a lowered total), and
// Resize refuses, atomically, a total below the users admitted.
func TestStoredTotalAndResize(t *testing.T) {
	g := mustOpenGate(t, DefaultConfig())
	ctx := context.Background()
	id := testenv.RandomCouponID()
	t.Cleanup(func() { dropCoupon(g.client, id) })
	if err := g.Init(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	mustAdmit(t, g, id, 1, 100, 1)
	mustAdmit(t, g, id, 2, 100, 2)
	if _, err := g.Admit(ctx, id, 3, 100); coupon.ErrorCode(err) != coupon.ESOLDOUT {
		t.Fatalf("admit past the stored total with a stale caller total: %v; want sold_out", err)
	}
	if n, err := g.Resize(ctx, id, 1, 2); coupon.ErrorCode(err) != coupon.ECONFLICT || n != 2 {
		t.Fatalf("resize below the admitted: %d, %v; want conflict with 2 admitted", n, err)
	}
	if v, _ := g.client.HGet(ctx, usersKey(id), totalField).Int64(); v != 2 {
		t.Fatalf("a refused resize changed the total to %d", v)
	}
	if _, err := g.Resize(ctx, id, 3, 3); err != nil {
		t.Fatalf("raise: %v", err)
	}
	mustAdmit(t, g, id, 3, 1, 3) // the caller's total 1 does not count
	// A resize of an older revision, applied late, changes nothing.
	if _, err := g.Resize(ctx, id, 50, 2); err != nil {
		t.Fatalf("stale resize: %v", err)
	}
	if v, _ := g.client.HGet(ctx, usersKey(id), totalField).Int64(); v != 3 {
		t.Fatalf("a stale revision set the total to %d; want 3 kept", v)
	}
	if _, err := g.Admit(ctx, id, 4, 100); coupon.ErrorCode(err) != coupon.ESOLDOUT {
		t.Fatalf("admit after the raise used up: %v; want sold_out", err)
	}
	if _, err := g.Resize(ctx, id, 3, 4); err != nil { // equal to the admitted: allowed
		t.Fatalf("resize to the admitted count: %v", err)
	}
	loseCounter(t, g, id)
	if _, err := g.Resize(ctx, id, 10, 5); !errors.Is(err, coupon.ErrGateLost) {
		t.Fatalf("resize on a lost state: %v; want ErrGateLost", err)
	}
}

// TestResizeRacesAdmissions: lowering the total while admissions run never
// leaves more users admitted than the total: each resize either wins (and
// the admissions after it stop at the new total) or is refused because
// more were admitted already.
func TestResizeRacesAdmissions(t *testing.T) {
	g := mustOpenGate(t, DefaultConfig())
	ctx := context.Background()
	for round := range 20 {
		id := testenv.RandomCouponID()
		t.Cleanup(func() { dropCoupon(g.client, id) })
		if err := g.Init(ctx, id, 100); err != nil {
			t.Fatal(err)
		}
		const lowered = 40
		var wg sync.WaitGroup
		for u := int64(1); u <= 100; u++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = g.Admit(ctx, id, u, 100)
			}()
		}
		_, rerr := g.Resize(ctx, id, lowered, 2)
		wg.Wait()
		n, err := g.Admitted(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case rerr == nil && n != lowered:
			t.Fatalf("round %d: resize to %d won, yet %d users are admitted", round, lowered, n)
		case rerr != nil && (coupon.ErrorCode(rerr) != coupon.ECONFLICT || n != 100):
			t.Fatalf("round %d: resize refused with %v and %d admitted; want conflict and all 100", round, rerr, n)
		}
	}
}

// TestWatchChanges: an announcement reaches a watcher on another client at
// once; a change whose message was lost (the counter raised, nothing
// published) is noticed within the poll as "anything may have changed";
// the watcher confirms (current) after its reads of the counter.
func TestWatchChanges(t *testing.T) {
	a := mustOpenGate(t, DefaultConfig())
	b := mustOpenGate(t, DefaultConfig())
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int64, 16)
	var confirmed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WatchChanges(ctx, 50*time.Millisecond, func(id int64) { got <- id }, func() { confirmed.Add(1) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	next := func() int64 {
		t.Helper()
		select {
		case id := <-got:
			return id
		case <-time.After(5 * time.Second):
			t.Fatal("no change seen within 5s")
		}
		return 0
	}
	if id := next(); id != 0 { // subscribed: anything may have changed before
		t.Fatalf("first call %d; want 0 (subscribed)", id)
	}
	id := testenv.RandomCouponID()
	if err := a.Announce(ctx, id); err != nil {
		t.Fatal(err)
	}
	for next() != id { // 0s, or other tests' announcements, may come first
	}
	// A lost message: only the counter moves.
	if err := a.client.Incr(ctx, ChangesVersionKey).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if seen := next(); seen != 0 {
			return fmt.Errorf("got change %d; want 0 for the missed one", seen)
		}
		return nil
	})
	after := confirmed.Load()
	testenv.Eventually(t, 5*time.Second, func() error {
		if confirmed.Load() == after {
			return errors.New("the watcher has not confirmed since")
		}
		return nil
	})
}

func TestPendingAndLostState(t *testing.T) {
	g := mustOpenGate(t, DefaultConfig())
	ctx := context.Background()
	id := newCoupon(t, g)
	mustAdmit(t, g, id, 5, 10, 1)
	if err := g.MarkPending(ctx, id, 5, 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := g.client.HGet(ctx, pendingKey(id), "5").Result(); got != "1" {
		t.Fatalf("pending mark = %q, want rank 1", got)
	}
	if n, err := g.Admitted(ctx, id); err != nil || n != 1 {
		t.Fatalf("Admitted = %d, %v; want 1 (a pending admission keeps its slot)", n, err)
	}
	if released, err := g.Release(ctx, id, 5, 1); err != nil || !released {
		t.Fatalf("release: %v, %v; want released", released, err)
	}
	if n, _ := g.client.HLen(ctx, pendingKey(id)).Result(); n != 0 {
		t.Errorf("release left the pending mark")
	}

	// Losing the counter (e.g. Redis restarted without persistence) turns
	// every read and admission into EUNAVAILABLE, not into wrong answers.
	loseCounter(t, g, id)
	if _, err := g.Admitted(ctx, id); coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Errorf("Admitted on lost state: %v", err)
	}
	if _, _, err := g.Rank(ctx, id, 6); coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Errorf("Rank on lost state: %v", err)
	}
	if _, err := g.Admit(ctx, id, 6, 10); coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Errorf("Admit on lost state: %v", err)
	}
}

func TestScriptCacheLost(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			g := mustOpenGate(t, v.cfg)
			// A variant of the script the server has never seen stands in
			// for a flushed script cache: EVALSHA answers NOSCRIPT.
			g.admit = redis.NewScript(lua.Admit + "\n-- " + testenv.RandomID())
			id := newCoupon(t, g)
			mustAdmit(t, g, id, 1, 10, 1)
			mustAdmit(t, g, id, 2, 10, 2)
		})
	}
}

func TestRedisDown(t *testing.T) {
	testenv.Integration(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	_, err := New(configWith(func(c *Config) { c.Addrs, c.DialTimeout = []string{addr}, time.Second }), testenv.Logger(t))
	if coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Fatalf("New against a closed port: %v, want unavailable", err)
	}

	// A gate whose Redis goes away answers unavailable, promptly.
	opts := testenv.RedisOptions()
	opts.MaxRetries = -1
	client := redis.NewUniversalClient(opts)
	g, err := NewFromClient(client, DefaultConfig(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	id := newCoupon(t, mustOpenGate(t, DefaultConfig()))
	_ = client.Close()
	if _, err := g.Admit(context.Background(), id, 1, 10); coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Fatalf("admit on a closed client: %v, want unavailable", err)
	}
}

func TestBatchedCancelWhileQueued(t *testing.T) {
	g := mustOpenGate(t, configWith(func(c *Config) { c.BatchPipelines = 1 }))
	id := newCoupon(t, g)
	release := g.batch.q.Occupy() // occupy the only pipeline: calls queue up
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := g.Admit(ctx, id, 1, 10)
		errc <- err
	}()
	testenv.Eventually(t, 5*time.Second, func() error {
		if g.batch.q.Queued() != 0 {
			return errors.New("call not yet taken by the batch loop")
		}
		return nil
	})
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled queued admit: %v, want context.Canceled", err)
	}
	release()
	mustAdmit(t, g, id, 2, 10, 1) // the abandoned call never ran: user 2 gets rank 1
	if _, ok, _ := g.Rank(context.Background(), id, 1); ok {
		t.Fatal("abandoned admission was executed")
	}
}

func TestBatchedCloseDrains(t *testing.T) {
	client := testenv.MustOpenRedis(t)
	g, err := NewFromClient(client, DefaultConfig(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	id := newCoupon(t, g)
	const n = 2000
	ranks := make([]int64, n+1)
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for u := 1; u <= n; u++ {
		wg.Go(func() { ranks[u], errs[u] = g.Admit(context.Background(), id, int64(u), n) })
	}
	_ = g.Close() // concurrently with the calls
	wg.Wait()
	closed := 0
	for u := 1; u <= n; u++ {
		rank, ok, err := (&Gate{client: client}).Rank(context.Background(), id, int64(u))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case errors.Is(errs[u], errClosed):
			closed++
			if ok {
				t.Errorf("user %d: told the gate is closed, but admitted with rank %d", u, rank)
			}
		case errs[u] != nil:
			t.Errorf("user %d: %v", u, errs[u])
		case !ok || rank != ranks[u]:
			t.Errorf("user %d: told rank %d, stored %d (%v)", u, ranks[u], rank, ok)
		}
	}
	t.Logf("%d of %d calls came after Close", closed, n)
}

// TestErrorClasses: unavailable tells Redis' own failures (503) from bugs;
// mayHaveRun tells an admit call that failed after it was sent, which may
// have admitted its user (Admit says ErrGateUnknown, the gateway "check the
// status"), from one never sent or refused by the server, which admitted
// nobody (the gateway may say "retry").
func TestErrorClasses(t *testing.T) {
	client := testenv.MustOpenRedis(t)
	// reply returns the error go-redis makes of a real server error reply.
	reply := func(msg string) error {
		return client.Eval(context.Background(), "return redis.error_reply(ARGV[1])", nil, msg).Err()
	}
	tests := []struct {
		name                    string
		err                     error
		unavailable, mayHaveRun bool
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true, false},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, true, false},
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true, true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true, true},
		{"connection closed", io.EOF, true, true},
		{"client closed", redis.ErrClosed, true, false},
		{"pool timeout", redis.ErrPoolTimeout, true, false},
		{"caller deadline", context.DeadlineExceeded, true, true},
		{"queued when the caller gave up", fmt.Errorf("%w: %w", errQueued, context.DeadlineExceeded), true, false},
		{"caller cancelled", context.Canceled, false, true},
		{"replicas did not acknowledge", fmt.Errorf("%w (0 of 1 replicas)", errNotDurable), false, true},
		{"loading the dataset", reply("LOADING Redis is loading the dataset in memory"), true, false},
		{"out of memory", reply("OOM command not allowed when used memory > 'maxmemory'."), true, false},
		{"busy script", reply("BUSY Redis is busy running a script."), true, false},
		{"cluster down", reply("CLUSTERDOWN The cluster is down"), true, false},
		{"read-only replica", reply("READONLY You can't write against a read only replica."), true, false},
		{"script error", reply("ERR user_script:1: something broke"), false, false},
		{"wrong type", reply("WRONGTYPE Operation against a key holding the wrong kind of value"), false, false},
		{"bad reply shape", errors.New("admit script: unexpected reply [1]"), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error to classify")
			}
			if got := unavailable(tt.err); got != tt.unavailable {
				t.Errorf("unavailable(%v) = %v, want %v", tt.err, got, tt.unavailable)
			}
			if got := mayHaveRun(tt.err); got != tt.mayHaveRun {
				t.Errorf("mayHaveRun(%v) = %v, want %v", tt.err, got, tt.mayHaveRun)
			}
		})
	}
}
