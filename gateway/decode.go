package gateway

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
)

// maxEcho bounds how much of a bad value an error message repeats.
const maxEcho = 40

// parsePathID parses a numeric path parameter in its one canonical form:
// decimal digits only, 1..2^63-1, no leading zero (026 is refused, not 26).
func parsePathID(s, field string) (int64, error) {
	if s == "" {
		return 0, coupon.Errorf(coupon.EINVALID, "%s is required.", field)
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, coupon.Errorf(coupon.EINVALID, "%s must be written without leading zeros (got %q).", field, echo(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, coupon.Errorf(coupon.EINVALID, "%s must be a positive integer (got %q).", field, echo(s))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, coupon.Errorf(coupon.EINVALID, "%s must be an integer from 1 to %d (got %q).", field, int64(math.MaxInt64), echo(s))
	}
	return n, nil
}

// issueRequest is the body of POST /v1/coupons/{id}/issues. Fields stay raw
// so that each gets a strict check and a message naming it.
type issueRequest struct {
	UserID json.RawMessage `json:"userId"`
}

// decodeIssueRequest returns the userId of an issue request body (strict:
// see decodeObject).
func decodeIssueRequest(body []byte) (int64, error) {
	if id, ok := fastUserID(body); ok {
		return id, nil
	}
	var req issueRequest
	if err := decodeObject(body, &req, `{"userId": 42}`); err != nil {
		return 0, err
	}
	return jsonInt(req.UserID, "userId", 1, math.MaxInt64)
}

// fastUserID parses the common body {"userId":N} (JSON whitespace allowed,
// N in 1..2^63-1 without leading zeros) without encoding/json; anything
// else returns ok false and takes the full decoder, which gives the same
// answer for these bodies (FuzzFastUserID checks).
func fastUserID(b []byte) (id int64, ok bool) {
	const key = `"userId"`
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	if len(b)-i < len(key) || string(b[i:i+len(key)]) != key {
		return 0, false
	}
	i = skipSpace(b, i+len(key))
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if n := i - start; n == 0 || n > 19 || b[start] == '0' {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b[start:i]), 10, 64)
	if err != nil {
		return 0, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != '}' || skipSpace(b, i+1) != len(b) {
		return 0, false
	}
	return v, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// createRequest is the body of POST /v1/coupons.
type createRequest struct {
	Name          json.RawMessage `json:"name"`
	TotalQuantity json.RawMessage `json:"totalQuantity"`
	IssueStartsAt json.RawMessage `json:"issueStartsAt"`
	IssueEndsAt   json.RawMessage `json:"issueEndsAt"`
	Strategy      json.RawMessage `json:"strategy"`
}

// decodeCreateRequest returns the coupon a create body describes, validated
// at now: a window that has already ended is refused (such a coupon could
// never be issued).
func decodeCreateRequest(body []byte, now time.Time) (*coupon.Coupon, error) {
	var req createRequest
	if err := decodeObject(body, &req, `{"name": "Spring drop", "totalQuantity": 1000}`); err != nil {
		return nil, err
	}
	var c coupon.Coupon
	var err error
	if c.Name, err = jsonString(req.Name, "name", true); err != nil {
		return nil, err
	}
	if c.Name != "" && strings.TrimSpace(c.Name) == "" {
		return nil, coupon.Errorf(coupon.EINVALID, "name must not be blank.")
	}
	if c.TotalQuantity, err = jsonInt(req.TotalQuantity, "totalQuantity", 1, coupon.MaxTotalQuantity); err != nil {
		return nil, err
	}
	if c.IssueStartsAt, err = jsonTime(req.IssueStartsAt, "issueStartsAt"); err != nil {
		return nil, err
	}
	if c.IssueEndsAt, err = jsonTime(req.IssueEndsAt, "issueEndsAt"); err != nil {
		return nil, err
	}
	s, err := jsonString(req.Strategy, "strategy", false)
	if err != nil {
		return nil, err
	}
	c.Strategy = coupon.Strategy(s)
	if c.Strategy == "" {
		c.Strategy = coupon.StrategyAsync
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.IssueEndsAt != nil && !now.Before(*c.IssueEndsAt) {
		return nil, coupon.Errorf(coupon.EINVALID, "issueEndsAt %s has already passed: the coupon could never be issued.", c.IssueEndsAt.Format(time.RFC3339))
	}
	return &c, nil
}

func absent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// jsonInt parses a JSON integer in min..max: strings, floats, exponents,
// booleans and out-of-range values are refused with a message naming field.
func jsonInt(raw json.RawMessage, field string, minV, maxV int64) (int64, error) {
	if absent(raw) {
		return 0, coupon.Errorf(coupon.EINVALID, "%s is required.", field)
	}
	rangeErr := coupon.Errorf(coupon.EINVALID, "%s must be an integer from %d to %d (got %s).", field, minV, maxV, echo(string(raw)))
	switch c := raw[0]; {
	case c == '"':
		return 0, coupon.Errorf(coupon.EINVALID, "%s must be a JSON number, not a string (got %s).", field, echo(string(raw)))
	case c != '-' && (c < '0' || c > '9'):
		return 0, coupon.Errorf(coupon.EINVALID, "%s must be an integer (got %s).", field, echo(string(raw)))
	}
	if bytes.ContainsAny(raw, ".eE") {
		return 0, coupon.Errorf(coupon.EINVALID, "%s must be an integer, without a fraction or exponent (got %s).", field, echo(string(raw)))
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < minV || n > maxV {
		return 0, rangeErr
	}
	return n, nil
}

// jsonString parses a JSON string; absent is "" unless required.
func jsonString(raw json.RawMessage, field string, required bool) (string, error) {
	if absent(raw) {
		if required {
			return "", coupon.Errorf(coupon.EINVALID, "%s is required.", field)
		}
		return "", nil
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", coupon.Errorf(coupon.EINVALID, "%s must be a JSON string (got %s).", field, echo(string(raw)))
	}
	return s, nil
}

// jsonTime parses an optional RFC 3339 time within MySQL DATETIME's range.
func jsonTime(raw json.RawMessage, field string) (*time.Time, error) {
	s, err := jsonString(raw, field, false)
	if err != nil || s == "" {
		if err == nil && !absent(raw) {
			err = coupon.Errorf(coupon.EINVALID, "%s must be an RFC 3339 time like 2030-01-02T15:04:05Z (got an empty string).", field)
		}
		return nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, coupon.Errorf(coupon.EINVALID, "%s must be an RFC 3339 time like 2030-01-02T15:04:05Z (got %q).", field, echo(s))
	}
	if y := t.UTC().Year(); y < 1970 || y > 9998 {
		return nil, coupon.Errorf(coupon.EINVALID, "%s must be between the years 1970 and 9998 (got %q).", field, echo(s))
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t, nil
}

// echo shortens a bad value for an error message.
func echo(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	return s[:maxEcho] + "..."
}

// decodePatchRequest returns the change a PATCH body asks for: any of
// name, totalQuantity, issueStartsAt and issueEndsAt (null clears a time);
// the fields are a create body's, strategy refused with a message of its
// own. The body is strict like every other (decodeObject); a body changing
// nothing is refused.
func decodePatchRequest(body []byte) (coupon.Patch, error) {
	var p coupon.Patch
	var req createRequest
	const example = `{"issueEndsAt": "2030-01-02T15:04:05Z"}`
	if err := decodeObject(body, &req, example); err != nil {
		return p, err
	}
	if req.Strategy != nil {
		return p, coupon.Errorf(coupon.EINVALID, "strategy cannot be changed after creation.")
	}
	if req.Name != nil {
		name, err := jsonString(req.Name, "name", true)
		if err != nil {
			return p, err
		}
		if strings.TrimSpace(name) == "" {
			return p, coupon.Errorf(coupon.EINVALID, "name must not be blank.")
		}
		p.Name = &name
	}
	if req.TotalQuantity != nil {
		n, err := jsonInt(req.TotalQuantity, "totalQuantity", 1, coupon.MaxTotalQuantity)
		if err != nil {
			return p, err
		}
		p.TotalQuantity = &n
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *coupon.TimePatch
	}{{"issueStartsAt", req.IssueStartsAt, &p.IssueStartsAt}, {"issueEndsAt", req.IssueEndsAt, &p.IssueEndsAt}} {
		if f.raw != nil {
			t, err := jsonTime(f.raw, f.name)
			if err != nil {
				return p, err
			}
			*f.dst = coupon.TimePatch{Set: true, Value: t}
		}
	}
	if p.Empty() {
		return p, coupon.Errorf(coupon.EINVALID, "The body changes nothing; send one or more of name, totalQuantity, issueStartsAt, issueEndsAt, like %s.", example)
	}
	return p, nil
}
