package gateway_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/auth"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/ratelimit"
	"github.com/golang-jwt/jwt/v5"
)

// userToken signs a token for sub with key (nil key: alg none).
func userToken(t *testing.T, m jwt.SigningMethod, key any, sub string, exp time.Time, aud string) string {
	t.Helper()
	claims := jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(exp), Issuer: "https://id.example"}
	if aud != "" {
		claims.Audience = jwt.ClaimStrings{aud}
	}
	if key == nil {
		key = jwt.UnsafeAllowNoneSignatureType
	}
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func mustRSAKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestUserAuth: with an RSA key configured, the issue endpoint takes the
// user from the token; every bad token is 401 unauthorized and admits no one.
func TestUserAuth(t *testing.T) {
	key, pubPEM := mustRSAKey(t)
	other, _ := mustRSAKey(t)
	verifier, err := auth.New(auth.Config{PublicKey: pubPEM, Issuer: "https://id.example", Audience: "coupon"})
	if err != nil {
		t.Fatal(err)
	}
	h := mustStartGateway(t, harnessOpts{deps: func(d *gateway.Deps) { d.UserAuth = verifier }})
	id := h.createCoupon(map[string]any{"name": "auth", "totalQuantity": 100})
	path := fmt.Sprintf("/v1/coupons/%d/issues", id)
	hour := time.Now().Add(time.Hour)
	good := func(sub string) string { return userToken(t, jwt.SigningMethodRS256, key, sub, hour, "coupon") }
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	refused := []struct {
		name   string
		body   string
		header []string
		msg    string
	}{
		{"no token", `{"userId": 1}`, nil, "Missing bearer token"},
		{"not bearer", `{"userId": 1}`, []string{"Authorization", "Basic dTpw"}, "Bearer <JWT>"},
		{"malformed", `{"userId": 1}`, bearer("not.a.jwt"), "Malformed token"},
		{"forged: another key", `{"userId": 1}`, bearer(userToken(t, jwt.SigningMethodRS256, other, "1", hour, "coupon")), "signature is invalid"},
		{"forged: claims edited", `{"userId": 2}`, bearer(swapClaims(good("1"), good("2"))), "signature is invalid"},
		{"expired", `{"userId": 1}`, bearer(userToken(t, jwt.SigningMethodRS256, key, "1", time.Now().Add(-time.Hour), "coupon")), "expired"},
		{"alg none", `{"userId": 1}`, bearer(userToken(t, jwt.SigningMethodNone, nil, "1", hour, "coupon")), "wrong algorithm"},
		{"hs256 keyed with the public key", `{"userId": 1}`, bearer(userToken(t, jwt.SigningMethodHS256, []byte(pubPEM), "1", hour, "coupon")), "wrong algorithm"},
		{"wrong audience", `{"userId": 1}`, bearer(userToken(t, jwt.SigningMethodRS256, key, "1", hour, "billing")), "wrong audience"},
		{"sub not a user id", `{}`, bearer(good("alice")), "not a user ID"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", path, tt.body, tt.header...)
			want{http.StatusUnauthorized, coupon.EUNAUTHORIZED, tt.msg}.check(t, r)
		})
	}
	// A valid token of another user is not a credentials problem: 403.
	t.Run("body user differs", func(t *testing.T) {
		r := h.do("POST", path, `{"userId": 2}`, bearer(good("1"))...)
		want{http.StatusForbidden, coupon.EFORBIDDEN, "differs from the token's user 1"}.check(t, r)
	})

	accepted := []struct {
		name string
		body string
		user int64
	}{
		{"user from the token, no body", ``, 11},
		{"user from the token, empty object", `{}`, 12},
		{"body user equals the token's", `{"userId": 13}`, 13},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", path, tt.body, bearer(good(strconv.FormatInt(tt.user, 10)))...)
			if r.status != http.StatusAccepted || r.int("userId") != tt.user {
				t.Fatalf("got %d %s; want 202 for user %d", r.status, r.body, tt.user)
			}
		})
	}
	t.Run("same user again", func(t *testing.T) {
		r := h.do("POST", path, ``, bearer(good("11"))...)
		want{http.StatusConflict, coupon.EALREADY, "already"}.check(t, r)
	})
	t.Run("bad body still 400 with a good token", func(t *testing.T) {
		r := h.do("POST", path, `{"userId": "13"}`, bearer(good("13"))...)
		want{http.StatusBadRequest, coupon.EINVALID, "userId"}.check(t, r)
	})

	// With user auth on, a user's issues are read with that user's token
	// or the admin token only.
	reads := []string{fmt.Sprintf("/v1/coupons/%d/issues/11", id), "/v1/users/11/coupons"}
	for _, p := range reads {
		for _, tt := range []struct {
			name   string
			header []string
			msg    string
		}{
			{"no token", nil, "Missing bearer token"},
			{"forged token", bearer(userToken(t, jwt.SigningMethodRS256, other, "11", hour, "coupon")), "signature is invalid"},
			{"wrong admin token", bearer(testToken + "x"), "Malformed token"},
		} {
			t.Run("read "+p+" "+tt.name, func(t *testing.T) {
				want{http.StatusUnauthorized, coupon.EUNAUTHORIZED, tt.msg}.check(t, h.do("GET", p, nil, tt.header...))
			})
		}
		t.Run("read "+p+" another user's token", func(t *testing.T) {
			want{http.StatusForbidden, coupon.EFORBIDDEN, "user 12's: it may not read the issues of user 11"}.check(t, h.do("GET", p, nil, bearer(good("12"))...))
		})
		for name, header := range map[string][]string{"own token": bearer(good("11")), "admin token": bearer(testToken)} {
			t.Run("read "+p+" "+name, func(t *testing.T) {
				if r := h.do("GET", p, nil, header...); r.status != http.StatusOK {
					t.Fatalf("got %d %s; want 200", r.status, r.body)
				}
			})
		}
	}

	// Only the three accepted users were admitted: no refused request
	// reached the gate.
	r := h.do("GET", fmt.Sprintf("/v1/coupons/%d", id), nil)
	if r.status != http.StatusOK || r.int("admitted") != 3 {
		t.Fatalf("coupon after the auth cases: %d %s; want admitted 3", r.status, r.body)
	}
}

