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
func EventKey(couponID int64) []byte { return strconv.AppendInt(nil, couponID, 10) }

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
func UnmarshalAdmission(b []byte) (Admission, error) {
	var a Admission
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("decode admission: %w", err)
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
