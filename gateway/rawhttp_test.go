package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/gateway"
)

// rawDial opens a connection to h's gateway and writes request as is.
func rawDial(t *testing.T, h *harness, request string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// rawAnswer writes request as is on a new connection and reads one answer,
// which must have a JSON body; raw is every byte of it.
func rawAnswer(t *testing.T, h *harness, request string) (r response, raw []byte) {
	t.Helper()
	var got bytes.Buffer
	resp, err := http.ReadResponse(bufio.NewReader(io.TeeReader(rawDial(t, h, request), &got)), nil)
	if err != nil {
		t.Fatalf("not an HTTP answer (%v): %q", err, got.Bytes())
	}
	defer resp.Body.Close()
	r = response{status: resp.StatusCode, header: resp.Header}
	r.body, _ = io.ReadAll(resp.Body)
	if err := json.Unmarshal(r.body, &r.json); err != nil {
		t.Fatalf("answer %d is not JSON: %q", r.status, r.body)
	}
	return r, got.Bytes()
}

// TestRawHTTPAnswersAreJSON: requests refused before routing, by fiber or
// by fasthttp's parser, are answered in the JSON contract too, and no
// answer repeats the request's Authorization header.
func TestRawHTTPAnswersAreJSON(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	const secret = "raw-secret-9f8e7d6c5b4a"
	authz := "Authorization: Bearer " + secret + "\r\n"
	for _, tt := range []struct {
		name, request string
		want          want
	}{
		{"unknown method", "FOO /v1/coupons HTTP/1.1\r\nHost: x\r\n" + authz + "\r\n", want{405, coupon.EMETHOD, `Method "FOO"`}},
		{"lower-case method", "get /healthz HTTP/1.1\r\nHost: x\r\n" + authz + "\r\n", want{405, coupon.EMETHOD, `Method "get"`}},
		{"header line without a colon", "GET /healthz HTTP/1.1\r\nHost: x\r\n" + authz + "no colon here\r\n\r\n", want{400, coupon.EINVALID, "not valid HTTP/1.1"}},
		{"bad Content-Length", "POST /v1/coupons HTTP/1.1\r\nHost: x\r\n" + authz + "Content-Length: ten\r\n\r\n", want{400, coupon.EINVALID, "not valid HTTP/1.1"}},
		{"two Content-Lengths", "POST /v1/coupons HTTP/1.1\r\nHost: x\r\n" + authz + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", want{400, coupon.EINVALID, "not valid HTTP/1.1"}},
		{"bad request line", "GET\r\n" + authz + "\r\n", want{400, coupon.EINVALID, ""}},
		{"headers too large", "GET /healthz HTTP/1.1\r\nHost: x\r\n" + authz + "X-Pad: " + strings.Repeat(secret, 600) + "\r\n\r\n", want{400, coupon.EINVALID, "headers are too large"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, raw := rawAnswer(t, h, tt.request)
			if strings.Contains(string(raw), secret) {
				t.Fatalf("the answer repeats the Authorization header:\n%s", raw)
			}
			tt.want.check(t, r)
		})
	}
}

// TestUnusedConnectionClosedSilently: a connection that sends nothing
// before the read timeout is closed without an answer; one that stops
// within its request is answered in the JSON contract.
func TestUnusedConnectionClosedSilently(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{cfg: func(c *gateway.Config) { c.ReadTimeout = 300 * time.Millisecond }})
	t.Run("nothing sent", func(t *testing.T) {
		raw, err := io.ReadAll(rawDial(t, h, ""))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the gateway kept the unused connection open past the read timeout")
		}
		if len(raw) != 0 {
			t.Fatalf("an unused connection got an answer:\n%s", raw)
		}
	})
	for _, tt := range []struct{ name, request string }{
		{"stopped within the headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n"},
		{"stopped within the body", "POST /v1/coupons/1/issues HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"user"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := rawAnswer(t, h, tt.request)
			want{408, coupon.ETIMEOUT, "not received in time"}.check(t, r)
		})
	}
}
