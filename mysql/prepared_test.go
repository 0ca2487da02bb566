package mysql_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
)

// fullRow is every column the bulk insert writes but the coupon.
type fullRow struct {
	user, rank int64
	admittedAt time.Time
	partition  int32
	offset     int64
}

func mustFullRows(tb testing.TB, db *mysql.DB, couponID int64) []fullRow {
	tb.Helper()
	rs, err := db.SQL().QueryContext(context.Background(), `SELECT user_id, issue_rank, admitted_at, source_partition, source_offset
		FROM coupon_issues WHERE coupon_id = ? ORDER BY user_id`, couponID)
	if err != nil {
		tb.Fatal(err)
	}
	defer rs.Close()
	var out []fullRow
	for rs.Next() {
		var r fullRow
		if err := rs.Scan(&r.user, &r.rank, &r.admittedAt, &r.partition, &r.offset); err != nil {
			tb.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestInsertPreparedMatchesLiteral: the prepared statements (chunks of 64
// to 512 rows, the rest as a literal) write exactly the rows, counts and
// rejections the VALUES literal writes, through every path of the bulk
// insert: fresh rows in sizes around the chunk bounds, a user repeated in a
// batch, a whole redelivery, a redelivery overlapping new rows (one INSERT
// per coupon), a batch past the total (the guard) and a spread batch.
func TestInsertPreparedMatchesLiteral(t *testing.T) {
	db := mustOpenStore(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 2, 3, 4, 5, 123456789, time.UTC) // nanoseconds: the column keeps microseconds
	mk := func(couponID, firstUser, firstRank int64, n int) []coupon.Issue {
		out := issues(couponID, firstUser, firstRank, n)
		for i := range out {
			out[i].AdmittedAt = at.Add(time.Duration(i) * 1001 * time.Nanosecond)
			out[i].Partition = int32(i % 12)
		}
		return out
	}
	type outcome struct {
		results []string
		rows    [][]fullRow
	}
	run := func(prepared bool) outcome {
		defer mysql.SetPrepared(prepared)()
		var o outcome
		record := func(ids []int64, res mysql.InsertResult, err error) {
			if err != nil {
				t.Fatalf("prepared=%v: %v", prepared, err)
			}
			rej := make([]string, len(res.Rejected))
			for i, r := range res.Rejected {
				rej[i] = fmt.Sprintf("%d:%d:%s", r.Issue.UserID, r.Issue.Rank, r.Reason)
			}
			o.results = append(o.results, fmt.Sprintf("inserted %d dup %d rejected %v", res.Inserted, res.Duplicates, rej))
			for _, id := range ids {
				o.rows = append(o.rows, mustFullRows(t, db, id))
			}
		}
		for _, n := range []int{mysql.MinPreparedRows - 1, mysql.MinPreparedRows, mysql.MinPreparedRows + 1,
			mysql.MaxPreparedRows + mysql.MinPreparedRows + 7, 2600} {
			id := mustCreateCoupon(t, db, 100_000, 0)
			batch := mk(id, 1, 1, n)
			batch = append(batch, coupon.Issue{CouponID: id, UserID: 5, Rank: int64(n + 9), AdmittedAt: at, Offset: 1}) // a repeat
			res, err := db.InsertIssues(ctx, batch)
			record([]int64{id}, res, err)
			res, err = db.InsertIssues(ctx, batch) // the whole batch again
			record([]int64{id}, res, err)
		}
		id := mustCreateCoupon(t, db, 1500, 0)
		res, err := db.InsertIssues(ctx, mk(id, 1, 1, 700))
		record([]int64{id}, res, err)
		res, err = db.InsertIssues(ctx, mk(id, 600, 600, 1100)) // 101 present, 999 new of which 199 over the total
		record([]int64{id}, res, err)

		var ids []int64
		for range 7 {
			ids = append(ids, mustCreateCoupon(t, db, 100_000, 0))
		}
		var spread []coupon.Issue
		for i, r := range mk(0, 1, 1, 1400) {
			r.CouponID = ids[i%len(ids)]
			spread = append(spread, r)
		}
		res, err = db.InsertIssues(ctx, spread)
		record(ids, res, err)
		return o
	}
	literal, prepared := run(false), run(true)
	if !slices.Equal(literal.results, prepared.results) {
		t.Fatalf("results differ:\nliteral  %v\nprepared %v", literal.results, prepared.results)
	}
	for i := range literal.rows {
		if !slices.Equal(literal.rows[i], prepared.rows[i]) {
			t.Fatalf("step %d: rows differ (literal %d rows, prepared %d)", i, len(literal.rows[i]), len(prepared.rows[i]))
		}
	}
	if got := prepared.rows[0][0].admittedAt; !got.Equal(at.Truncate(time.Microsecond)) {
		t.Fatalf("admitted_at %v, want %v", got, at.Truncate(time.Microsecond))
	}
}

// TestInsertStatementsPreparedOnce: the bulk insert prepares its statements
// once per connection and then only executes them, and it does so with a
// pool of one connection (preparing happens outside the transaction, which
// would otherwise wait forever for a second connection).
func TestInsertStatementsPreparedOnce(t *testing.T) {
	ctx := context.Background()
	db := mustOpenOneConn(t)
	status := func(name string) int64 { return sessionStatus(t, db, name) }
	id := mustCreateCoupon(t, db, 100_000, 0)
	prepares, executes := status("Com_stmt_prepare"), status("Com_stmt_execute")
	const n = mysql.MaxPreparedRows*2 + mysql.MinPreparedRows*3 + 5 // 2x512 + 128 + 64 + a literal of 5
	for i := range 3 {
		res, err := db.InsertIssues(ctx, issues(id, int64(i*n+1), int64(i*n+1), n))
		if err != nil || res.Inserted != n {
			t.Fatalf("batch %d: %+v, %v", i, res, err)
		}
	}
	if got := status("Com_stmt_prepare") - prepares; got != 4 {
		t.Errorf("%d statements prepared for 3 batches; want 4 (64, 128, 256 and 512 rows, once)", got)
	}
	if got := status("Com_stmt_execute") - executes; got != 3*4 {
		t.Errorf("%d executes for 3 batches; want 12 (512, 512, 128, 64 each)", got)
	}
	if rows, issued := mustRows(t, db, id); len(rows) != 3*n || issued != 3*n {
		t.Fatalf("%d rows, issued_quantity %d; want %d", len(rows), issued, 3*n)
	}
}

// mustOpenOneConn opens a store whose pool is one connection, so that the
// session's status counts every statement of the store; Close is a cleanup.
func mustOpenOneConn(tb testing.TB) *mysql.DB {
	tb.Helper()
	testenv.MustOpenDB(tb)
	db, err := mysql.Open(context.Background(), mysql.Config{DSN: testenv.MySQLDSN, MaxConns: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// sessionStatus reads a counter of SHOW SESSION STATUS.
func sessionStatus(tb testing.TB, db *mysql.DB, name string) int64 {
	tb.Helper()
	var k string
	var n int64
	if err := db.SQL().QueryRowContext(context.Background(), "SHOW SESSION STATUS LIKE '"+name+"'").Scan(&k, &n); err != nil {
		tb.Fatal(err)
	}
	return n
}
