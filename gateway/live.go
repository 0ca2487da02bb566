package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
)

// LagReader tells how far the sinkers are behind on a coupon's partition
// (package kafka's Lag). Implementations answer from a cache refreshed at
// most about once a second, whatever the number of callers.
type LagReader interface {
	// Coupon returns the partition of the coupon's records and how many
	// records of it the sinkers' group has not committed yet.
	Coupon(ctx context.Context, couponID int64) (partition int, lag int64, err error)
}

// Live-view bounds.
const (
	liveHistory    = 120             // samples kept per coupon (two minutes at one a second)
	liveIdle       = 5 * time.Minute // a coupon nobody watched this long is forgotten
	liveMaxCoupons = 10_000          // coupons watched at once at most
)

// liveView is the answer of GET /v1/coupons/{id}/live.
type liveView struct {
	ID                  int64           `json:"id"`
	Name                string          `json:"name"`
	Strategy            coupon.Strategy `json:"strategy"`
	Supply              int64           `json:"supply"`
	Admitted            int64           `json:"admitted"`
	Issued              int64           `json:"issued"`
	Pending             int64           `json:"pending"`
	Remaining           int64           `json:"remaining"`
	AdmissionsPerSecond float64         `json:"admissionsPerSecond"`
	History             []livePoint     `json:"history"`
	SoldOut             bool            `json:"soldOut"`
	SoldOutAt           *time.Time      `json:"soldOutAt"`
	// SoldOutExact is true once every admitted row is written and SoldOutAt
	// is the last admission's time; before, SoldOutAt is the sample that
	// first saw the drop sold out (within a second of it).
	SoldOutExact   bool       `json:"soldOutExact"`
	OpenedAt       *time.Time `json:"openedAt"`
	SellOutSeconds *float64   `json:"sellOutSeconds"`
	SinkerLag      *liveLag   `json:"sinkerLag"`
	LagError       string     `json:"lagError,omitempty"`
	SampledAt      time.Time  `json:"sampledAt"`
	RefreshSeconds float64    `json:"refreshSeconds"`
}

// livePoint is one sample of the moving chart.
type livePoint struct {
	At       int64   `json:"t"` // Unix milliseconds
	Admitted int64   `json:"admitted"`
	Issued   int64   `json:"issued"`
	Rate     float64 `json:"rate"` // admissions per second since the previous sample
}

type liveLag struct {
	Partition int   `json:"partition"`
	Records   int64 `json:"records"`
}

// liveEntry is one watched coupon: its last answer, shared by every
// viewer until it is a refresh period old.
type liveEntry struct {
	last    atomic.Int64 // last refresh, Unix nanoseconds (read without mu by the sweep)
	mu      sync.Mutex
	at      time.Time // last refresh; zero before the first
	body    []byte    // the JSON answer of the last refresh
	err     error     // or its error
	history []livePoint
	soldOut *time.Time // first sample that saw it sold out
	final   *liveView  // sold out and fully written: never changes again
}

// liveViews computes each watched coupon's live view at most once per
// refresh period, however many viewers poll: the issue path is not
// touched (gate and MySQL are read here, never counted there).
type liveViews struct {
	s      *Server
	period time.Duration
	mu     sync.Mutex
	byID   map[int64]*liveEntry
}

func newLiveViews(s *Server, period time.Duration) *liveViews {
	return &liveViews{s: s, period: period, byID: map[int64]*liveEntry{}}
}

// entry returns the coupon's entry, forgetting coupons nobody watched for
// liveIdle.
func (l *liveViews) entry(id int64) (*liveEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byID[id]; ok {
		return e, nil
	}
	idleSince := time.Now().Add(-liveIdle).UnixNano()
	for cid, e := range l.byID {
		if last := e.last.Load(); last != 0 && last < idleSince {
			delete(l.byID, cid)
			l.s.metrics.forgetDrop(cid)
		}
	}
	if len(l.byID) >= liveMaxCoupons {
		return nil, coupon.Errorf(coupon.EUNAVAILABLE, "%d coupons are watched live already; retry later.", len(l.byID))
	}
	e := &liveEntry{}
	l.byID[id] = e
	return e, nil
}

// get returns the coupon's live answer, refreshing it when it is a period
// old (one refresh at a time; viewers meanwhile wait for it).
func (l *liveViews) get(cp *coupon.Coupon) ([]byte, error) {
	e, err := l.entry(cp.ID)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && time.Since(e.at) < l.period {
		return e.body, e.err
	}
	e.body, e.err = l.refresh(cp, e)
	e.at = time.Now()
	e.last.Store(e.at.UnixNano())
	return e.body, e.err
}

