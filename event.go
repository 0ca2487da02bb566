package coupon

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Topic names and the wire format of the admitted-request topic.
const (
	DefaultTopic           = "coupon.admitted"     // one record per admission, keyed by coupon ID
	DefaultDeadLetterTopic = "coupon.admitted.dlq" // poison records, reason in the "reason" header
	DefaultSinkerGroup     = "coupon-sinker"       // the consumer group of the sinker processes
	EventVersion           = 1
)

// Admission is the record published for every admitted request: the unit the
// sinker turns into a coupon_issues row. Its Kafka key is EventKey(CouponID),
// so one coupon's admissions share a partition and keep their order.
type Admission struct {
	Version    int       `json:"v"`
	CouponID   int64     `json:"couponId"`
	UserID     int64     `json:"userId"`
	Rank       int64     `json:"rank"`
	AdmittedAt time.Time `json:"admittedAt"`
	RequestID  string    `json:"requestId,omitempty"`
}

// EventKey is the Kafka message key of a coupon's admissions.
func EventKey(couponID int64) []byte { return AppendEventKey(nil, couponID) }

// AppendEventKey appends EventKey(couponID) to dst.
func AppendEventKey(dst []byte, couponID int64) []byte { return strconv.AppendInt(dst, couponID, 10) }

// MarshalAdmission encodes a as a version-EventVersion JSON record, the
// JSON encoding/json would write for it (same fields, names and order). It
// is hand-built with appends because it runs once per accepted request.
func MarshalAdmission(a Admission) ([]byte, error) {
	if y := a.AdmittedAt.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("encode admission: admittedAt year %d outside [0,9999]", y)
	}
	b := make([]byte, 0, 128+len(a.RequestID))
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, EventVersion, 10)
	b = append(b, `,"couponId":`...)
	b = strconv.AppendInt(b, a.CouponID, 10)
	b = append(b, `,"userId":`...)
	b = strconv.AppendInt(b, a.UserID, 10)
	b = append(b, `,"rank":`...)
	b = strconv.AppendInt(b, a.Rank, 10)
	b = append(b, `,"admittedAt":"`...)
	b = a.AdmittedAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if a.RequestID != "" {
		b = append(b, `,"requestId":`...)
		b = appendJSONString(b, a.RequestID)
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string: printable ASCII other than
// the quote and the backslash as is, anything else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// UnmarshalAdmission decodes and validates a record; the error says why a
// record is poison (unknown version, bad JSON, missing or invalid field).
// A record as MarshalAdmission writes it is read by parseAdmission, which
// knows only that shape and is several times cheaper than encoding/json (it
// runs once per record in the sinker); anything else goes through
// encoding/json, and either way a record decodes to the same Admission.
func UnmarshalAdmission(b []byte) (Admission, error) {
	a, ok := parseAdmission(b)
	if !ok {
		a = Admission{}
		if err := json.Unmarshal(b, &a); err != nil {
			return a, fmt.Errorf("decode admission: %w", err)
		}
	}
	switch {
	case a.Version != EventVersion:
		return a, fmt.Errorf("decode admission: unsupported version %d", a.Version)
	case a.CouponID <= 0:
		return a, fmt.Errorf("decode admission: invalid couponId %d", a.CouponID)
	case a.UserID <= 0:
		return a, fmt.Errorf("decode admission: invalid userId %d", a.UserID)
	case a.Rank <= 0:
		return a, fmt.Errorf("decode admission: invalid rank %d", a.Rank)
	case a.AdmittedAt.IsZero():
		return a, fmt.Errorf("decode admission: missing admittedAt")
	}
	return a, nil
}

// parseAdmission reads a record of exactly MarshalAdmission's shape: its
// fields in its order, no spaces, integers without exponent or fraction, a
// request ID of printable ASCII without escapes. It decodes what
// encoding/json would (admittedAt through time.Time's own UnmarshalJSON)
// and reports !ok for anything else, which encoding/json then reads.
func parseAdmission(b []byte) (a Admission, ok bool) {
	var v int64
	if b, ok = cutLiteral(b, `{"v":`); ok {
		v, b, ok = cutInt(b)
	}
	a.Version = int(v)
	if ok {
		if b, ok = cutLiteral(b, `,"couponId":`); ok {
			a.CouponID, b, ok = cutInt(b)
		}
	}
	if ok {
		if b, ok = cutLiteral(b, `,"userId":`); ok {
			a.UserID, b, ok = cutInt(b)
		}
	}
	if ok {
		if b, ok = cutLiteral(b, `,"rank":`); ok {
			a.Rank, b, ok = cutInt(b)
		}
	}
	var at []byte
	if ok {
		if b, ok = cutLiteral(b, `,"admittedAt":`); ok {
			at, b, ok = cutString(b)
		}
	}
	if ok && a.AdmittedAt.UnmarshalJSON(at) != nil {
		return a, false
	}
	if rest, found := cutLiteral(b, `,"requestId":`); ok && found {
		var id []byte
		if id, b, ok = cutString(rest); ok {
			a.RequestID = string(id[1 : len(id)-1])
		}
	}
	return a, ok && string(b) == "}"
}

// cutLiteral cuts lit off the front of b.
func cutLiteral(b []byte, lit string) ([]byte, bool) {
	if len(b) < len(lit) || string(b[:len(lit)]) != lit {
		return b, false
	}
	return b[len(lit):], true
}

// cutInt cuts a JSON integer (no fraction, no exponent) that fits an int64
// off the front of b.
func cutInt(b []byte) (int64, []byte, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == digits || (b[digits] == '0' && i > digits+1) { // none, or a leading zero
		return 0, b, false
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return n, b[i:], err == nil
}

// cutString cuts a JSON string of printable ASCII without escapes off the
// front of b and returns it with its quotes.
func cutString(b []byte) ([]byte, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, b, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return b[:i+1], b[i+1:], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, b, false
		}
	}
	return nil, b, false
}
