package gateway

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coupondrop/coupon"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

func TestDecodeIssueRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    int64
		wantMsg string // substring of the message; "" means success
	}{
		{"plain", `{"userId": 42}`, 42, ""},
		{"max int64", `{"userId": 9223372036854775807}`, 9223372036854775807, ""},
		{"unknown field", `{"userId": 7, "extra": [1, {"a": null}]}`, 0, `Unknown field "extra"`},
		{"unknown field first", `{"extra": {"userId": 1}, "userId": 7}`, 0, `Unknown field "extra"`},
		{"key case differs", `{"USERID": 3}`, 0, `case-sensitive, did you mean "userId"`},
		{"escaped key", `{"user\u0049d": 3}`, 3, ""},
		{"duplicate key", `{"userId": 44, "userId": 45}`, 0, `"userId" appears more than once`},
		{"duplicate key escaped", `{"userId": 44, "user\u0049d": 44}`, 0, `"userId" appears more than once`},
		{"surrounding whitespace", " \n{\"userId\":1}\t", 1, ""},
		{"empty body", ``, 0, "body is empty"},
		{"blank body", "  \n", 0, "body is empty"},
		{"malformed JSON", `{"userId": 42`, 0, "not valid JSON"},
		{"trailing garbage", `{"userId": 42} x`, 0, "not valid JSON"},
		{"array", `[42]`, 0, "must be a JSON object"},
		{"string body", `"42"`, 0, "must be a JSON object"},
		{"null body", `null`, 0, "must be a JSON object"},
		{"number body", `42`, 0, "must be a JSON object"},
		{"missing userId", `{}`, 0, "userId is required"},
		{"null userId", `{"userId": null}`, 0, "userId is required"},
		{"float", `{"userId": 1.5}`, 0, "userId must be an integer"},
		{"integral float", `{"userId": 1.0}`, 0, "userId must be an integer"},
		{"exponent", `{"userId": 1e3}`, 0, "userId must be an integer"},
		{"string", `{"userId": "42"}`, 0, "userId must be a JSON number, not a string"},
		{"bool", `{"userId": true}`, 0, "userId must be an integer"},
		{"object", `{"userId": {}}`, 0, "userId must be an integer"},
		{"zero", `{"userId": 0}`, 0, "userId must be an integer from 1 to 9223372036854775807"},
		{"negative", `{"userId": -5}`, 0, "userId must be an integer from 1"},
		{"overflow", `{"userId": 9223372036854775808}`, 0, "userId must be an integer from 1"},
		{"huge", `{"userId": 99999999999999999999999999999}`, 0, "userId must be an integer from 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeIssueRequest([]byte(tt.body))
			if tt.wantMsg == "" {
				if err != nil || got != tt.want {
					t.Fatalf("got %d, %v; want %d", got, err, tt.want)
				}
				return
			}
			if coupon.ErrorCode(err) != coupon.EINVALID || !strings.Contains(coupon.ErrorMessage(err), tt.wantMsg) {
				t.Fatalf("got %d, code %q message %q; want invalid_request with %q", got, coupon.ErrorCode(err), coupon.ErrorMessage(err), tt.wantMsg)
			}
		})
	}
}

