package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/baseline"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
)

// want is an expected error answer: status, code, and a substring of the
// message (which must name the problem).
type want struct {
	status  int
	code    string
	message string
}

func (w want) check(t *testing.T, r response) {
	t.Helper()
	if r.status != w.status || r.code() != w.code || !strings.Contains(r.message(), w.message) {
		t.Fatalf("got %d %s %q; want %d %s with message containing %q", r.status, r.code(), r.message(), w.status, w.code, w.message)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error answer with Content-Type %q", ct)
	}
	if r.header.Get("X-Request-ID") == "" {
		t.Fatalf("error answer without X-Request-ID")
	}
}

// switchPublisher wraps a publisher with injectable failures: "failed"
// returns ErrPublishFailed without publishing; "unknown" publishes and then
// returns ErrPublishUnknown (as a timeout after sending would).
type switchPublisher struct {
	next coupon.Publisher
	mode atomic.Value // string
}

func (p *switchPublisher) Publish(ctx context.Context, a coupon.Admission) error {
	mode, _ := p.mode.Load().(string)
	switch mode {
	case "failed":
		return fmt.Errorf("injected: %w", coupon.ErrPublishFailed)
	case "unknown":
		if err := p.next.Publish(ctx, a); err != nil {
			return err
		}
		return fmt.Errorf("injected: %w", coupon.ErrPublishUnknown)
	}
	return p.next.Publish(ctx, a)
}

// panicIssuer is a strategy with a bug.
type panicIssuer struct{}

func (panicIssuer) Issue(context.Context, *coupon.Coupon, int64, string) (*coupon.Issue, error) {
	var m map[string]int
	m["boom"]++ // nil map write: a runtime panic
	return nil, nil
}

