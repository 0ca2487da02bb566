// Package droptest drives issue requests through one or more gateways over
// HTTP while a test breaks things, and checks afterwards, from MySQL and the
// gate, that every guarantee held: the shared load and check of the fault
// tests (broker stop, node kills, several gateways and sinkers).
package droptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
	kafkago "github.com/segmentio/kafka-go"
)

// Outcome is what the client learnt of one request.
type Outcome int

const (
	// Accepted: 202 with a rank; the user must get exactly that row.
	Accepted Outcome = iota
	// Retry: 503 saying the request certainly failed ("please retry"):
	// no row, and no slot held for the user.
	Retry
	// Unknown: 503 saying the outcome is unknown ("check … before
	// retrying"), or the connection broke after the request was sent (a
	// gateway died): a row may or may not come.
	Unknown
	// Refused: the gateway's port refused the connection (it is down):
	// the request never reached it.
	Refused
	// SoldOut: 410.
	SoldOut
	outcomes
)

func (o Outcome) String() string {
	return [...]string{"accepted", "retry", "unknown", "refused", "sold out"}[o]
}

// Config is one load.
type Config struct {
	Client   *http.Client
	Bases    []string // gateway base URLs; each worker's requests go round-robin over them
	CouponID int64
	Workers  int           // default 16
	Within   time.Duration // the load stops after this; default 3m
	// UntilSoldOut stops every worker at the first 410.
	UntilSoldOut bool
	// GatewaysMayDie counts a connection broken mid-request as Unknown; by
	// default it is an odd answer (the test fails).
	GatewaysMayDie bool
	// StopWhenRefused stops a worker at its first refused connection (a
	// gateway that shut down), instead of going on with the next request.
	StopWhenRefused bool
}

// Load is a running load: workers issuing the coupon to fresh users.
type Load struct {
	cfg     Config
	mu      sync.Mutex
	users   map[int64]Outcome
	ranks   map[int64]int64
	counts  [outcomes]int
	odd     []string
	stop    atomic.Bool
	soldOut atomic.Bool
	wg      sync.WaitGroup
}

// Start starts the workers.
func Start(cfg Config) *Load {
	if cfg.Workers == 0 {
		cfg.Workers = 16
	}
	if cfg.Within == 0 {
		cfg.Within = 3 * time.Minute
	}
	l := &Load{cfg: cfg, users: map[int64]Outcome{}, ranks: map[int64]int64{}}
	var next atomic.Int64
	next.Store(testenv.RandomCouponID())
	deadline := time.Now().Add(cfg.Within)
	for w := range cfg.Workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; !l.stop.Load() && time.Now().Before(deadline); i++ {
				base := cfg.Bases[i%len(cfg.Bases)]
				u := next.Add(1)
				o, rank, odd := l.issue(base, u)
				l.record(u, o, rank, odd)
				if o == SoldOut && cfg.UntilSoldOut {
					l.soldOut.Store(true)
					l.stop.Store(true)
				}
				if o == Refused && cfg.StopWhenRefused {
					return
				}
			}
		}()
	}
	return l
}

// issue sends one issue request and classifies its answer.
func (l *Load) issue(base string, user int64) (Outcome, int64, string) {
	resp, err := l.cfg.Client.Post(fmt.Sprintf("%s/v1/coupons/%d/issues", base, l.cfg.CouponID), "application/json",
		strings.NewReader(fmt.Sprintf(`{"userId":%d}`, user)))
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused, 0, ""
	case err != nil && l.cfg.GatewaysMayDie:
		return Unknown, 0, ""
	case err != nil:
		return 0, 0, fmt.Sprintf("user %d via %s: %v", user, base, err)
	}
	var body struct {
		Rank    int64  `json:"rank"`
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	derr := json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	switch {
	case derr != nil && l.cfg.GatewaysMayDie:
		return Unknown, 0, "" // the gateway died while answering
	case resp.StatusCode == http.StatusAccepted && derr == nil && body.Rank > 0:
		return Accepted, body.Rank, ""
	case resp.StatusCode == http.StatusGone && body.Error == string(coupon.ESOLDOUT):
		return SoldOut, 0, ""
	case resp.StatusCode == http.StatusServiceUnavailable && body.Error == string(coupon.EUNAVAILABLE):
		if UnknownMessage(body.Message) {
			return Unknown, 0, ""
		}
		return Retry, 0, ""
	}
	return 0, 0, fmt.Sprintf("user %d via %s: %d %s %q (%v)", user, base, resp.StatusCode, body.Error, body.Message, derr)
}

// UnknownMessage tells a 503 whose outcome is unknown (the client must check
// the status before retrying) from a certain failure ("please retry").
func UnknownMessage(msg string) bool {
	return strings.Contains(msg, "outcome of the request is unknown") || strings.Contains(msg, "before retrying")
}

func (l *Load) record(user int64, o Outcome, rank int64, odd string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if odd != "" {
		l.odd = append(l.odd, odd)
		return
	}
	l.users[user] = o
	l.counts[o]++
	if o == Accepted {
		l.ranks[user] = rank
	}
}

// Count returns how many requests had outcome o so far.
func (l *Load) Count(o Outcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[o]
}