// refresh reads the gate, MySQL and the lag once and encodes the answer.
func (l *liveViews) refresh(cached *coupon.Coupon, e *liveEntry) ([]byte, error) {
	if e.final != nil {
		v := *e.final
		v.SampledAt = time.Now().UTC()
		l.addLag(&v)
		l.s.metrics.drop(&v)
		return l.encode(&v)
	}
	s := l.s
	ctx, cancel := s.storeCtx()
	defer cancel()
	now := time.Now().UTC()
	cp, err := s.store.FindCoupon(ctx, cached.ID) // fresh issued_quantity, not the cached one
	if err != nil {
		return nil, unavailable(err, "The issued count of coupon %d could not be read; retry later.", cached.ID)
	}
	admitted := cp.IssuedQuantity
	if cp.Strategy == coupon.StrategyAsync && s.gate != nil {
		if admitted, err = s.gate.Admitted(ctx, cp.ID); err != nil {
			return nil, unavailable(err, "The admitted count of coupon %d could not be read; retry later.", cp.ID)
		}
	}
	v := liveView{
		ID: cp.ID, Name: cp.Name, Strategy: cp.Strategy, Supply: cp.TotalQuantity,
		Admitted: admitted, Issued: cp.IssuedQuantity, Pending: max(0, admitted-cp.IssuedQuantity),
		Remaining: max(0, cp.TotalQuantity-admitted), OpenedAt: cp.IssueStartsAt,
		SampledAt: now, RefreshSeconds: l.period.Seconds(),
	}
	pt := livePoint{At: now.UnixMilli(), Admitted: admitted, Issued: cp.IssuedQuantity}
	if n := len(e.history); n > 0 && pt.At-e.history[n-1].At > 10*l.period.Milliseconds() {
		e.history = e.history[:0] // nobody watched for a while: a fresh chart, not a line across the gap
	}
	if n := len(e.history); n > 0 {
		prev := e.history[n-1]
		if dt := float64(pt.At-prev.At) / 1000; dt > 0 {
			pt.Rate = max(0, float64(admitted-prev.Admitted)/dt)
		}
	}
	if len(e.history) == liveHistory {
		copy(e.history, e.history[1:])
		e.history = e.history[:liveHistory-1]
	}
	e.history = append(e.history, pt)
	v.History = append([]livePoint(nil), e.history...)
	v.AdmissionsPerSecond = pt.Rate

	if v.Remaining > 0 {
		e.soldOut = nil // slots came back (reconciliation released some)
	} else {
		v.SoldOut = true
		if e.soldOut == nil {
			e.soldOut = &now
		}
		v.SoldOutAt = e.soldOut
		if cp.IssuedQuantity >= cp.TotalQuantity {
			// Every row is written: the last admission is the sold-out
			// moment. Read once; the view stays final from now on.
			first, last, ok, err := s.store.AdmissionSpan(ctx, cp.ID)
			if err != nil {
				return nil, unavailable(err, "The admissions of coupon %d could not be read; retry later.", cp.ID)
			}
			if ok {
				last = last.UTC()
				v.SoldOutAt, v.SoldOutExact = &last, true
				if v.OpenedAt == nil {
					first = first.UTC()
					v.OpenedAt = &first
				}
				v.AdmissionsPerSecond = 0
			}
		}
		if v.OpenedAt != nil {
			secs := max(0, v.SoldOutAt.Sub(*v.OpenedAt).Seconds())
			v.SellOutSeconds = &secs
		}
		if v.SoldOutExact {
			final := v
			e.final = &final
		}
	}
	l.addLag(&v)
	s.metrics.drop(&v)
	return l.encode(&v)
}

// addLag fills the sinkers' lag on the coupon's partition (async coupons).
func (l *liveViews) addLag(v *liveView) {
	v.SinkerLag, v.LagError = nil, ""
	if v.Strategy != coupon.StrategyAsync || l.s.lag == nil {
		return
	}
	ctx, cancel := l.s.storeCtx()
	defer cancel()
	p, n, err := l.s.lag.Coupon(ctx, v.ID)
	if err != nil {
		// Debug only: it repeats every second per watched coupon, and
		// /readyz reports Kafka already.
		v.LagError = "The sinkers' lag could not be read."
		l.s.logger.Debug("live view: sinker lag", "couponId", v.ID, "err", err)
		return
	}
	v.SinkerLag = &liveLag{Partition: p, Records: n}
}

func (l *liveViews) encode(v *liveView) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode live view of coupon %d: %w", v.ID, err)
	}
	return b, nil
}

// liveCoupon: GET /v1/coupons/{couponId}/live.
func (s *Server) liveCoupon(c *fiber.Ctx) error {
	ctx, cancel := s.storeCtx()
	defer cancel()
	cp, err := s.pathCoupon(ctx, c)
	if err != nil {
		return err
	}
	body, err := s.live.get(cp)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(body)
}