func TestCreateCouponContract(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	auth := []string{"Authorization", "Bearer " + testToken}
	tests := []struct {
		name   string
		header []string
		body   string
		want   want
	}{
		{"no token", nil, `{"name":"a","totalQuantity":1}`, want{401, coupon.EUNAUTHORIZED, "admin token"}},
		{"wrong token", []string{"Authorization", "Bearer nope"}, `{"name":"a","totalQuantity":1}`, want{401, coupon.EUNAUTHORIZED, "wrong"}},
		{"token prefix", []string{"Authorization", "Bearer " + testToken[:10]}, `{"name":"a","totalQuantity":1}`, want{401, coupon.EUNAUTHORIZED, "wrong"}},
		{"basic scheme", []string{"Authorization", "Basic " + testToken}, `{"name":"a","totalQuantity":1}`, want{401, coupon.EUNAUTHORIZED, "Bearer"}},
		{"empty body", auth, ``, want{400, coupon.EINVALID, "body is empty"}},
		{"malformed JSON", auth, `{"name":`, want{400, coupon.EINVALID, "not valid JSON"}},
		{"not an object", auth, `["a", 1]`, want{400, coupon.EINVALID, "JSON object"}},
		{"missing name", auth, `{"totalQuantity":1}`, want{400, coupon.EINVALID, "name is required"}},
		{"empty name", auth, `{"name":"","totalQuantity":1}`, want{400, coupon.EINVALID, "name is required"}},
		{"name too long", auth, `{"name":"` + strings.Repeat("x", 201) + `","totalQuantity":1}`, want{400, coupon.EINVALID, "name must be at most 200"}},
		{"missing totalQuantity", auth, `{"name":"a"}`, want{400, coupon.EINVALID, "totalQuantity is required"}},
		{"zero totalQuantity", auth, `{"name":"a","totalQuantity":0}`, want{400, coupon.EINVALID, "totalQuantity must be an integer from 1 to 100000000"}},
		{"totalQuantity too big", auth, `{"name":"a","totalQuantity":100000001}`, want{400, coupon.EINVALID, "totalQuantity must be an integer from 1 to 100000000"}},
		{"float totalQuantity", auth, `{"name":"a","totalQuantity":2.5}`, want{400, coupon.EINVALID, "totalQuantity must be an integer"}},
		{"string totalQuantity", auth, `{"name":"a","totalQuantity":"5"}`, want{400, coupon.EINVALID, "totalQuantity must be a JSON number"}},
		{"bad issueStartsAt", auth, `{"name":"a","totalQuantity":1,"issueStartsAt":"soon"}`, want{400, coupon.EINVALID, "issueStartsAt must be an RFC 3339 time"}},
		{"end before start", auth, `{"name":"a","totalQuantity":1,"issueStartsAt":"2030-01-02T00:00:00Z","issueEndsAt":"2030-01-01T00:00:00Z"}`, want{400, coupon.EINVALID, "issueEndsAt must not be before issueStartsAt"}},
		{"unknown strategy", auth, `{"name":"a","totalQuantity":1,"strategy":"yolo"}`, want{400, coupon.EINVALID, "strategy must be one of"}},
		{"strategy not enabled", auth, `{"name":"a","totalQuantity":1,"strategy":"redis-lock"}`, want{400, coupon.EINVALID, "strategy redis-lock is not enabled"}},
		{"body too large", auth, `{"name":"` + strings.Repeat("x", 5000) + `","totalQuantity":1}`, want{413, coupon.ETOOLARGE, "too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.check(t, h.do("POST", "/v1/coupons", tt.body, tt.header...))
		})
	}

	t.Run("created", func(t *testing.T) {
		r := h.do("POST", "/v1/coupons", `{"name":"Spring drop","totalQuantity":5,"issueEndsAt":"2099-01-01T00:00:00+09:00"}`, auth...)
		if r.status != http.StatusCreated || r.int("id") < 1 || r.json["name"] != "Spring drop" || r.int("totalQuantity") != 5 ||
			r.json["strategy"] != "async" || r.int("remaining") != 5 || r.json["issueEndsAt"] != "2098-12-31T15:00:00Z" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		id := r.int("id")
		c, err := h.db.FindCoupon(context.Background(), id)
		if err != nil || c.Name != "Spring drop" || c.TotalQuantity != 5 || c.Strategy != coupon.StrategyAsync {
			t.Fatalf("MySQL has %+v, %v", c, err)
		}
		// The gate state is initialised: an admission works at once.
		if r := h.issue(id, 1); r.status != http.StatusAccepted {
			t.Fatalf("issue on a new coupon: %d %s", r.status, r.body)
		}
	})
}

func TestGetCouponContract(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	id := h.createCoupon(map[string]any{"name": "get", "totalQuantity": 10})
	for u := int64(1); u <= 3; u++ {
		if r := h.issue(id, u); r.status != http.StatusAccepted {
			t.Fatalf("issue: %d %s", r.status, r.body)
		}
	}
	mustInsertIssue(t, h, id, 1, 1)

	r := h.do("GET", fmt.Sprintf("/v1/coupons/%d", id), nil)
	if r.status != 200 || r.int("id") != id || r.json["name"] != "get" || r.int("totalQuantity") != 10 ||
		r.int("admitted") != 3 || r.int("issued") != 1 || r.int("remaining") != 7 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	for _, k := range []string{"issueStartsAt", "issueEndsAt"} {
		if v, ok := r.json[k]; !ok || v != nil {
			t.Fatalf("%s: got %v (present %v); want null", k, v, ok)
		}
	}
	tests := []struct {
		name string
		path string
		want want
	}{
		{"unknown coupon", "/v1/coupons/999999999999", want{404, coupon.ENOTFOUND, "Coupon 999999999999 does not exist"}},
		{"non-numeric id", "/v1/coupons/abc", want{400, coupon.EINVALID, "couponId must be a positive integer"}},
		{"zero id", "/v1/coupons/0", want{400, coupon.EINVALID, "couponId must be an integer from 1"}},
		{"negative id", "/v1/coupons/-3", want{400, coupon.EINVALID, "couponId must be a positive integer"}},
		{"overflowing id", "/v1/coupons/9223372036854775808", want{400, coupon.EINVALID, "couponId must be an integer from 1"}},
		{"unknown route", "/v1/nope", want{404, "not_found", "No such route"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.want.check(t, h.do("GET", tt.path, nil)) })
	}
}