func TestDecodeCreateRequest(t *testing.T) {
	long := strings.Repeat("é", coupon.MaxNameLen+1)
	tests := []struct {
		name    string
		body    string
		wantMsg string
	}{
		{"minimal", `{"name": "a", "totalQuantity": 1}`, ""},
		{"full", `{"name": "a", "totalQuantity": 100000000, "issueStartsAt": "2030-01-01T00:00:00Z", "issueEndsAt": "2030-01-02T00:00:00+09:00", "strategy": "db-lock"}`, ""},
		{"max name", `{"name": "` + strings.Repeat("é", coupon.MaxNameLen) + `", "totalQuantity": 1}`, ""},
		{"empty body", ``, "body is empty"},
		{"malformed", `{"name": `, "not valid JSON"},
		{"missing name", `{"totalQuantity": 1}`, "name is required"},
		{"empty name", `{"name": "", "totalQuantity": 1}`, "name is required"},
		{"blank name", `{"name": "   ", "totalQuantity": 1}`, "name must not be blank"},
		{"long name", `{"name": "` + long + `", "totalQuantity": 1}`, "name must be at most 200"},
		{"name not string", `{"name": 5, "totalQuantity": 1}`, "name must be a JSON string"},
		{"missing total", `{"name": "a"}`, "totalQuantity is required"},
		{"zero total", `{"name": "a", "totalQuantity": 0}`, "totalQuantity must be an integer from 1 to 100000000"},
		{"total too big", `{"name": "a", "totalQuantity": 100000001}`, "totalQuantity must be an integer from 1 to 100000000"},
		{"total float", `{"name": "a", "totalQuantity": 10.5}`, "totalQuantity must be an integer"},
		{"total string", `{"name": "a", "totalQuantity": "10"}`, "totalQuantity must be a JSON number"},
		{"bad start", `{"name": "a", "totalQuantity": 1, "issueStartsAt": "tomorrow"}`, "issueStartsAt must be an RFC 3339 time"},
		{"empty start", `{"name": "a", "totalQuantity": 1, "issueStartsAt": ""}`, "issueStartsAt must be an RFC 3339 time"},
		{"start not string", `{"name": "a", "totalQuantity": 1, "issueStartsAt": 17}`, "issueStartsAt must be a JSON string"},
		{"bad end", `{"name": "a", "totalQuantity": 1, "issueEndsAt": "2030-13-01T00:00:00Z"}`, "issueEndsAt must be an RFC 3339 time"},
		{"ancient end", `{"name": "a", "totalQuantity": 1, "issueEndsAt": "0001-01-01T00:00:00Z"}`, "issueEndsAt must be between the years"},
		{"end before start", `{"name": "a", "totalQuantity": 1, "issueStartsAt": "2030-01-02T00:00:00Z", "issueEndsAt": "2030-01-01T00:00:00Z"}`, "issueEndsAt must not be before issueStartsAt"},
		{"unknown strategy", `{"name": "a", "totalQuantity": 1, "strategy": "fast"}`, "strategy must be one of"},
		{"strategy not string", `{"name": "a", "totalQuantity": 1, "strategy": 1}`, "strategy must be a JSON string"},
		{"typo of a field", `{"name": "a", "totalQuantity": 1, "issueStartAt": "2030-01-01T00:00:00Z"}`, `Unknown field "issueStartAt"`},
		{"key case differs", `{"Name": "a", "totalQuantity": 1}`, `did you mean "name"`},
		{"duplicate name", `{"name": "a", "totalQuantity": 1, "name": "b"}`, `"name" appears more than once`},
		{"window ended", `{"name": "a", "totalQuantity": 1, "issueEndsAt": "2020-01-01T00:00:00Z"}`, "issueEndsAt 2020-01-01T00:00:00Z has already passed"},
		{"window ends now", `{"name": "a", "totalQuantity": 1, "issueEndsAt": "2026-01-01T00:00:00Z"}`, "has already passed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeCreateRequest([]byte(tt.body), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			if tt.wantMsg == "" {
				if err != nil || c.Name == "" || c.TotalQuantity < 1 || !c.Strategy.Valid() {
					t.Fatalf("got %+v, %v", c, err)
				}
				return
			}
			if coupon.ErrorCode(err) != coupon.EINVALID || !strings.Contains(coupon.ErrorMessage(err), tt.wantMsg) {
				t.Fatalf("got code %q message %q; want invalid_request with %q", coupon.ErrorCode(err), coupon.ErrorMessage(err), tt.wantMsg)
			}
		})
	}
}