// swapClaims returns tok with the claims of donor: a validly signed header
// and signature around claims the key never signed.
func swapClaims(tok, donor string) string {
	p, d := strings.Split(tok, "."), strings.Split(donor, ".")
	return p[0] + "." + d[1] + "." + p[2]
}

// TestIssueRateLimit: over the limit an issue request is 429 rate_limited
// with Retry-After and admits no one; the limit counts per user, or per
// client IP when configured so.
func TestIssueRateLimit(t *testing.T) {
	for _, byIP := range []bool{false, true} {
		t.Run(fmt.Sprintf("byIP=%v", byIP), func(t *testing.T) {
			// Two requests an hour: no refill during the test.
			lim, err := ratelimit.Settings{Rate: "2/h", Burst: 2}.New()
			if err != nil {
				t.Fatal(err)
			}
			h := mustStartGateway(t, harnessOpts{
				cfg:  func(c *gateway.Config) { c.RateLimitByIP = byIP },
				deps: func(d *gateway.Deps) { d.Limiter = lim },
			})
			id := h.createCoupon(map[string]any{"name": "limited", "totalQuantity": 100})
			if r := h.issue(id, 1); r.status != http.StatusAccepted {
				t.Fatalf("first request: %d %s", r.status, r.body)
			}
			// The second counts too, whatever its answer.
			want{http.StatusConflict, coupon.EALREADY, "already"}.check(t, h.issue(id, 1))

			r := h.issue(id, 1)
			if byIP {
				r = h.issue(id, 2) // another user, same client
			}
			want{http.StatusTooManyRequests, coupon.ERATELIMITED, "retry in"}.check(t, r)
			secs, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || secs < 1700 || secs > 1800 { // half an hour until the next token
				t.Fatalf("Retry-After %q, want about 1800 seconds", r.header.Get("Retry-After"))
			}
			if byIP {
				if s := h.do("GET", fmt.Sprintf("/v1/coupons/%d/issues/2", id), nil); s.status != http.StatusNotFound {
					t.Fatalf("a rate-limited user was admitted: %d %s", s.status, s.body)
				}
			} else if r := h.issue(id, 2); r.status != http.StatusAccepted {
				t.Fatalf("another user is limited too: %d %s", r.status, r.body)
			}
			m := h.do("GET", "/metrics", nil)
			if !strings.Contains(string(m.body), `code="429"`) {
				t.Fatal("/metrics counts no 429")
			}
		})
	}
}
