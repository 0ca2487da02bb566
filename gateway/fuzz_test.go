package gateway_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/gateway"
)

// fuzzStore knows one coupon, ID 1 (async, open window); every other ID is
// unknown. It is only read: issue requests never write the store.
type fuzzStore struct{}

var fuzzCoupon = coupon.Coupon{ID: 1, Name: "fuzz", TotalQuantity: 100, Strategy: coupon.StrategyAsync}

func (fuzzStore) PingContext(context.Context) error                               { return nil }
func (fuzzStore) CreateCoupon(context.Context, *coupon.Coupon) error              { return nil }
func (fuzzStore) IssuedCount(context.Context, int64) (int64, error)               { return 0, nil }
func (fuzzStore) DeleteUnissuedCoupon(context.Context, int64) (bool, error)       { return false, nil }
func (fuzzStore) ListUserIssues(context.Context, int64) ([]coupon.Holding, error) { return nil, nil }
func (fuzzStore) AdmissionSpan(context.Context, int64) (time.Time, time.Time, bool, error) {
	return time.Time{}, time.Time{}, false, nil
}
func (fuzzStore) ListCoupons(context.Context, int64, int, coupon.Order, coupon.State, time.Time) ([]*coupon.Coupon, error) {
	return nil, nil
}
func (fuzzStore) AdmittingCoupons(context.Context, time.Time) ([]*coupon.Coupon, error) {
	return nil, nil
}
func (fuzzStore) UpdateCoupon(context.Context, int64, coupon.Patch, func(context.Context, *coupon.Coupon, *coupon.Coupon) error) (*coupon.Coupon, *coupon.Coupon, error) {
	return nil, nil, coupon.Errorf(coupon.EUNAVAILABLE, "read-only")
}
func (fuzzStore) FindIssue(_ context.Context, couponID, userID int64) (*coupon.Issue, error) {
	return nil, coupon.Errorf(coupon.ENOTISSUED, "User %d holds no issue of coupon %d.", userID, couponID)
}
func (fuzzStore) FindIssues(context.Context, map[int64][]int64) ([]*coupon.Issue, error) {
	return nil, nil
}
func (fuzzStore) FindCoupon(_ context.Context, id int64) (*coupon.Coupon, error) {
	if id != fuzzCoupon.ID {
		return nil, coupon.Errorf(coupon.ENOTFOUND, "Coupon %d does not exist.", id)
	}
	c := fuzzCoupon
	return &c, nil
}

// fuzzIssuer answers by user ID: every outcome a real issuer has but 503.
type fuzzIssuer struct{}

func (fuzzIssuer) Issue(_ context.Context, c *coupon.Coupon, userID int64, _ string) (*coupon.Issue, error) {
	switch userID % 3 {
	case 0:
		return &coupon.Issue{CouponID: c.ID, UserID: userID, Rank: 1}, coupon.Errorf(coupon.EALREADY, "User %d already holds coupon %d.", userID, c.ID)
	case 1:
		return nil, coupon.Errorf(coupon.ESOLDOUT, "Coupon %d is sold out.", c.ID)
	}
	return &coupon.Issue{CouponID: c.ID, UserID: userID, Rank: 1}, nil
}

var (
	fuzzOnce sync.Once
	fuzzURL  string
	fuzzErr  error
)

// fuzzServer serves one in-process gateway on the fakes above on a loopback
// port (fiber's app.Test hides the answers fasthttp writes itself, like
// 413), shared by every input of the process; it returns its base URL.
func fuzzServer(tb testing.TB) string {
	tb.Helper()
	fuzzOnce.Do(func() {
		cfg := gateway.DefaultConfig()
		cfg.AdminToken = "fuzz-admin-token-0123456789"
		srv, err := gateway.New(cfg, gateway.Deps{
			Store:   fuzzStore{},
			Issuers: map[coupon.Strategy]coupon.Issuer{coupon.StrategyAsync: fuzzIssuer{}},
		}, nil)
		if err != nil {
			fuzzErr = fmt.Errorf("gateway.New: %w", err)
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fuzzErr = err
			return
		}
		go func() { _ = srv.Serve(context.Background(), ln) }() // lives as long as the test process
		fuzzURL = "http://" + ln.Addr().String()
	})
	if fuzzErr != nil {
		tb.Fatal(fuzzErr)
	}
	return fuzzURL
}

