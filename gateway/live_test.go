package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/kafka"
)

// countingGate counts the reads of the admitted count.
type countingGate struct {
	coupon.Gate
	admitted atomic.Int64
}

func (g *countingGate) Admitted(ctx context.Context, couponID int64) (int64, error) {
	g.admitted.Add(1)
	return g.Gate.Admitted(ctx, couponID)
}

func (h *harness) live(id int64) response {
	h.t.Helper()
	r := h.do("GET", fmt.Sprintf("/v1/coupons/%d/live", id), nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("live view of coupon %d: %d %s", id, r.status, r.body)
	}
	return r
}

// TestLiveView: the live view counts admissions (gate), issued rows
// (MySQL), pending and remaining, the sinkers' lag on the coupon's
// partition, and once sold out and fully written the exact sold-out moment
// (the last admission) and the time it took.
func TestLiveView(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{cfg: func(c *gateway.Config) { c.LiveRefresh = 50 * time.Millisecond }})
	const supply = 5
	id := h.createCoupon(map[string]any{"name": "live <b>drop</b>", "totalQuantity": supply})

	r := h.live(id)
	if r.int("supply") != supply || r.int("admitted") != 0 || r.int("remaining") != supply || r.json["soldOut"] != false {
		t.Fatalf("fresh coupon: %s", r.body)
	}
	if r.json["name"] != "live <b>drop</b>" {
		t.Errorf("name = %v, want the raw name (the page escapes it)", r.json["name"])
	}

	users := testenv.RandomCouponID()
	for u := range int64(supply) {
		if got := h.issue(id, users+u); got.status != http.StatusAccepted {
			t.Fatalf("issue to user %d: %d %s", users+u, got.status, got.body)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		r = h.live(id)
		if r.int("admitted") != supply || r.int("remaining") != 0 || r.json["soldOut"] != true || r.int("pending") != supply {
			return fmt.Errorf("after %d admissions: %s", supply, r.body)
		}
		// No sinker in this test: its group's lag is every record.
		lag, _ := r.json["sinkerLag"].(map[string]any)
		if lag == nil || lag["partition"] != float64(kafka.PartitionOf(id, 3)) || lag["records"] != float64(supply) {
			return fmt.Errorf("sinkerLag %v, want %d records on partition %d", r.json["sinkerLag"], supply, kafka.PartitionOf(id, 3))
		}
		return nil
	})
	if r.json["soldOutAt"] == nil || r.json["soldOutExact"] != false || r.json["sellOutSeconds"] != nil {
		t.Errorf("sold out, rows not written: want an approximate soldOutAt and no sell-out time: %s", r.body)
	}
	if h.issue(id, users+supply).status != http.StatusGone {
		t.Fatalf("issue past the supply was not 410")
	}
	// The sinker's part, by hand: the rows written, as the sinker would.
	rows := make([]coupon.Issue, supply)
	base := time.Now().UTC().Add(-3 * time.Second).Truncate(time.Microsecond)
	for i := range rows {
		rows[i] = coupon.Issue{CouponID: id, UserID: users + int64(i), Rank: int64(i + 1),
			AdmittedAt: base.Add(time.Duration(i) * 500 * time.Millisecond), Partition: 0, Offset: int64(i)}
	}
	if _, err := h.db.InsertIssues(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		r = h.live(id)
		if r.int("issued") != supply || r.int("pending") != 0 || r.json["soldOutExact"] != true {
			return fmt.Errorf("after the rows: %s", r.body)
		}
		return nil
	})
	last := rows[supply-1].AdmittedAt
	if got, _ := time.Parse(time.RFC3339Nano, r.json["soldOutAt"].(string)); !got.Equal(last) {
		t.Errorf("soldOutAt %v, want the last admission %v", r.json["soldOutAt"], last)
	}
	if got, _ := r.json["sellOutSeconds"].(float64); got != 2 {
		t.Errorf("sellOutSeconds %v, want 2 (first admission to last)", r.json["sellOutSeconds"])
	}

	// The watched coupon is on /metrics for the dashboard's drop row, and
	// the readiness checks are too once /readyz ran.
	h.do("GET", "/readyz", nil)
	m := string(h.do("GET", "/metrics", nil).body)
	for _, want := range []string{
		fmt.Sprintf(`coupon_gateway_drop_supply{coupon="%d"} %d`, id, supply),
		fmt.Sprintf(`coupon_gateway_drop_admitted{coupon="%d"} %d`, id, supply),
		fmt.Sprintf(`coupon_gateway_drop_issued{coupon="%d"} %d`, id, supply),
		`coupon_gateway_ready_check{check="redis"} 1`, `coupon_gateway_ready_check{check="mysql"} 1`,
		"coupon_gateway_gate_errors_total 0",
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestLiveViewWithoutLag: a gateway without a lag reader answers null.
func TestLiveViewWithoutLag(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{deps: func(d *gateway.Deps) { d.Lag = nil }})
	id := h.createCoupon(map[string]any{"name": "no lag reader", "totalQuantity": 3})
	if r := h.live(id); r.json["sinkerLag"] != nil {
		t.Errorf("sinkerLag %v without a lag reader, want null", r.json["sinkerLag"])
	}
}

