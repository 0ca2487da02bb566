package gateway_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
)

// TestCompressedBodiesRefused: a JSON route reads the bytes the client
// sent, never inflated: any Content-Encoding is 415, so a small gzip bomb
// (one that inflates to a valid 8 MiB issue body) neither admits anyone nor
// costs the gateway its memory. Same on the admin route.
func TestCompressedBodiesRefused(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	id := h.createCoupon(map[string]any{"name": "bomb", "totalQuantity": 10})
	bomb := func(body string, layers int) []byte {
		return gzipLayers(append([]byte(body), bytes.Repeat([]byte(" "), 8<<20)...), layers)
	}
	name := fmt.Sprintf("bomb-%d", testenv.RandomCouponID())
	issueBomb, createBomb := bomb(`{"userId": 1}`, 2), bomb(`{"name": "`+name+`", "totalQuantity": 1}`, 2)
	if len(issueBomb) > 4<<10 || len(createBomb) > 4<<10 {
		t.Fatalf("bombs of %d and %d bytes do not fit the 4 KiB body limit", len(issueBomb), len(createBomb))
	}
	admin := []string{"Authorization", "Bearer " + testToken}
	issuePath := fmt.Sprintf("/v1/coupons/%d/issues", id)
	for _, tt := range []struct {
		name, path, encoding string
		body                 []byte
		header               []string
	}{
		{"issue gzip, gzip", issuePath, "gzip, gzip", issueBomb, nil},
		{"issue gzip", issuePath, "gzip", gzipLayers([]byte(`{"userId": 2}`), 1), nil},
		{"issue GZIP", issuePath, "GZIP", gzipLayers([]byte(`{"userId": 3}`), 1), nil},
		{"issue deflate", issuePath, "deflate", issueBomb, nil},
		{"issue br", issuePath, "br", issueBomb, nil},
		{"issue identity", issuePath, "identity", []byte(`{"userId": 4}`), nil},
		{"issue unknown coding", issuePath, "zstd", issueBomb, nil},
		{"create gzip, gzip", "/v1/coupons", "gzip, gzip", createBomb, admin},
		{"create deflate", "/v1/coupons", "deflate", createBomb, admin},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", tt.path, tt.body, append([]string{"Content-Encoding", tt.encoding}, tt.header...)...)
			want{415, coupon.EUNSUPPORTED, "Content-Encoding"}.check(t, r)
			if got := r.header.Get("Accept-Encoding"); got != "identity" {
				t.Fatalf("415 with Accept-Encoding %q; want identity", got)
			}
		})
	}
	if r := h.do("GET", fmt.Sprintf("/v1/coupons/%d", id), nil); r.status != 200 || r.int("admitted") != 0 {
		t.Fatalf("after the refused bodies the coupon shows %d %s; want 0 admitted", r.status, r.body)
	}
	if created := h.couponsNamed(name); created != 0 {
		t.Fatalf("a compressed create body made %d coupons", created)
	}
}