var fuzzClient = &http.Client{Timeout: 10 * time.Second}

// FuzzIssueHandler sends arbitrary coupon IDs, query strings, bodies and
// Content-Encoding and Content-Type headers to POST
// /v1/coupons/{couponId}/issues through the whole fiber stack: nothing
// panics, bad input is never a 5xx, every answer is the JSON the contract
// names, and a body with any Content-Encoding (compressed, several layers,
// a bomb) or not sent as JSON is 415, never inflated nor admitted. Pure:
// the store and issuer are in-memory fakes.
func FuzzIssueHandler(f *testing.F) {
	const jsonCT = "application/json"
	bomb := gzipLayers(append([]byte(`{"userId": 45}`), bytes.Repeat([]byte(" "), 1<<20)...), 2)
	for _, s := range []struct {
		couponID, query, encoding, ctype string
		body                             []byte
	}{
		{"1", "", "", jsonCT, []byte(`{"userId": 42}`)},
		{"1", "", "", jsonCT, []byte(`{"userId": 43}`)},
		{"1", "strategy=async", "", jsonCT, []byte(`{"userId": 44}`)},
		{"1", "strategy=db-lock", "", jsonCT, []byte(`{"userId": 44}`)},
		{"1", "strategy=nope", "", jsonCT, []byte(`{"userId": 44}`)},
		{"1", "strategy=%zz", "", jsonCT, []byte(`{"userId": 44}`)},
		{"2", "", "", jsonCT, []byte(`{"userId": 44}`)},
		{"0", "", "", jsonCT, []byte(`{"userId": 44}`)},
		{"01", "", "", jsonCT, []byte(`{"userId": 44}`)},
		{"-1", "", "", jsonCT, []byte(`{"userId": 44}`)},
		{"abc", "", "", jsonCT, []byte(`{"userId": 44}`)},
		{"99999999999999999999", "", "", jsonCT, []byte(`{"userId": 44}`)},
		{"", "", "", jsonCT, []byte(`{"userId": 44}`)},
		{"1/issues", "", "", jsonCT, []byte(`{"userId": 44}`)},
		{"1", "", "", jsonCT, []byte(``)},
		{"1", "", "", jsonCT, []byte(`null`)},
		{"1", "", "", jsonCT, []byte(`[]`)},
		{"1", "", "", jsonCT, []byte(`{"userId": "44"}`)},
		{"1", "", "", jsonCT, []byte(`{"userId": 4.4e1}`)},
		{"1", "", "", jsonCT, []byte(`{"userId": 9223372036854775807}`)},
		{"1", "", "", jsonCT, []byte(`{"userId": 9223372036854775808}`)},
		{"1", "", "", jsonCT, []byte(`{"userId": -44}`)},
		{"1", "", "", jsonCT, []byte(`{"userId": 44`)},
		{"1", "", "", jsonCT, []byte("\xff\xfe{\"userId\": 44}")},
		{"1", "", "", jsonCT, []byte(`{"userId": 44, "userId": 45}`)},
		{"1", "", "", jsonCT, []byte(`{"USERID": 44}`)},
		{"1", "", "", jsonCT, []byte(`{"userId": 44, "x": 1}`)},
		{"1", "", "", jsonCT, []byte(strings.Repeat(" ", 5000) + `{"userId": 44}`)},
		{"1", "", "gzip", jsonCT, gzipLayers([]byte(`{"userId": 45}`), 1)},
		{"1", "", "gzip, gzip", jsonCT, bomb},
		{"1", "", "gzip,gzip,gzip", jsonCT, gzipLayers(bomb, 1)},
		{"1", "", "deflate", jsonCT, bomb},
		{"1", "", "br", jsonCT, bomb},
		{"1", "", "identity", jsonCT, []byte(`{"userId": 45}`)},
		{"1", "", "", "", []byte(`{"userId": 46}`)},
		{"1", "", "", "text/plain", []byte(`{"userId": 46}`)},
		{"1", "", "", "application/json; charset=utf-16", []byte(`{"userId": 46}`)},
		{"1", "", "", "APPLICATION/JSON;charset=\"utf-8\"", []byte(`{"userId": 47}`)},
	} {
		f.Add(s.couponID, s.query, s.encoding, s.ctype, s.body)
	}
	f.Fuzz(func(t *testing.T, couponID, query, encoding, ctype string, body []byte) {
		for i := 0; i < len(query); i++ {
			if query[i] <= ' ' || query[i] >= 0x7f || query[i] == '#' {
				t.Skip("no client can send this byte raw in a request line")
			}
		}
		target := fuzzServer(t) + "/v1/coupons/" + url.PathEscape(couponID) + "/issues"
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			t.Skip("not a request a client can send")
		}
		for _, h := range [][2]string{{"Content-Type", ctype}, {"Content-Encoding", encoding}} {
			if h[1] == "" {
				continue
			}
			if strings.IndexFunc(h[1], func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) >= 0 {
				t.Skip("not a header value a client can send")
			}
			req.Header.Set(h[0], h[1])
		}
		resp, err := fuzzClient.Do(req)
		if err != nil {
			t.Fatalf("couponId %q query %q encoding %q type %q body %q: %v", couponID, query, encoding, ctype, body, err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read answer: %v", err)
		}
		if resp.StatusCode >= 500 || resp.StatusCode < 200 {
			t.Fatalf("couponId %q query %q body %q: status %d %s", couponID, query, body, resp.StatusCode, out)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("status %d: Content-Type %q, want JSON", resp.StatusCode, ct)
		}
		var j map[string]any
		if err := json.Unmarshal(out, &j); err != nil {
			t.Fatalf("status %d: answer is not a JSON object: %q", resp.StatusCode, out)
		}
		// A well-formed path and query get as far as the body: an encoded
		// body, or a body not labelled JSON, is 415 there.
		routed := couponID == "1" && (query == "" || query == "strategy=async")
		encoded := strings.TrimSpace(encoding) != ""
		notJSON := len(body) > 0 && !isJSONType(ctype)
		if routed && len(body) <= 4<<10 && (encoded || notJSON) && resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("encoding %q type %q body %q: %d %s; want 415", encoding, ctype, body, resp.StatusCode, out)
		}
		if resp.StatusCode >= 400 {
			if code, _ := j["error"].(string); code == "" {
				t.Fatalf("status %d without an error code: %s", resp.StatusCode, out)
			}
			if msg, _ := j["message"].(string); msg == "" {
				t.Fatalf("status %d without a message: %s", resp.StatusCode, out)
			}
			return
		}
		if resp.StatusCode != http.StatusAccepted || j["couponId"] != float64(1) || encoded || notJSON {
			t.Fatalf("success %d for couponId %q encoding %q type %q: %s", resp.StatusCode, couponID, encoding, ctype, out)
		}
	})
}

// isJSONType is the fuzz oracle of the Content-Type rule, written apart
// from the gateway's: application/json, optionally ; charset=utf-8.
func isJSONType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return false
		}
	}
	return true
}

// gzipLayers returns b gzipped layers times over.
func gzipLayers(b []byte, layers int) []byte {
	for range layers {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		b = buf.Bytes()
	}
	return b
}

// Keep the fakes honest against the interface.
var _ gateway.Store = fuzzStore{}