func TestIssueContract(t *testing.T) {
	pub := &switchPublisher{}
	h := mustStartGateway(t, harnessOpts{deps: func(d *gateway.Deps) {
		pub.next = d.Publisher
		d.Publisher = pub
		d.Issuers = map[coupon.Strategy]coupon.Issuer{
			coupon.StrategyDBLock:    baseline.NewDBLock(d.Store.(*mysql.DB), baseline.DefaultDBLockConfig(), testenv.Logger(t)),
			coupon.StrategyRedisLock: panicIssuer{},
		}
	}})
	id := h.createCoupon(map[string]any{"name": "issue", "totalQuantity": 2})
	one := h.createCoupon(map[string]any{"name": "one", "totalQuantity": 1})
	future := h.createCoupon(map[string]any{"name": "future", "totalQuantity": 1, "issueStartsAt": time.Now().Add(time.Hour).Format(time.RFC3339)})
	ended := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	past := h.insertCoupon(coupon.Coupon{Name: "past", TotalQuantity: 1, IssueEndsAt: &ended})
	dbl := h.createCoupon(map[string]any{"name": "dblock", "totalQuantity": 1, "strategy": "db-lock"})
	buggy := h.createCoupon(map[string]any{"name": "buggy", "totalQuantity": 1, "strategy": "redis-lock"})

	// Accepted, then the same user again, then sold out.
	r := h.issue(one, 7)
	if r.status != http.StatusAccepted || r.int("couponId") != one || r.int("userId") != 7 || r.int("rank") != 1 {
		t.Fatalf("first issue: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Request-ID") == "" {
		t.Fatal("202 without X-Request-ID")
	}
	path := func(c int64) string { return fmt.Sprintf("/v1/coupons/%d/issues", c) }
	big := `{"userId": 1, "pad": "` + strings.Repeat("x", 5000) + `"}`
	tests := []struct {
		name string
		path string
		body string
		want want
	}{
		{"same user again", path(one), `{"userId": 7}`, want{409, coupon.EALREADY, "already"}},
		{"sold out", path(one), `{"userId": 8}`, want{410, coupon.ESOLDOUT, "sold out"}},
		{"unknown coupon", path(999999999999), `{"userId": 1}`, want{404, coupon.ENOTFOUND, "Coupon 999999999999 does not exist"}},
		{"not started", path(future), `{"userId": 1}`, want{403, coupon.ENOTSTARTED, "starts at"}},
		{"ended", path(past), `{"userId": 1}`, want{403, coupon.EENDED, "ended at"}},
		{"malformed JSON", path(id), `{"userId": 1`, want{400, coupon.EINVALID, "not valid JSON"}},
		{"empty body", path(id), ``, want{400, coupon.EINVALID, "body is empty"}},
		{"JSON null", path(id), `null`, want{400, coupon.EINVALID, "JSON object"}},
		{"JSON array", path(id), `[1]`, want{400, coupon.EINVALID, "JSON object"}},
		{"missing userId", path(id), `{}`, want{400, coupon.EINVALID, "userId is required"}},
		{"unknown field", path(id), `{"user": 1}`, want{400, coupon.EINVALID, `Unknown field "user" in the request body (known fields: userId)`}},
		{"null userId", path(id), `{"userId": null}`, want{400, coupon.EINVALID, "userId is required"}},
		{"float userId", path(id), `{"userId": 1.5}`, want{400, coupon.EINVALID, "userId must be an integer"}},
		{"exponent userId", path(id), `{"userId": 1e2}`, want{400, coupon.EINVALID, "userId must be an integer"}},
		{"string userId", path(id), `{"userId": "1"}`, want{400, coupon.EINVALID, "userId must be a JSON number, not a string"}},
		{"bool userId", path(id), `{"userId": true}`, want{400, coupon.EINVALID, "userId must be an integer"}},
		{"zero userId", path(id), `{"userId": 0}`, want{400, coupon.EINVALID, "userId must be an integer from 1 to 9223372036854775807"}},
		{"negative userId", path(id), `{"userId": -1}`, want{400, coupon.EINVALID, "userId must be an integer from 1 to 9223372036854775807"}},
		{"overflowing userId", path(id), `{"userId": 9223372036854775808}`, want{400, coupon.EINVALID, "userId must be an integer from 1 to 9223372036854775807"}},
		{"non-numeric couponId", "/v1/coupons/abc/issues", `{"userId": 1}`, want{400, coupon.EINVALID, "couponId must be a positive integer"}},
		{"fractional couponId", "/v1/coupons/1.5/issues", `{"userId": 1}`, want{400, coupon.EINVALID, "couponId must be a positive integer"}},
		{"zero couponId", "/v1/coupons/0/issues", `{"userId": 1}`, want{400, coupon.EINVALID, "couponId must be an integer from 1"}},
		{"unknown strategy", path(id) + "?strategy=magic", `{"userId": 1}`, want{400, coupon.EINVALID, "strategy must be one of"}},
		{"other strategy", path(id) + "?strategy=db-lock", `{"userId": 1}`, want{409, coupon.ECONFLICT, "issued through strategy async, not db-lock"}},
		{"body too large", path(id), big, want{413, coupon.ETOOLARGE, "too large"}},
		{"a bug", path(buggy), `{"userId": 1}`, want{500, coupon.EINTERNAL, "Internal error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.want.check(t, h.do("POST", tt.path, tt.body)) })
	}

	t.Run("explicit matching strategy", func(t *testing.T) {
		r := h.do("POST", path(id)+"?strategy=async", `{"userId": 100}`)
		if r.status != http.StatusAccepted || r.int("rank") != 1 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})

	t.Run("baseline answers 201 with the row", func(t *testing.T) {
		r := h.do("POST", path(dbl)+"?strategy=db-lock", `{"userId": 5}`)
		if r.status != http.StatusCreated || r.int("couponId") != dbl || r.int("userId") != 5 || r.int("rank") != 1 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		want{409, coupon.EALREADY, "already"}.check(t, h.do("POST", path(dbl), `{"userId": 5}`))
		want{410, coupon.ESOLDOUT, "sold out"}.check(t, h.do("POST", path(dbl), `{"userId": 6}`))
		st := h.do("GET", fmt.Sprintf("/v1/coupons/%d/issues/5", dbl), nil)
		if st.status != 200 || st.json["status"] != "issued" || st.int("rank") != 1 {
			t.Fatalf("status: %d %s", st.status, st.body)
		}
	})

	t.Run("certain publish failure releases the slot", func(t *testing.T) {
		c := h.createCoupon(map[string]any{"name": "release", "totalQuantity": 1})
		pub.mode.Store("failed")
		r := h.issue(c, 1)
		pub.mode.Store("")
		want{503, coupon.EUNAVAILABLE, "could not be queued; please retry"}.check(t, r)
		if r.header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		if n, err := h.gate.Admitted(context.Background(), c); err != nil || n != 0 {
			t.Fatalf("admitted after a certain failure: %d, %v; want 0", n, err)
		}
		// The released slot serves another user, with a fresh rank.
		if r := h.issue(c, 2); r.status != http.StatusAccepted || r.int("rank") != 2 {
			t.Fatalf("after release: %d %s", r.status, r.body)
		}
	})

	t.Run("unknown publish outcome keeps the slot pending", func(t *testing.T) {
		c := h.createCoupon(map[string]any{"name": "unknown", "totalQuantity": 1})
		pub.mode.Store("unknown")
		r := h.issue(c, 1)
		pub.mode.Store("")
		want{503, coupon.EUNAVAILABLE, fmt.Sprintf("check GET /v1/coupons/%d/issues/1", c)}.check(t, r)
		if r.header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		st := h.do("GET", fmt.Sprintf("/v1/coupons/%d/issues/1", c), nil)
		if st.status != 200 || st.json["status"] != "pending" || st.int("rank") != 1 {
			t.Fatalf("status: %d %s", st.status, st.body)
		}
		want{410, coupon.ESOLDOUT, "sold out"}.check(t, h.issue(c, 2))
		if n, err := h.gate.Admitted(context.Background(), c); err != nil || n != 1 {
			t.Fatalf("admitted: %d, %v; want 1", n, err)
		}
	})
}

// mustInsertIssue writes an issued row as the sinker would.
func mustInsertIssue(t *testing.T, h *harness, couponID, userID, rank int64) {
	t.Helper()
	row := coupon.Issue{CouponID: couponID, UserID: userID, Rank: rank, AdmittedAt: time.Now().UTC(), Partition: -1, Offset: -1}
	if res, err := h.db.InsertIssues(context.Background(), []coupon.Issue{row}); err != nil || res.Inserted != 1 {
		t.Fatalf("insert issue: %+v, %v", res, err)
	}
}

func TestIssueStatusAndUserCouponsContract(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	id := h.createCoupon(map[string]any{"name": "status", "totalQuantity": 10})
	u := testenv.RandomCouponID() // a user ID no other test uses
	us := func(d int64) string { return fmt.Sprint(u + d) }
	other := h.createCoupon(map[string]any{"name": "status2", "totalQuantity": 10})
	if r := h.issue(id, u+1); r.status != http.StatusAccepted {
		t.Fatalf("issue: %d %s", r.status, r.body)
	}
	// User u+2 was admitted and the sinker wrote the row; user u+1 is only admitted.
	if r := h.issue(id, u+2); r.status != http.StatusAccepted || r.int("rank") != 2 {
		t.Fatalf("issue: %d %s", r.status, r.body)
	}
	mustInsertIssue(t, h, id, u+2, 2)
	mustInsertIssue(t, h, other, u+2, 9)

	st := func(c int64, u string) response {
		return h.do("GET", fmt.Sprintf("/v1/coupons/%d/issues/%s", c, u), nil)
	}
	if r := st(id, us(2)); r.status != 200 || r.json["status"] != "issued" || r.int("rank") != 2 {
		t.Fatalf("issued: %d %s", r.status, r.body)
	}
	if r := st(id, us(1)); r.status != 200 || r.json["status"] != "pending" || r.int("rank") != 1 {
		t.Fatalf("pending: %d %s", r.status, r.body)
	}
	for _, tt := range []struct {
		name string
		path string
		want want
	}{
		{"never admitted", fmt.Sprintf("/v1/coupons/%d/issues/%d", id, u+3), want{404, coupon.ENOTISSUED, fmt.Sprintf("User %d holds no issue of coupon", u+3)}},
		{"unknown coupon", "/v1/coupons/999999999999/issues/1", want{404, coupon.ENOTFOUND, "Coupon 999999999999 does not exist"}},
		{"non-numeric userId", fmt.Sprintf("/v1/coupons/%d/issues/bob", id), want{400, coupon.EINVALID, "userId must be a positive integer"}},
		{"zero userId", fmt.Sprintf("/v1/coupons/%d/issues/0", id), want{400, coupon.EINVALID, "userId must be an integer from 1"}},
		{"non-numeric couponId", "/v1/coupons/x/issues/1", want{400, coupon.EINVALID, "couponId must be a positive integer"}},
		{"users: non-numeric userId", "/v1/users/bob/coupons", want{400, coupon.EINVALID, "userId must be a positive integer"}},
		{"users: overflowing userId", "/v1/users/99999999999999999999/coupons", want{400, coupon.EINVALID, "userId must be an integer from 1"}},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.want.check(t, h.do("GET", tt.path, nil)) })
	}

	t.Run("user coupons", func(t *testing.T) {
		r := h.do("GET", "/v1/users/"+us(2)+"/coupons", nil)
		list, _ := r.json["coupons"].([]any)
		if r.status != 200 || len(list) != 2 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		first := list[0].(map[string]any)
		if int64(first["couponId"].(float64)) != other || first["rank"].(float64) != 9 || first["issuedAt"] == "" {
			t.Fatalf("first entry %v", first)
		}
		r = h.do("GET", "/v1/users/"+us(3)+"/coupons", nil)
		if list, ok := r.json["coupons"].([]any); r.status != 200 || !ok || len(list) != 0 {
			t.Fatalf("user without coupons: %d %s", r.status, r.body)
		}
	})
}

func TestOperationsContract(t *testing.T) {
	var redisDown atomic.Bool
	h := mustStartGateway(t, harnessOpts{
		cfg: func(c *gateway.Config) { c.ReadyCacheTTL = time.Millisecond },
		deps: func(d *gateway.Deps) {
			d.Checks["flaky"] = func(context.Context) error {
				if redisDown.Load() {
					return fmt.Errorf("connection refused")
				}
				return nil
			}
		},
	})
	t.Run("healthz", func(t *testing.T) {
		if r := h.do("GET", "/healthz", nil); r.status != 200 || r.json["status"] != "ok" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("readyz", func(t *testing.T) {
		r := h.do("GET", "/readyz", nil)
		checks, _ := r.json["checks"].(map[string]any)
		if r.status != 200 || checks["mysql"] != "ok" || checks["redis"] != "ok" || checks["flaky"] != "ok" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		redisDown.Store(true)
		defer redisDown.Store(false)
		testenv.Eventually(t, 5*time.Second, func() error {
			r = h.do("GET", "/readyz", nil)
			if r.status != 503 {
				return fmt.Errorf("readyz %d with a failing check", r.status)
			}
			return nil
		})
		want{503, coupon.EUNAVAILABLE, "flaky: connection refused"}.check(t, r)
		if r.header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	})
	t.Run("request ID", func(t *testing.T) {
		r := h.do("GET", "/healthz", nil, "X-Request-ID", "abc-123")
		if got := r.header.Get("X-Request-ID"); got != "abc-123" {
			t.Fatalf("X-Request-ID %q; want the client's", got)
		}
		a, b := h.do("GET", "/healthz", nil).header.Get("X-Request-ID"), h.do("GET", "/healthz", nil).header.Get("X-Request-ID")
		if a == "" || a == b {
			t.Fatalf("generated IDs %q and %q", a, b)
		}
		if got := h.do("GET", "/healthz", nil, "X-Request-ID", strings.Repeat("x", 129)).header.Get("X-Request-ID"); got == "" || len(got) > 128 {
			t.Fatalf("a bad client ID was kept: %q", got)
		}
	})
	t.Run("method not allowed", func(t *testing.T) {
		r := h.do("DELETE", "/v1/coupons/1", nil)
		if r.status != 405 && r.status != 404 || r.code() == "" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		h.do("GET", "/v1/coupons/abc", nil)
		r := h.do("GET", "/metrics", nil)
		for _, s := range []string{
			`coupon_gateway_requests_total{code="400",route="/v1/coupons/:couponId",strategy=""}`,
			`coupon_gateway_request_duration_seconds_bucket{route="/healthz"`,
			`coupon_gateway_inflight_requests 1`,
			`coupon_gateway_publish_errors_total{kind="unknown"} 0`,
			`go_goroutines`,
		} {
			if !strings.Contains(string(r.body), s) {
				t.Errorf("/metrics lacks %s", s)
			}
		}
	})
}

// countingStore counts FindCoupon calls.
type countingStore struct {
	*mysql.DB
	finds atomic.Int64
}

func (s *countingStore) FindCoupon(ctx context.Context, id int64) (*coupon.Coupon, error) {
	s.finds.Add(1)
	return s.DB.FindCoupon(ctx, id)
}

// TestCouponCacheLoadsOnce: a flood of requests for a coupon this gateway
// has not cached, or for a missing one, reaches MySQL once each.
func TestCouponCacheLoadsOnce(t *testing.T) {
	var store *countingStore
	h := mustStartGateway(t, harnessOpts{
		cfg: func(c *gateway.Config) { c.CacheTTL, c.NegativeCacheTTL = time.Minute, time.Minute },
		deps: func(d *gateway.Deps) {
			store = &countingStore{DB: d.Store.(*mysql.DB)}
			d.Store = store
			d.Changes = nil // other tests' coupon changes would drop the cache
		},
	})
	// Created behind the gateway's back, as another gateway instance would.
	c := &coupon.Coupon{Name: "cache", TotalQuantity: 1000, Strategy: coupon.StrategyAsync}
	if err := h.db.CreateCoupon(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := h.gate.Init(context.Background(), c.ID, c.TotalQuantity); err != nil {
		t.Fatal(err)
	}
	base := testenv.RandomCouponID()
	flood := func(couponID int64, want int) {
		var wg sync.WaitGroup
		errs := make(chan string, 200)
		for i := range int64(200) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := h.try("POST", fmt.Sprintf("/v1/coupons/%d/issues", couponID), fmt.Sprintf(`{"userId": %d}`, base+i))
				if err != nil || r.status != want {
					errs <- fmt.Sprintf("%d %s %v", r.status, r.body, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatalf("coupon %d: want %d, got %s", couponID, want, e)
		}
	}
	flood(c.ID, http.StatusAccepted)
	if n := store.finds.Load(); n != 1 {
		t.Fatalf("200 requests for an uncached coupon loaded it %d times; want 1", n)
	}
	flood(999_999_999_999, http.StatusNotFound)
	if n := store.finds.Load(); n != 2 {
		t.Fatalf("200 requests for a missing coupon made %d loads; want 1", n-1)
	}
}

// initFailingGate is a gate whose Init fails, as when Redis is down.
type initFailingGate struct{ coupon.Gate }

func (initFailingGate) Init(context.Context, int64, int64) error {
	return coupon.Errorf(coupon.EUNAVAILABLE, "Redis is down.")
}

// TestCreateCouponGateDown: a coupon whose gate cannot be initialised is not
// left half-created: the creation is undone and the answer is 503.
func TestCreateCouponGateDown(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{deps: func(d *gateway.Deps) {
		d.Gate = initFailingGate{d.Gate}
		d.Issuers = map[coupon.Strategy]coupon.Issuer{
			coupon.StrategyDBLock: baseline.NewDBLock(d.Store.(*mysql.DB), baseline.DefaultDBLockConfig(), testenv.Logger(t)),
		}
	}})
	name := "gate-down-" + testenv.RandomID()
	r := h.do("POST", "/v1/coupons", map[string]any{"name": name, "totalQuantity": 5}, "Authorization", "Bearer "+testToken)
	want{503, coupon.EUNAVAILABLE, "was not created"}.check(t, r)
	if n := h.couponsNamed(name); n != 0 {
		t.Fatalf("%d coupons named %s left in MySQL; want the creation undone", n, name)
	}
	// Baseline coupons need no gate and are created as usual.
	r = h.do("POST", "/v1/coupons", map[string]any{"name": name, "totalQuantity": 5, "strategy": "db-lock"}, "Authorization", "Bearer "+testToken)
	if r.status != http.StatusCreated {
		t.Fatalf("db-lock coupon: %d %s", r.status, r.body)
	}
}
