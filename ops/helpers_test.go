package ops_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
	"github.com/segmentio/kafka-go"
)

// mustPrivateDB is testenv.MustOpenPrivateDB with the store on it: the raw
// pool breaks and reads the tables whole, as an operator's accident would.
func mustPrivateDB(tb testing.TB) (*mysql.DB, *sql.DB, string) {
	tb.Helper()
	raw, dsn := testenv.MustOpenPrivateDB(tb)
	return testenv.MustOpenStoreOn(tb, dsn), raw, dsn
}

func mustCreateCoupon(tb testing.TB, db *mysql.DB, total int64) int64 {
	tb.Helper()
	c := coupon.Coupon{Name: "ops-test", TotalQuantity: total}
	if err := db.CreateCoupon(context.Background(), &c); err != nil {
		tb.Fatalf("create coupon: %v", err)
	}
	return c.ID
}

func admissionMessage(tb testing.TB, couponID, userID, rank int64) kafka.Message {
	tb.Helper()
	v, err := coupon.MarshalAdmission(coupon.Admission{CouponID: couponID, UserID: userID, Rank: rank,
		AdmittedAt: time.Now().UTC().Truncate(time.Microsecond)})
	if err != nil {
		tb.Fatal(err)
	}
	return kafka.Message{Key: coupon.EventKey(couponID), Value: v}
}

func newWriter(topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(testenv.KafkaBrokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    5000,
		BatchBytes:   1_000_000,
		BatchTimeout: 2 * time.Millisecond,
	}
}

func mustProduce(tb testing.TB, topic string, msgs []kafka.Message) {
	tb.Helper()
	w := newWriter(topic)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for start := 0; start < len(msgs); start += 50_000 {
		if err := w.WriteMessages(ctx, msgs[start:min(start+50_000, len(msgs))]...); err != nil {
			tb.Fatalf("produce: %v", err)
		}
	}
}

type issueRow struct{ coupon, user, rank int64 }

func mustAllRows(tb testing.TB, db *sql.DB) []issueRow {
	tb.Helper()
	rs, err := db.QueryContext(context.Background(), "SELECT coupon_id, user_id, issue_rank FROM coupon_issues ORDER BY coupon_id, user_id")
	if err != nil {
		tb.Fatal(err)
	}
	defer rs.Close()
	var out []issueRow
	for rs.Next() {
		var r issueRow
		if err := rs.Scan(&r.coupon, &r.user, &r.rank); err != nil {
			tb.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func mustIssued(tb testing.TB, db *sql.DB) map[int64]int64 {
	tb.Helper()
	rs, err := db.QueryContext(context.Background(), "SELECT id, issued_quantity FROM coupons")
	if err != nil {
		tb.Fatal(err)
	}
	defer rs.Close()
	out := map[int64]int64{}
	for rs.Next() {
		var id, n int64
		if err := rs.Scan(&id, &n); err != nil {
			tb.Fatal(err)
		}
		out[id] = n
	}
	return out
}

func diffRows(a, b []issueRow) string {
	if slices.Equal(a, b) {
		return ""
	}
	am := map[issueRow]bool{}
	for _, r := range a {
		am[r] = true
	}
	bm := map[issueRow]bool{}
	for _, r := range b {
		bm[r] = true
	}
	var s string
	n := 0
	for _, r := range a {
		if !bm[r] && n < 5 {
			s += fmt.Sprintf(" missing %v;", r)
			n++
		}
	}
	for _, r := range b {
		if !am[r] && n < 10 {
			s += fmt.Sprintf(" extra %v;", r)
			n++
		}
	}
	return fmt.Sprintf("%d rows vs %d:%s", len(a), len(b), s)
}

func admissionMessageKV(couponID int64, value []byte) kafka.Message {
	return kafka.Message{Key: coupon.EventKey(couponID), Value: value}
}