// AtLeast is a condition for testenv.Eventually: n requests with outcome o.
func (l *Load) AtLeast(o Outcome, n int) func() error {
	return func() error {
		if got := l.Count(o); got < n {
			return fmt.Errorf("%d %s so far, want %d", got, o, n)
		}
		return nil
	}
}

// Stop asks the workers to stop after their current request.
func (l *Load) Stop() { l.stop.Store(true) }

// Result is what a load saw.
type Result struct {
	Users   map[int64]Outcome
	Ranks   map[int64]int64 // of the accepted users
	Counts  [outcomes]int
	SoldOut bool // a 410 ended the load (UntilSoldOut)
}

// Wait waits for the workers, fails tb on odd answers and returns the result.
func (l *Load) Wait(tb testing.TB) *Result {
	tb.Helper()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.odd) > 0 {
		tb.Fatalf("%d odd answers, first: %s", len(l.odd), l.odd[0])
	}
	return &Result{Users: l.users, Ranks: l.ranks, Counts: l.counts, SoldOut: l.soldOut.Load()}
}

// Of returns the users with outcome o.
func (r *Result) Of(o Outcome) []int64 {
	var out []int64
	for u, got := range r.Users {
		if got == o {
			out = append(out, u)
		}
	}
	return out
}

// String is the counts, for logs.
func (r *Result) String() string {
	parts := make([]string, 0, outcomes)
	for o := range outcomes {
		parts = append(parts, fmt.Sprintf("%s %d", o, r.Counts[o]))
	}
	return strings.Join(parts, ", ")
}

// RankLookup is the part of coupon.Gate Check uses.
type RankLookup interface {
	Rank(ctx context.Context, couponID, userID int64) (rank int64, ok bool, err error)
}

// Checked is what Check found.
type Checked struct {
	Rows           int // issued rows
	FromUnknown    int // rows of users answered Unknown
	RetryNotInGate int // Retry users checked free in the gate
}

// Check waits (within) until every accepted user has a row, then checks
// MySQL: the rows are the 202s, each with its rank, plus some of the unknown
// outcomes, and nothing else; no more rows than supply; one row per
// (coupon, user); ranks distinct; issued_quantity counts the rows. With
// gate, it checks that no user answered Retry holds a slot: a "retry" did
// not burn one.
func Check(tb testing.TB, db *mysql.DB, gate RankLookup, couponID, supply int64, r *Result, within time.Duration) Checked {
	tb.Helper()
	ctx := context.Background()
	var rows map[int64]int64
	testenv.Eventually(tb, within, func() error {
		var err error
		if rows, err = db.IssuedRanks(ctx, couponID); err != nil {
			return err
		}
		missing := 0
		for u := range r.Ranks {
			if _, ok := rows[u]; !ok {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d rows; %d of the %d users answered 202 have none yet", len(rows), missing, len(r.Ranks))
		}
		return nil
	})
	var c Checked
	c.Rows = len(rows)
	ranks := map[int64]int64{}
	for u, rank := range rows {
		switch o, asked := r.Users[u]; {
		case !asked:
			tb.Errorf("user %d has a row (rank %d) but was never asked for", u, rank)
		case o == Accepted && r.Ranks[u] != rank:
			tb.Errorf("user %d: row with rank %d, answered 202 with rank %d", u, rank, r.Ranks[u])
		case o == Unknown:
			c.FromUnknown++
		case o != Accepted:
			tb.Errorf("user %d has a row (rank %d) but was answered %s", u, rank, o)
		}
		if other, dup := ranks[rank]; dup {
			tb.Errorf("rank %d held by users %d and %d", rank, other, u)
		}
		ranks[rank] = u
	}
	if int64(len(rows)) > supply {
		tb.Errorf("%d rows for a supply of %d", len(rows), supply)
	}
	a, err := db.Audit(ctx, couponID)
	if err != nil {
		tb.Fatalf("audit coupon %d: %v", couponID, err)
	}
	if a.DupGroups != 0 || a.RepeatedRanks != 0 || a.Rows != int64(len(rows)) || a.IssuedQuantity != a.Rows {
		tb.Errorf("MySQL: %d rows, %d users with two, %d ranks repeated, issued_quantity %d; want %d rows, none twice, counted",
			a.Rows, a.DupGroups, a.RepeatedRanks, a.IssuedQuantity, len(rows))
	}
	if gate != nil {
		for _, u := range r.Of(Retry) {
			rank, held, err := gate.Rank(ctx, couponID, u)
			if err != nil {
				tb.Fatalf("gate rank of user %d: %v", u, err)
			}
			if held {
				tb.Errorf("user %d was answered 503 retry but holds rank %d in the gate (a burnt slot)", u, rank)
			}
			c.RetryNotInGate++
		}
	}
	return c
}

// LeaderOf returns the stack node name (kafka-<id>) of the broker leading
// the topic's partition.
func LeaderOf(tb testing.TB, brokers []string, topic string, partition int) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 {
		tb.Fatalf("metadata of %s: %v", topic, err)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.ID == partition {
			return stack.Kafka + "-" + strconv.Itoa(p.Leader.ID)
		}
	}
	tb.Fatalf("partition %d of %s not in the metadata", partition, topic)
	return ""
}
