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
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/baseline"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
)

var adminAuth = []string{"Authorization", "Bearer " + testToken}

func (h *harness) admin(method, path string, body any) response {
	h.t.Helper()
	return h.do(method, path, body, adminAuth...)
}

func couponPath(id int64) string { return fmt.Sprintf("/v1/coupons/%d", id) }

// withDBLock enables the db-lock baseline on a harness.
func withDBLock(t *testing.T) func(*gateway.Deps) {
	return func(d *gateway.Deps) {
		d.Issuers = map[coupon.Strategy]coupon.Issuer{
			coupon.StrategyDBLock: baseline.NewDBLock(d.Store.(*mysql.DB), baseline.DefaultDBLockConfig(), testenv.Logger(t)),
		}
	}
}

func TestListCouponsContract(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	open := h.createCoupon(map[string]any{"name": "list open", "totalQuantity": 5})
	soldOut := h.createCoupon(map[string]any{"name": "list sold out", "totalQuantity": 1})
	upcoming := h.createCoupon(map[string]any{"name": "list upcoming", "totalQuantity": 1, "issueStartsAt": time.Now().Add(time.Hour).Format(time.RFC3339)})
	if r := h.issue(soldOut, 1); r.status != http.StatusAccepted {
		t.Fatalf("issue: %d %s", r.status, r.body)
	}
	// A cursor is the last ID of a page: the page starting at open is the
	// one after open-1, or the first page in a fresh database (no cursor 0).
	from := ""
	if open > 1 {
		from = fmt.Sprintf("&cursor=%d", open-1)
	}

	for _, tt := range []struct {
		name   string
		query  string
		header []string
		want   want
	}{
		{"no token", "", nil, want{401, coupon.EUNAUTHORIZED, "admin token"}},
		{"zero limit", "?limit=0", adminAuth, want{400, coupon.EINVALID, "limit must be an integer from 1 to 100"}},
		{"limit too big", "?limit=101", adminAuth, want{400, coupon.EINVALID, "limit must be an integer from 1 to 100"}},
		{"non-numeric limit", "?limit=all", adminAuth, want{400, coupon.EINVALID, "limit must be an integer"}},
		{"bad cursor", "?cursor=abc", adminAuth, want{400, coupon.EINVALID, "cursor must be the nextCursor of a previous page"}},
		{"unknown state", "?state=closed", adminAuth, want{400, coupon.EINVALID, "state must be one of upcoming, open, ended, sold_out"}},
		{"unknown order", "?order=newest", adminAuth, want{400, coupon.EINVALID, `order must be asc (oldest first) or desc (newest first) (got "newest")`}},
		{"order in capitals", "?order=DESC", adminAuth, want{400, coupon.EINVALID, `order must be asc (oldest first) or desc (newest first) (got "DESC")`}},
		{"order as a sort key", "?order=-id", adminAuth, want{400, coupon.EINVALID, "order must be asc (oldest first) or desc (newest first)"}},
		{"long order", "?order=" + strings.Repeat("d", 2000), adminAuth, want{400, coupon.EINVALID, "order must be asc"}},
		{"bad order before state", "?order=up&state=closed", adminAuth, want{400, coupon.EINVALID, "order must be asc"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("GET", "/v1/coupons"+tt.query, nil, tt.header...)
			tt.want.check(t, r)
			if len(r.message()) > 200 {
				t.Fatalf("the message echoes the input whole: %d bytes", len(r.message()))
			}
		})
	}

	list := func(query string) (ids []int64, states map[int64]string, next any) {
		t.Helper()
		r := h.admin("GET", "/v1/coupons?"+query, nil)
		if r.status != http.StatusOK {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		states = map[int64]string{}
		for _, c := range r.json["coupons"].([]any) {
			m := c.(map[string]any)
			id := int64(m["id"].(float64))
			ids = append(ids, id)
			states[id] = m["state"].(string)
		}
		return ids, states, r.json["nextCursor"]
	}
	t.Run("pages", func(t *testing.T) {
		ids, states, next := list("limit=1" + from)
		if len(ids) != 1 || ids[0] != open || states[open] != "open" || next != fmt.Sprint(open) {
			t.Fatalf("first page %v %v, next %v", ids, states, next)
		}
		ids, _, _ = list("limit=1&cursor=" + next.(string))
		if len(ids) != 1 || ids[0] <= open {
			t.Fatalf("second page %v; want the coupon after %d", ids, open)
		}
		ids, _, next = list(fmt.Sprintf("cursor=%d", int64(1)<<62))
		if len(ids) != 0 || next != nil {
			t.Fatalf("past the last coupon: %v, next %v; want none and a null cursor", ids, next)
		}
	})
	t.Run("newest first", func(t *testing.T) {
		// Past the newest of ours (coupons other tests create meanwhile
		// come after it): upcoming, soldOut, open, one page each, the
		// cursor of each the ID it ends with.
		before := fmt.Sprintf("&cursor=%d", upcoming+1)
		ids, _, next := list("order=desc&limit=1" + before)
		if len(ids) != 1 || ids[0] != upcoming || next != fmt.Sprint(upcoming) {
			t.Fatalf("first page %v, next %v; want [%d] and cursor %d", ids, next, upcoming, upcoming)
		}
		ids, _, next = list("order=desc&limit=1&cursor=" + next.(string))
		if len(ids) != 1 || ids[0] >= upcoming || next != fmt.Sprint(ids[0]) {
			t.Fatalf("second page %v, next %v; want one coupon before %d", ids, next, upcoming)
		}
		ids, _, _ = list("order=desc&limit=100" + before)
		ours := []int64{}
		for i, id := range ids {
			if i > 0 && id >= ids[i-1] {
				t.Fatalf("order=desc listed %v, not newest first", ids)
			}
			if id == open || id == soldOut || id == upcoming {
				ours = append(ours, id)
			}
		}
		if fmt.Sprint(ours) != fmt.Sprint([]int64{upcoming, soldOut, open}) {
			t.Fatalf("order=desc listed ours as %v; want %v", ours, []int64{upcoming, soldOut, open})
		}
		// No cursor: from the newest coupon of all; the state filter
		// keeps the order; past the oldest coupon, nothing.
		ids, _, _ = list("order=desc&limit=1")
		if len(ids) != 1 || ids[0] < upcoming {
			t.Fatalf("first newest-first page %v; want a coupon from %d on", ids, upcoming)
		}
		ids, states, _ := list(fmt.Sprintf("order=desc&state=open&limit=1&cursor=%d", open+1))
		if len(ids) != 1 || ids[0] != open || states[open] != "open" {
			t.Fatalf("order=desc&state=open past %d listed %v; want [%d]", open+1, ids, open)
		}
		ids, _, next = list("order=desc&cursor=1")
		if len(ids) != 0 || next != nil {
			t.Fatalf("before the first coupon: %v, next %v; want none and a null cursor", ids, next)
		}
		// asc is the default, spelt out.
		ids, _, _ = list("order=asc&limit=1" + from)
		if len(ids) != 1 || ids[0] != open {
			t.Fatalf("order=asc first page %v; want [%d]", ids, open)
		}
	})
	t.Run("state filter", func(t *testing.T) {
		// soldOut holds its one user in the gate (no row yet): sold out all the same.
		for state, want := range map[string]int64{"sold_out": soldOut, "upcoming": upcoming, "open": open} {
			ids, states, _ := list("limit=100&state=" + state + from)
			found := false
			for _, id := range ids {
				found = found || id == want
				if states[id] != state {
					t.Errorf("state=%s listed coupon %d in state %s", state, id, states[id])
				}
			}
			if !found {
				t.Errorf("state=%s did not list coupon %d (got %v)", state, want, ids)
			}
		}
	})
}

func TestPatchCouponContract(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{deps: withDBLock(t)})
	id := h.createCoupon(map[string]any{"name": "patch", "totalQuantity": 5})
	for u := int64(1); u <= 3; u++ {
		if r := h.issue(id, u); r.status != http.StatusAccepted {
			t.Fatalf("issue: %d %s", r.status, r.body)
		}
	}
	path := couponPath(id)
	for _, tt := range []struct {
		name   string
		path   string
		body   string
		header []string
		want   want
	}{
		{"no token", path, `{"name":"x"}`, nil, want{401, coupon.EUNAUTHORIZED, "admin token"}},
		{"unknown coupon", couponPath(999999999999), `{"name":"x"}`, adminAuth, want{404, coupon.ENOTFOUND, "Coupon 999999999999 does not exist"}},
		{"bad id", "/v1/coupons/x", `{"name":"x"}`, adminAuth, want{400, coupon.EINVALID, "couponId must be a positive integer"}},
		{"empty body", path, ``, adminAuth, want{400, coupon.EINVALID, "body is empty"}},
		{"nothing to change", path, `{}`, adminAuth, want{400, coupon.EINVALID, "changes nothing"}},
		{"not an object", path, `[1]`, adminAuth, want{400, coupon.EINVALID, "JSON object"}},
		{"malformed JSON", path, `{"name":`, adminAuth, want{400, coupon.EINVALID, "not valid JSON"}},
		{"trailing data", path, `{"name":"a"} {}`, adminAuth, want{400, coupon.EINVALID, "not valid JSON"}},
		{"unknown field", path, `{"issueStartAt":"2030-01-01T00:00:00Z"}`, adminAuth, want{400, coupon.EINVALID, `Unknown field "issueStartAt"`}},
		{"field case", path, `{"Name":"a"}`, adminAuth, want{400, coupon.EINVALID, `Unknown field "Name"`}},
		{"duplicate field", path, `{"name":"a","name":"b"}`, adminAuth, want{400, coupon.EINVALID, `"name" appears more than once`}},
		{"strategy", path, `{"strategy":"db-lock"}`, adminAuth, want{400, coupon.EINVALID, "strategy cannot be changed"}},
		{"null name", path, `{"name":null}`, adminAuth, want{400, coupon.EINVALID, "name is required"}},
		{"blank name", path, `{"name":"  "}`, adminAuth, want{400, coupon.EINVALID, "name must not be blank"}},
		{"zero total", path, `{"totalQuantity":0}`, adminAuth, want{400, coupon.EINVALID, "totalQuantity must be an integer from 1 to 100000000"}},
		{"string total", path, `{"totalQuantity":"9"}`, adminAuth, want{400, coupon.EINVALID, "totalQuantity must be a JSON number"}},
		{"bad time", path, `{"issueEndsAt":"soon"}`, adminAuth, want{400, coupon.EINVALID, "issueEndsAt must be an RFC 3339 time"}},
		{"end before start", path, `{"issueStartsAt":"2030-01-02T00:00:00Z","issueEndsAt":"2030-01-01T00:00:00Z"}`, adminAuth, want{400, coupon.EINVALID, "issueEndsAt must not be before issueStartsAt"}},
		{"body too large", path, `{"name":"` + strings.Repeat("x", 5000) + `"}`, adminAuth, want{413, coupon.ETOOLARGE, "too large"}},
		{"compressed body", path, `{"name":"x"}`, append([]string{"Content-Encoding", "gzip"}, adminAuth...), want{415, coupon.EUNSUPPORTED, "Content-Encoding"}},
		{"not JSON", path, `name=x`, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, adminAuth...), want{415, coupon.EUNSUPPORTED, "is not accepted"}},
		{"total below the admitted", path, `{"totalQuantity":2}`, adminAuth, want{409, coupon.ECONFLICT, "below the 3 users already admitted"}},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.want.check(t, h.do("PATCH", tt.path, tt.body, tt.header...)) })
	}
	// Nothing of the refused changes stuck, in MySQL or the gate.
	if r := h.do("GET", path, nil); r.json["name"] != "patch" || r.int("totalQuantity") != 5 || r.int("remaining") != 2 {
		t.Fatalf("after refused changes: %s", r.body)
	}

	t.Run("rename and raise", func(t *testing.T) {
		r := h.admin("PATCH", path, `{"name":"patched","totalQuantity":6}`)
		if r.status != 200 || r.json["name"] != "patched" || r.int("totalQuantity") != 6 || r.int("admitted") != 3 || r.int("remaining") != 3 || r.json["state"] != "open" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		for u := int64(4); u <= 6; u++ {
			if r := h.issue(id, u); r.status != http.StatusAccepted {
				t.Fatalf("issue %d after the raise: %d %s", u, r.status, r.body)
			}
		}
		want{410, coupon.ESOLDOUT, "sold out"}.check(t, h.issue(id, 7))
		if c, _ := h.db.FindCoupon(context.Background(), id); c.TotalQuantity != 6 || c.Revision != 2 {
			t.Fatalf("MySQL has %+v", c)
		}
	})
	t.Run("lower to the admitted", func(t *testing.T) {
		r := h.admin("PATCH", path, `{"totalQuantity":6}`)
		if r.status != 200 || r.json["state"] != "sold_out" || r.int("remaining") != 0 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("stop and reopen the window", func(t *testing.T) {
		c := h.createCoupon(map[string]any{"name": "window", "totalQuantity": 100})
		r := h.admin("PATCH", couponPath(c), map[string]any{"issueEndsAt": time.Now().UTC().Format(time.RFC3339Nano)})
		if r.status != 200 || r.json["state"] != "ended" || r.json["issueEndsAt"] == nil {
			t.Fatalf("stop: %d %s", r.status, r.body)
		}
		want{403, coupon.EENDED, "ended at"}.check(t, h.issue(c, 1))
		if r := h.admin("PATCH", couponPath(c), `{"issueEndsAt":null}`); r.status != 200 || r.json["issueEndsAt"] != nil || r.json["state"] != "open" {
			t.Fatalf("reopen: %d %s", r.status, r.body)
		}
		if r := h.issue(c, 1); r.status != http.StatusAccepted {
			t.Fatalf("issue after reopening: %d %s", r.status, r.body)
		}
	})
	t.Run("baseline below the issued rows", func(t *testing.T) {
		c := h.createCoupon(map[string]any{"name": "patch db-lock", "totalQuantity": 3, "strategy": "db-lock"})
		for u := int64(1); u <= 2; u++ {
			if r := h.issue(c, u); r.status != http.StatusCreated {
				t.Fatalf("issue: %d %s", r.status, r.body)
			}
		}
		want{409, coupon.ECONFLICT, "below the 2 units of coupon"}.check(t, h.admin("PATCH", couponPath(c), `{"totalQuantity":1}`))
		if r := h.admin("PATCH", couponPath(c), `{"totalQuantity":2}`); r.status != 200 || r.json["state"] != "sold_out" {
			t.Fatalf("lower to the issued: %d %s", r.status, r.body)
		}
		want{410, coupon.ESOLDOUT, "sold out"}.check(t, h.issue(c, 3))
	})
}

// lossyChanges announces by raising the change counter only, as if every
// message on the channel were lost: the other gateways must notice by
// their poll of the counter.
type lossyChanges struct{ *admitter.Gate }

func (l lossyChanges) Announce(ctx context.Context, _ int64) error {
	return l.Client().Incr(ctx, admitter.ChangesVersionKey).Err()
}

// TestPatchAcrossGateways: a PATCH taken by one gateway takes effect on
// another one sharing the stores within a second, though its cache would
// keep the coupon a minute: totals at once (the gate holds them), the
// window and the name through the change channel, or through the change
// counter when the message is lost.
func TestPatchAcrossGateways(t *testing.T) {
	longCache := func(c *gateway.Config) { c.CacheTTL, c.NegativeCacheTTL = time.Minute, time.Minute }
	a := mustStartGateway(t, harnessOpts{cfg: longCache})
	b := mustStartGateway(t, harnessOpts{cfg: longCache, topic: a.topic})
	lossy := mustStartGateway(t, harnessOpts{cfg: longCache, topic: a.topic, deps: func(d *gateway.Deps) {
		d.Changes = lossyChanges{d.Gate.(*admitter.Gate)}
	}})
	var user atomic.Int64
	user.Store(testenv.RandomCouponID())
	issueOn := func(h *harness, id int64) response { return h.issue(id, user.Add(1)) }

	// within waits until b answers as wanted after a change, and says how long it took.
	within := func(t *testing.T, what string, cond func() error) {
		t.Helper()
		start := time.Now()
		testenv.Eventually(t, time.Second, cond)
		t.Logf("%s: seen on the other gateway after %s", what, time.Since(start).Round(time.Millisecond))
	}
	for _, tt := range []struct {
		name  string
		patch *harness // the gateway taking the PATCH
	}{{"channel", a}, {"lost message, counter poll", lossy}} {
		t.Run(tt.name, func(t *testing.T) {
			id := a.createCoupon(map[string]any{"name": "across", "totalQuantity": 100})
			if r := issueOn(b, id); r.status != http.StatusAccepted { // b caches the coupon
				t.Fatalf("issue on b: %d %s", r.status, r.body)
			}
			if r := b.do("GET", couponPath(id), nil); r.json["name"] != "across" {
				t.Fatalf("b: %s", r.body)
			}
			// Stop the drop: b refuses within a second.
			tt.patch.admin("PATCH", couponPath(id), map[string]any{"issueEndsAt": time.Now().UTC().Format(time.RFC3339Nano), "name": "renamed"})
			within(t, "stop", func() error {
				if r := issueOn(b, id); r.status != http.StatusForbidden || r.code() != coupon.EENDED {
					return fmt.Errorf("b answered %d %s", r.status, r.body)
				}
				if r := b.do("GET", couponPath(id), nil); r.json["name"] != "renamed" || r.json["state"] != "ended" {
					return fmt.Errorf("b shows %s", r.body)
				}
				return nil
			})
			// Reopen, lower the total to what is admitted: b sells out at
			// once, whatever its cache says (the gate holds the total).
			if r := tt.patch.admin("PATCH", couponPath(id), `{"issueEndsAt":null}`); r.status != 200 {
				t.Fatalf("reopen: %d %s", r.status, r.body)
			}
			within(t, "reopen", func() error {
				if r := issueOn(b, id); r.status != http.StatusAccepted {
					return fmt.Errorf("b answered %d %s", r.status, r.body)
				}
				return nil
			})
			admitted, err := a.gate.Admitted(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if r := tt.patch.admin("PATCH", couponPath(id), map[string]any{"totalQuantity": admitted}); r.status != 200 || r.json["state"] != "sold_out" {
				t.Fatalf("lower: %d %s", r.status, r.body)
			}
			want{410, coupon.ESOLDOUT, "sold out"}.check(t, issueOn(b, id))
			if r := tt.patch.admin("PATCH", couponPath(id), map[string]any{"totalQuantity": admitted + 1}); r.status != 200 {
				t.Fatalf("raise: %d %s", r.status, r.body)
			}
			if r := issueOn(b, id); r.status != http.StatusAccepted {
				t.Fatalf("b after the raise: %d %s", r.status, r.body)
			}
			if n, _ := a.gate.Admitted(context.Background(), id); n != admitted+1 {
				t.Fatalf("admitted %d; want %d", n, admitted+1)
			}
		})
	}
}

// TestAlreadyIssuedConcurrent: many users retrying at once over several
// coupons, their rows read in batches, each get their own rank and status:
// issued where the row is in MySQL, pending where it is not yet.
func TestAlreadyIssuedConcurrent(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	const coupons, users = 3, 8
	type key struct{ c, u int64 }
	rank := map[key]int64{}
	var ids []int64
	for range coupons {
		id := h.createCoupon(map[string]any{"name": "again concurrent", "totalQuantity": users})
		ids = append(ids, id)
		for u := int64(1); u <= users; u++ {
			r := h.issue(id, u)
			if r.status != http.StatusAccepted {
				t.Fatalf("issue: %d %s", r.status, r.body)
			}
			rank[key{id, u}] = r.int("rank")
			if u%2 == 0 { // the sinker wrote the even users' rows
				mustInsertIssue(t, h, id, u, rank[key{id, u}])
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, coupons*users)
	for k, want := range rank {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := h.issue(k.c, k.u)
			status := "pending"
			if k.u%2 == 0 {
				status = "issued"
			}
			if r.status != http.StatusConflict || r.code() != coupon.EALREADY || r.int("rank") != want || r.json["status"] != status {
				errs <- fmt.Errorf("coupon %d user %d: %d %s; want 409 rank %d %s", k.c, k.u, r.status, r.body, want, status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAlreadyIssuedCarriesRankAndStatus(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{deps: withDBLock(t)})
	id := h.createCoupon(map[string]any{"name": "again", "totalQuantity": 5})
	h.issue(id, 1)
	if r := h.issue(id, 2); r.int("rank") != 2 {
		t.Fatalf("issue: %d %s", r.status, r.body)
	}
	check := func(r response, rank int64, status string) {
		t.Helper()
		want{409, coupon.EALREADY, "already holds"}.check(t, r)
		if r.int("rank") != rank || r.json["status"] != status {
			t.Fatalf("409 carries rank %v status %v; want %d %s (%s)", r.json["rank"], r.json["status"], rank, status, r.body)
		}
	}
	check(h.issue(id, 2), 2, "pending")
	mustInsertIssue(t, h, id, 2, 2) // the sinker wrote the row
	check(h.issue(id, 2), 2, "issued")

	dbl := h.createCoupon(map[string]any{"name": "again db-lock", "totalQuantity": 5, "strategy": "db-lock"})
	h.issue(dbl, 1)
	if r := h.issue(dbl, 2); r.status != http.StatusCreated || r.int("rank") != 2 {
		t.Fatalf("db-lock issue: %d %s", r.status, r.body)
	}
	check(h.issue(dbl, 2), 2, "issued")
}

func TestUserCouponsListPendingWithNames(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	user := testenv.RandomCouponID()
	alpha := h.createCoupon(map[string]any{"name": "alpha", "totalQuantity": 5})
	beta := h.createCoupon(map[string]any{"name": "beta", "totalQuantity": 5})
	for _, c := range []int64{alpha, beta} {
		if r := h.issue(c, user); r.status != http.StatusAccepted {
			t.Fatalf("issue: %d %s", r.status, r.body)
		}
	}
	mustInsertIssue(t, h, beta, user, 1)
	r := h.do("GET", fmt.Sprintf("/v1/users/%d/coupons", user), nil)
	list, _ := r.json["coupons"].([]any)
	if r.status != 200 || len(list) != 2 || r.json["gate"] != "ok" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	b, a := list[0].(map[string]any), list[1].(map[string]any)
	if int64(b["couponId"].(float64)) != beta || b["name"] != "beta" || b["status"] != "issued" || b["issuedAt"] == nil {
		t.Fatalf("first entry %v; want beta, issued", b)
	}
	if int64(a["couponId"].(float64)) != alpha || a["name"] != "alpha" || a["status"] != "pending" || a["rank"].(float64) != 1 || a["issuedAt"] != nil {
		t.Fatalf("second entry %v; want alpha, pending, rank 1", a)
	}
}

// TestReadsWhileGateLost: after a coupon's gate state is lost, reads keep
// answering from MySQL and say the gate is being rebuilt; only admissions
// (and changes of the total, which the gate must check) answer 503.
func TestReadsWhileGateLost(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	ctx := context.Background()
	id := h.createCoupon(map[string]any{"name": "lost", "totalQuantity": 5})
	for u := int64(1); u <= 2; u++ {
		if r := h.issue(id, u); r.status != http.StatusAccepted {
			t.Fatalf("issue: %d %s", r.status, r.body)
		}
	}
	if _, err := h.db.InsertIssues(ctx, []coupon.Issue{{CouponID: id, UserID: 1, Rank: 1, AdmittedAt: time.Now(), Partition: -1, Offset: -1}}); err != nil {
		t.Fatal(err)
	}
	if err := h.gate.Drop(ctx, id); err != nil { // FLUSHALL, a restart without persistence
		t.Fatal(err)
	}

	r := h.do("GET", couponPath(id), nil)
	if r.status != 200 || r.json["gate"] != "rebuilding" || r.int("issued") != 1 || r.int("admitted") != 1 || r.json["name"] != "lost" {
		t.Fatalf("coupon: %d %s", r.status, r.body)
	}
	if r := h.do("GET", fmt.Sprintf("/v1/coupons/%d/issues/1", id), nil); r.status != 200 || r.json["status"] != "issued" {
		t.Fatalf("status of the issued user: %d %s", r.status, r.body)
	}
	want{404, coupon.ENOTISSUED, "being rebuilt"}.check(t, h.do("GET", fmt.Sprintf("/v1/coupons/%d/issues/2", id), nil))
	if r := h.do("GET", "/v1/users/1/coupons", nil); r.status != 200 {
		t.Fatalf("user coupons: %d %s", r.status, r.body)
	}
	r = h.admin("GET", fmt.Sprintf("/v1/coupons?limit=1&cursor=%d", id-1), nil)
	if list, _ := r.json["coupons"].([]any); r.status != 200 || len(list) != 1 || list[0].(map[string]any)["gate"] != "rebuilding" {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	want{503, coupon.EUNAVAILABLE, "being rebuilt"}.check(t, h.issue(id, 3))
	want{503, coupon.EUNAVAILABLE, "being rebuilt"}.check(t, h.admin("PATCH", couponPath(id), `{"totalQuantity":4}`))
	want{503, coupon.EUNAVAILABLE, "repeat the PATCH"}.check(t, h.admin("PATCH", couponPath(id), `{"totalQuantity":6}`))

	// Rebuilt with MySQL's total: the raise MySQL kept is the gate's too.
	c, err := h.db.FindCoupon(ctx, id)
	if err != nil || c.TotalQuantity != 6 {
		t.Fatalf("MySQL has %+v, %v", c, err)
	}
	st := admitter.State{Users: map[int64]int64{1: 1, 2: 2}, Seq: 2, Total: c.TotalQuantity, Revision: c.Revision}
	if ok, err := h.gate.Restore(ctx, id, st, true); err != nil || !ok {
		t.Fatalf("restore: %v %v", ok, err)
	}
	if r := h.issue(id, 3); r.status != http.StatusAccepted || r.int("rank") != 3 {
		t.Fatalf("issue after the rebuild: %d %s", r.status, r.body)
	}
	if r := h.do("GET", couponPath(id), nil); r.json["gate"] != "ok" || r.int("remaining") != 3 {
		t.Fatalf("after the rebuild: %s", r.body)
	}
}

// downStore is the MySQL store with reads that fail on demand.
type downStore struct {
	*mysql.DB
	down atomic.Bool
}

var errDown = errors.New("dial tcp 127.0.0.1:3306: connect: connection refused")

func (s *downStore) fail() error {
	if s.down.Load() {
		return errDown
	}
	return nil
}

func (s *downStore) IssuedCount(ctx context.Context, id int64) (int64, error) {
	if err := s.fail(); err != nil {
		return 0, err
	}
	return s.DB.IssuedCount(ctx, id)
}

func (s *downStore) FindCoupon(ctx context.Context, id int64) (*coupon.Coupon, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.DB.FindCoupon(ctx, id)
}

func (s *downStore) FindIssue(ctx context.Context, couponID, userID int64) (*coupon.Issue, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.DB.FindIssue(ctx, couponID, userID)
}

func (s *downStore) FindIssues(ctx context.Context, users map[int64][]int64) ([]*coupon.Issue, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.DB.FindIssues(ctx, users)
}

func (s *downStore) ListUserIssues(ctx context.Context, userID int64) ([]coupon.Holding, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.DB.ListUserIssues(ctx, userID)
}

func (s *downStore) ListCoupons(ctx context.Context, cursor int64, limit int, order coupon.Order, state coupon.State, now time.Time) ([]*coupon.Coupon, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.DB.ListCoupons(ctx, cursor, limit, order, state, now)
}

func (s *downStore) UpdateCoupon(ctx context.Context, id int64, p coupon.Patch, hold func(context.Context, *coupon.Coupon, *coupon.Coupon) error) (*coupon.Coupon, *coupon.Coupon, error) {
	if err := s.fail(); err != nil {
		return nil, nil, err
	}
	return s.DB.UpdateCoupon(ctx, id, p, hold)
}

// TestReadsWhileMySQLDown: reads MySQL cannot answer are 503 with
// Retry-After and a message, never a wrong answer.
func TestReadsWhileMySQLDown(t *testing.T) {
	var store *downStore
	h := mustStartGateway(t, harnessOpts{
		cfg: func(c *gateway.Config) { c.CacheTTL = time.Minute }, // the coupon stays cached
		deps: func(d *gateway.Deps) {
			store = &downStore{DB: d.Store.(*mysql.DB)}
			d.Store = store
			d.Changes = nil // nothing drops it from the cache
		},
	})
	id := h.createCoupon(map[string]any{"name": "mysql down", "totalQuantity": 5})
	h.do("GET", couponPath(id), nil)
	store.down.Store(true)
	for _, tt := range []struct {
		method, path string
		body         any
		want         want
	}{
		{"GET", couponPath(id), nil, want{503, coupon.EUNAVAILABLE, "issued count of coupon"}},
		{"GET", couponPath(id) + "/live", nil, want{503, coupon.EUNAVAILABLE, "issued count of coupon"}},
		{"GET", fmt.Sprintf("/v1/coupons/%d/issues/1", id), nil, want{503, coupon.EUNAVAILABLE, "could not be read"}},
		{"GET", "/v1/users/1/coupons", nil, want{503, coupon.EUNAVAILABLE, "coupons of user 1 could not be read"}},
		{"GET", "/v1/coupons", nil, want{503, coupon.EUNAVAILABLE, "could not be listed"}},
		{"PATCH", couponPath(id), `{"name":"x"}`, want{503, coupon.EUNAVAILABLE, "could not be changed"}},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tt.body, adminAuth...)
			tt.want.check(t, r)
			if r.header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
		})
	}
}