func TestParsePathID(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"1", true}, {"9223372036854775807", true}, {"10", true}, {"0012", false}, {"00", false}, {"01", false},
		{"", false}, {"0", false}, {"-1", false}, {"+1", false}, {"1.5", false}, {"abc", false},
		{"9223372036854775808", false}, {"1e3", false}, {" 1", false}, {"１", false},
	} {
		_, err := parsePathID(tt.in, "couponId")
		if (err == nil) != tt.ok {
			t.Errorf("parsePathID(%q) = %v; want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && (coupon.ErrorCode(err) != coupon.EINVALID || !strings.Contains(coupon.ErrorMessage(err), "couponId")) {
			t.Errorf("parsePathID(%q): %v does not name couponId", tt.in, err)
		}
	}
}

// FuzzDecodeIssueRequest: no input panics, every refusal is an
// invalid_request naming the body or userId, every success is in range.
func FuzzDecodeIssueRequest(f *testing.F) {
	for _, s := range []string{`{"userId": 42}`, `{"userId": 1.5}`, `{"userId": "1"}`, `[]`, ``, `{"userId": -0}`,
		`{"userId": 9223372036854775808}`, `{"userId":1,"userId":2}`, `{"USERID": 3}`, "{\"userId\": 1}\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, err := decodeIssueRequest(body)
		if err == nil {
			if id < 1 {
				t.Fatalf("accepted userId %d from %q", id, body)
			}
			return
		}
		msg := coupon.ErrorMessage(err)
		if coupon.ErrorCode(err) != coupon.EINVALID || !(strings.Contains(msg, "userId") || strings.Contains(msg, "body")) {
			t.Fatalf("body %q: code %q message %q", body, coupon.ErrorCode(err), msg)
		}
		_ = utf8.ValidString(msg)
	})
}