// TestContentTypeChecked: a request with a body must say it is JSON.
func TestContentTypeChecked(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	id := h.createCoupon(map[string]any{"name": "ctype", "totalQuantity": 10})
	path := fmt.Sprintf("/v1/coupons/%d/issues", id)
	for _, tt := range []struct {
		name, ct string
		want     want
	}{
		{"absent", "", want{415, coupon.EUNSUPPORTED, "needs Content-Type: application/json"}},
		{"form", "application/x-www-form-urlencoded", want{415, coupon.EUNSUPPORTED, `Content-Type "application/x-www-form-urlencoded" is not accepted`}},
		{"text", "text/plain", want{415, coupon.EUNSUPPORTED, "text/plain"}},
		{"other charset", "application/json; charset=latin1", want{415, coupon.EUNSUPPORTED, "charset utf-8"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.check(t, h.do("POST", path, `{"userId": 1}`, "Content-Type", tt.ct))
			tt.want.check(t, h.do("POST", "/v1/coupons", `{"name": "ctype", "totalQuantity": 1}`,
				"Content-Type", tt.ct, "Authorization", "Bearer "+testToken))
		})
	}
	for i, ct := range []string{"application/json", "Application/JSON; charset=UTF-8"} {
		if r := h.do("POST", path, fmt.Sprintf(`{"userId": %d}`, 10+i), "Content-Type", ct); r.status != http.StatusAccepted {
			t.Fatalf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
	}
}

// TestStrictJSONBodies: unknown fields, keys of another case and repeated
// keys are refused naming the key, on every JSON body, and nothing is
// written: a typo can no longer open a drop at once.
func TestStrictJSONBodies(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	id := h.createCoupon(map[string]any{"name": "strict", "totalQuantity": 10})
	name := fmt.Sprintf("strict-%d", testenv.RandomCouponID())
	admin := []string{"Authorization", "Bearer " + testToken}
	create := func(fields string) string { return `{"name": "` + name + `", "totalQuantity": 10` + fields + `}` }
	for _, tt := range []struct {
		name, body string
		want       want
	}{
		{"typo of issueStartsAt", create(`, "issueStartAt": "2030-01-01T00:00:00Z"`), want{400, coupon.EINVALID, `Unknown field "issueStartAt"`}},
		{"key of another case", create(`, "IssueStartsAt": "2030-01-01T00:00:00Z"`), want{400, coupon.EINVALID, `did you mean "issueStartsAt"`}},
		{"repeated key", create(`, "totalQuantity": 1000000`), want{400, coupon.EINVALID, `"totalQuantity" appears more than once`}},
		{"window already ended", create(`, "issueEndsAt": "2020-01-01T00:00:00Z"`), want{400, coupon.EINVALID, "issueEndsAt 2020-01-01T00:00:00Z has already passed"}},
		{"window ends now", create(`, "issueEndsAt": "` + time.Now().UTC().Format(time.RFC3339) + `"`), want{400, coupon.EINVALID, "has already passed"}},
	} {
		t.Run("create "+tt.name, func(t *testing.T) { tt.want.check(t, h.do("POST", "/v1/coupons", tt.body, admin...)) })
	}
	if n := h.couponsNamed(name); n != 0 {
		t.Fatalf("refused create bodies made %d coupons", n)
	}
	path := fmt.Sprintf("/v1/coupons/%d/issues", id)
	for _, tt := range []struct {
		name, body string
		want       want
	}{
		{"unknown field", `{"userId": 1, "coupon": 2}`, want{400, coupon.EINVALID, `Unknown field "coupon"`}},
		{"key of another case", `{"UserId": 1}`, want{400, coupon.EINVALID, `did you mean "userId"`}},
		{"repeated key", `{"userId": 1, "userId": 2}`, want{400, coupon.EINVALID, `"userId" appears more than once`}},
	} {
		t.Run("issue "+tt.name, func(t *testing.T) { tt.want.check(t, h.do("POST", path, tt.body)) })
	}
	if r := h.do("GET", fmt.Sprintf("/v1/coupons/%d", id), nil); r.status != 200 || r.int("admitted") != 0 {
		t.Fatalf("refused issue bodies admitted someone: %d %s", r.status, r.body)
	}
}

// TestCanonicalPathIDs: an ID has one spelling; 026 is refused, not read
// as 26.
func TestCanonicalPathIDs(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	id := h.createCoupon(map[string]any{"name": "zeros", "totalQuantity": 10})
	if r := h.issue(id, 26); r.status != http.StatusAccepted {
		t.Fatalf("issue: %d %s", r.status, r.body)
	}
	for _, tt := range []struct {
		method, path, body, field string
	}{
		{"GET", fmt.Sprintf("/v1/coupons/0%d", id), "", "couponId"},
		{"POST", fmt.Sprintf("/v1/coupons/0%d/issues", id), `{"userId": 27}`, "couponId"},
		{"GET", fmt.Sprintf("/v1/coupons/00%d/issues/26", id), "", "couponId"},
		{"GET", fmt.Sprintf("/v1/coupons/%d/issues/026", id), "", "userId"},
		{"GET", "/v1/users/026/coupons", "", "userId"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			want{400, coupon.EINVALID, tt.field + " must be written without leading zeros"}.check(t, h.do(tt.method, tt.path, body))
		})
	}
	if r := h.do("GET", fmt.Sprintf("/v1/coupons/%d", id), nil); r.int("admitted") != 1 {
		t.Fatalf("the leading-zero issue was admitted: %s", r.body)
	}
}