// TestLiveViewShared: however many viewers poll, a coupon's view is
// computed at most once per refresh period (the gate is read that often,
// not once per viewer).
func TestLiveViewShared(t *testing.T) {
	const period = 200 * time.Millisecond
	var cg *countingGate
	h := mustStartGateway(t, harnessOpts{
		cfg:  func(c *gateway.Config) { c.LiveRefresh = period },
		deps: func(d *gateway.Deps) { cg = &countingGate{Gate: d.Gate}; d.Gate = cg },
	})
	id := h.createCoupon(map[string]any{"name": "shared", "totalQuantity": 100})
	var polls atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 5*period {
				if r, err := h.try("GET", fmt.Sprintf("/v1/coupons/%d/live", id), nil); err != nil || r.status != 200 {
					t.Errorf("poll: %v %d", err, r.status)
					return
				}
				polls.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	reads := cg.admitted.Load()
	most := int64(elapsed/period) + 1
	t.Logf("%d polls by 50 viewers in %s: %d gate reads (at most %d allowed)", polls.Load(), elapsed.Round(time.Millisecond), reads, most)
	if polls.Load() < 100 {
		t.Fatalf("only %d polls: the viewers did not poll", polls.Load())
	}
	if reads < 2 || reads > most {
		t.Errorf("%d gate reads for %d polls in %s, want 2..%d (one per %s)", reads, polls.Load(), elapsed, most, period)
	}
}

// TestDropPages: the pages are embedded HTML served with a strict content
// policy; bad IDs and unknown assets are JSON errors.
func TestDropPages(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	get := func(path string) response { return h.do("GET", path, nil) }
	for _, path := range []string{"/drops", "/drops/42", "/drops/assets/drop.js", "/drops/assets/drop.css", "/drops/assets/index.js"} {
		resp := get(path)
		if resp.status != 200 {
			t.Errorf("GET %s: %d", path, resp.status)
		}
		if csp := resp.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	if ct := get("/drops/42").header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("/drops/42 Content-Type %q", ct)
	}
	for path, want := range map[string]int{
		"/drops/abc": 400, "/drops/0": 400, "/drops/assets/nope.js": 404, "/drops/assets/drop.html": 404,
		"/drops/assets/..%2fpages.go": 404, "/v1/coupons/abc/live": 400,
		fmt.Sprintf("/v1/coupons/%d/live", testenv.RandomCouponID()): 404,
	} {
		r := h.do("GET", path, nil)
		if r.status != want || r.code() == "" {
			t.Errorf("GET %s: %d %s, want %d and a JSON error", path, r.status, r.body, want)
		}
	}
}

// downGate's admissions fail as when Redis does not answer.
type downGate struct{ coupon.Gate }

func (downGate) Admit(context.Context, int64, int64, int64) (int64, error) {
	return 0, errors.New("dial tcp: connection refused")
}

// TestGateErrorsCounted: an admission the gate cannot decide is a 503 and
// one more coupon_gateway_gate_errors_total (the CouponGateUnavailable
// alert's series).
func TestGateErrorsCounted(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{deps: func(d *gateway.Deps) { d.Gate = downGate{d.Gate} }})
	id := h.createCoupon(map[string]any{"name": "gate down", "totalQuantity": 3})
	for u := range int64(2) {
		if r := h.issue(id, testenv.RandomCouponID()+u); r.status != http.StatusServiceUnavailable {
			t.Fatalf("issue with the gate down: %d %s, want 503", r.status, r.body)
		}
	}
	if m := string(h.do("GET", "/metrics", nil).body); !strings.Contains(m, "coupon_gateway_gate_errors_total 2\n") {
		t.Error("/metrics does not count the 2 gate errors")
	}
}