// FuzzFastUserID: the fast path agrees with the full decoder whenever it
// answers.
func FuzzFastUserID(f *testing.F) {
	for _, s := range []string{`{"userId":42}`, ` { "userId" : 7 } `, `{"userId":9223372036854775807}`, `{"userId":9223372036854775808}`,
		`{"userId":0}`, `{"userId":007}`, `{"userId":1}x`, `{"userId":1,"a":2}`, `{"userid":1}`, "{\"userId\":1}\n", `{"userId":-1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := fastUserID(body)
		if !ok {
			return
		}
		var req issueRequest
		if err := decodeObject(body, &req, ""); err != nil {
			t.Fatalf("fast path took %q (%d) but the decoder refuses it: %v", body, fast, err)
		}
		slow, err := jsonInt(req.UserID, "userId", 1, math.MaxInt64)
		if err != nil || slow != fast {
			t.Fatalf("%q: fast %d, decoder %d, %v", body, fast, slow, err)
		}
	})
}

func TestIsJSONMediaType(t *testing.T) {
	for _, tt := range []struct {
		ct string
		ok bool
	}{
		{"application/json", true}, {"Application/JSON", true}, {" application/json ", true},
		{"application/json; charset=utf-8", true}, {"application/json;charset=UTF-8", true}, {`application/json; charset="utf-8"`, true},
		{"", false}, {"text/plain", false}, {"application/x-www-form-urlencoded", false}, {"application/jsonx", false},
		{"application/json; charset=latin1", false}, {"application/json; v=1", false}, {"application/json;", false},
		{"application/problem+json", false}, {"application/json, text/plain", false},
	} {
		if got := isJSONMediaType([]byte(tt.ct)); got != tt.ok {
			t.Errorf("isJSONMediaType(%q) = %v; want %v", tt.ct, got, tt.ok)
		}
	}
}

// strictProbe is a request struct of every kind decodeObject fills.
type strictProbe struct {
	A json.RawMessage `json:"a"`
	B json.RawMessage `json:"b,omitempty"`
	N *int            `json:"n"`
}

func TestDecodeObjectStrict(t *testing.T) {
	tests := []struct {
		name, body, wantMsg string
		a, b                string
	}{
		{"both", `{"a": [1, {"x": "}"}], "b": "\"q\""}`, "", `[1, {"x": "}"}]`, `"\"q\""`},
		{"one", ` {"b":null} `, "", "", "null"},
		{"empty object", `{}`, "", "", ""},
		{"nested keys are values", `{"a": {"a": 1, "a": 2, "zzz": 3}}`, "", `{"a": 1, "a": 2, "zzz": 3}`, ""},
		{"typed field", `{"n": 5, "a": true}`, "", "true", ""},
		{"typed field wrong type", `{"n": "5"}`, "n has the wrong type", "", ""},
		{"unknown", `{"a": 1, "c": 2}`, `Unknown field "c" in the request body (known fields: a, b, n)`, "", ""},
		{"long unknown is shortened", `{"` + strings.Repeat("k", 100) + `": 1}`, `"` + strings.Repeat("k", maxEcho) + `..."`, "", ""},
		{"case", `{"A": 1}`, `did you mean "a"`, "", ""},
		{"duplicate", `{"a": 1, "b": 2, "a": 1}`, `"a" appears more than once`, "", ""},
		{"invalid", `{"a": 1,}`, "not valid JSON", "", ""},
		{"two values", `{"a": 1} {"a": 2}`, "not valid JSON", "", ""},
		{"array", `[{"a": 1}]`, "must be a JSON object", "", ""},
		{"empty", " \r\n", "body is empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p strictProbe
			err := decodeObject([]byte(tt.body), &p, `{"a": 1}`)
			if tt.wantMsg == "" {
				if err != nil || string(p.A) != tt.a || string(p.B) != tt.b {
					t.Fatalf("got a=%q b=%q, %v; want a=%q b=%q", p.A, p.B, err, tt.a, tt.b)
				}
				return
			}
			if coupon.ErrorCode(err) != coupon.EINVALID || !strings.Contains(coupon.ErrorMessage(err), tt.wantMsg) {
				t.Fatalf("got code %q message %q; want invalid_request with %q", coupon.ErrorCode(err), coupon.ErrorMessage(err), tt.wantMsg)
			}
		})
	}
}

// FuzzDecodeObject: the strict walk never panics, accepts only a JSON
// object without unknown or repeated keys, and gives each field exactly the
// member encoding/json finds.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{"a": 1}`, `{"a": "}\"", "b": [{"a": 2}]}`, `{"a":1,"a":2}`, `{"A": 1}`, `{"c": 1}`, `{"a\u0000": 1}`,
		`{"\u0061": {}}`, `{}`, `[]`, ``, `{"a": 1`, `{"b": null, "a": -0.5e3}`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p strictProbe
		if err := decodeObject(body, &p, `{}`); err != nil {
			if coupon.ErrorCode(err) != coupon.EINVALID {
				t.Fatalf("%q: code %q", body, coupon.ErrorCode(err))
			}
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%q accepted but encoding/json refuses it: %v", body, err)
		}
		for k := range m {
			if k != "a" && k != "b" && k != "n" {
				t.Fatalf("%q accepted with unknown key %q", body, k)
			}
		}
		if !bytes.Equal(p.A, m["a"]) || !bytes.Equal(p.B, m["b"]) {
			t.Fatalf("%q: a=%q b=%q; encoding/json has %q %q", body, p.A, p.B, m["a"], m["b"])
		}
	})
}

// BenchmarkIssueBody: the issue route's body read and decode, strict
// (jsonBody: raw bytes, Content-Encoding and Content-Type checked) against
// fiber's c.Body() in the same run. Both must be 0 allocs/op.
//
//	go test ./gateway -run '^$' -bench IssueBody -benchmem
func BenchmarkIssueBody(b *testing.B) {
	app := fiber.New()
	var fctx fasthttp.RequestCtx
	fctx.Request.Header.SetMethod(fiber.MethodPost)
	fctx.Request.Header.SetContentType("application/json; charset=utf-8")
	fctx.Request.SetBody([]byte(`{"userId":1234567}`))
	c := app.AcquireCtx(&fctx)
	defer app.ReleaseCtx(c)
	b.Run("fiber-c.Body", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeIssueRequest(c.Body()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("strict-jsonBody", func(b *testing.B) {
		for b.Loop() {
			body, err := jsonBody(c)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := decodeIssueRequest(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
