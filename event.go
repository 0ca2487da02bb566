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

// MarshalAdmission encodes a as a version-EventVersion JSON record.
func MarshalAdmission(a Admission) ([]byte, error) {
	a.Version = EventVersion
	return json.Marshal(a)
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
