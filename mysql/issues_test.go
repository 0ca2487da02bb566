package mysql_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
)

func mustOpenStore(tb testing.TB) *mysql.DB {
	tb.Helper()
	return testenv.MustOpenStore(tb)
}

// mustCreateCoupon inserts a coupon with the given total and issued count.
func mustCreateCoupon(tb testing.TB, db *mysql.DB, total, issued int64) int64 {
	tb.Helper()
	r, err := db.SQL().ExecContext(context.Background(),
		`INSERT INTO coupons (name, total_quantity, issued_quantity) VALUES (?, ?, ?)`, "issues-test", total, issued)
	if err != nil {
		tb.Fatalf("create coupon: %v", err)
	}
	id, _ := r.LastInsertId()
	return id
}

func issues(couponID, firstUser, firstRank int64, n int) []coupon.Issue {
	at := time.Date(2025, 11, 24, 21, 0, 0, 123456000, time.UTC)
	out := make([]coupon.Issue, n)
	for i := range out {
		out[i] = coupon.Issue{CouponID: couponID, UserID: firstUser + int64(i), Rank: firstRank + int64(i),
			AdmittedAt: at.Add(time.Duration(i) * time.Millisecond), Partition: 3, Offset: 1000 + int64(i)}
	}
	return out
}

type rowState struct{ user, rank int64 }

func mustRows(tb testing.TB, db *mysql.DB, couponID int64) (rows []rowState, issued int64) {
	tb.Helper()
	ctx := context.Background()
	rs, err := db.SQL().QueryContext(ctx, `SELECT user_id, issue_rank FROM coupon_issues WHERE coupon_id = ? ORDER BY issue_rank`, couponID)
	if err != nil {
		tb.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var r rowState
		if err := rs.Scan(&r.user, &r.rank); err != nil {
			tb.Fatal(err)
		}
		rows = append(rows, r)
	}
	if err := db.SQL().QueryRowContext(ctx, `SELECT issued_quantity FROM coupons WHERE id = ?`, couponID).Scan(&issued); err != nil {
		tb.Fatal(err)
	}
	return rows, issued
}

func TestInsertIssues(t *testing.T) {
	db := mustOpenStore(t)
	ctx := context.Background()

	t.Run("fresh rows then a redelivery changes nothing", func(t *testing.T) {
		id := mustCreateCoupon(t, db, 100, 0)
		batch := issues(id, 1, 1, 10)
		res, err := db.InsertIssues(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 10 || res.Duplicates != 0 || len(res.Rejected) != 0 {
			t.Fatalf("first insert: %+v, want 10 inserted", res)
		}
		// RowsAffected counts only inserted rows (clientFoundRows=false):
		// the whole batch again plus 5 new rows inserts exactly 5.
		res, err = db.InsertIssues(ctx, append(batch, issues(id, 11, 11, 5)...))
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 5 || res.Duplicates != 10 {
			t.Fatalf("redelivery: %+v, want 5 inserted and 10 duplicates", res)
		}
		rows, issued := mustRows(t, db, id)
		if len(rows) != 15 || issued != 15 {
			t.Fatalf("got %d rows, issued_quantity %d; want 15 and 15", len(rows), issued)
		}
		for i, r := range rows {
			if r.user != int64(i+1) || r.rank != int64(i+1) {
				t.Fatalf("row %d = %+v", i, r)
			}
		}
	})

	t.Run("a user twice in one batch counts once", func(t *testing.T) {
		id := mustCreateCoupon(t, db, 100, 0)
		batch := issues(id, 1, 1, 3)
		batch = append(batch, coupon.Issue{CouponID: id, UserID: 2, Rank: 9, AdmittedAt: time.Now(), Partition: 0, Offset: 9})
		res, err := db.InsertIssues(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 3 || res.Duplicates != 1 {
			t.Fatalf("%+v, want 3 inserted, 1 duplicate", res)
		}
		rows, issued := mustRows(t, db, id)
		if issued != 3 || !slices.Equal(rows, []rowState{{1, 1}, {2, 2}, {3, 3}}) {
			t.Fatalf("rows %v issued %d", rows, issued)
		}
	})

	t.Run("unknown coupon is rejected, the others inserted", func(t *testing.T) {
		id := mustCreateCoupon(t, db, 100, 0)
		unknown := testenv.RandomCouponID()
		batch := append(issues(unknown, 1, 1, 4), issues(id, 1, 1, 4)...)
		res, err := db.InsertIssues(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 4 || len(res.Rejected) != 4 {
			t.Fatalf("%+v, want 4 inserted and 4 rejected", res)
		}
		for _, r := range res.Rejected {
			if r.Reason != mysql.ReasonUnknownCoupon || r.Issue.CouponID != unknown {
				t.Fatalf("rejection %+v", r)
			}
		}
		if _, issued := mustRows(t, db, id); issued != 4 {
			t.Fatalf("issued %d, want 4", issued)
		}
	})

	t.Run("the guard inserts up to the total, by rank, and rejects the rest", func(t *testing.T) {
		id := mustCreateCoupon(t, db, 10, 0)
		other := mustCreateCoupon(t, db, 100, 0)
		if _, err := db.InsertIssues(ctx, issues(id, 1, 1, 4)); err != nil {
			t.Fatal(err)
		}
		// Redelivered ranks 1..4, new ranks 5..15 for 10 slots: 6 fit.
		// The batch arrives out of rank order; the other coupon is unaffected.
		batch := issues(id, 1, 1, 15)
		slices.Reverse(batch)
		batch = append(batch, issues(other, 1, 1, 7)...)
		res, err := db.InsertIssues(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 6+7 || res.Duplicates != 4 || len(res.Rejected) != 5 || res.Retries < 1 {
			t.Fatalf("%+v, want 13 inserted, 4 duplicates, 5 rejected after a retry", res)
		}
		for i, r := range res.Rejected {
			if r.Reason != mysql.ReasonOverTotal || r.Issue.Rank != int64(11+i) {
				t.Fatalf("rejection %d: %+v, want rank %d over_total", i, r, 11+i)
			}
		}
		rows, issued := mustRows(t, db, id)
		if issued != 10 || len(rows) != 10 || rows[9].rank != 10 {
			t.Fatalf("rows %v issued %d, want ranks 1..10", rows, issued)
		}
		if rows, issued := mustRows(t, db, other); issued != 7 || len(rows) != 7 {
			t.Fatalf("other coupon: %d rows, issued %d", len(rows), issued)
		}
		// A sold-out coupon rejects everything new and still skips redeliveries.
		res, err = db.InsertIssues(ctx, issues(id, 1, 1, 12))
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 0 || res.Duplicates != 10 || len(res.Rejected) != 2 {
			t.Fatalf("sold out: %+v", res)
		}
	})

	t.Run("redelivery mixed with new rows of several coupons counts each coupon", func(t *testing.T) {
		a, b := mustCreateCoupon(t, db, 100, 0), mustCreateCoupon(t, db, 100, 0)
		if _, err := db.InsertIssues(ctx, issues(a, 1, 1, 3)); err != nil {
			t.Fatal(err)
		}
		res, err := db.InsertIssues(ctx, append(issues(a, 1, 1, 5), issues(b, 1, 1, 4)...))
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 6 || res.Duplicates != 3 {
			t.Fatalf("%+v, want 6 inserted, 3 duplicates", res)
		}
		if _, issued := mustRows(t, db, a); issued != 5 {
			t.Errorf("coupon a issued %d, want 5", issued)
		}
		if _, issued := mustRows(t, db, b); issued != 4 {
			t.Errorf("coupon b issued %d, want 4", issued)
		}
	})

	t.Run("two coupons over their totals in one batch", func(t *testing.T) {
		a, b, c := mustCreateCoupon(t, db, 3, 0), mustCreateCoupon(t, db, 2, 0), mustCreateCoupon(t, db, 10, 0)
		res, err := db.InsertIssues(ctx, append(append(issues(a, 1, 1, 5), issues(b, 1, 1, 4)...), issues(c, 1, 1, 3)...))
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 3+2+3 || len(res.Rejected) != 2+2 {
			t.Fatalf("%+v, want 8 inserted, 4 rejected", res)
		}
		for id, want := range map[int64]int64{a: 3, b: 2, c: 3} {
			if rows, issued := mustRows(t, db, id); issued != want || int64(len(rows)) != want || rows[len(rows)-1].rank != want {
				t.Errorf("coupon %d: rows %v issued %d, want ranks 1..%d", id, rows, issued, want)
			}
		}
	})

	t.Run("large batch is chunked", func(t *testing.T) {
		id := mustCreateCoupon(t, db, 100_000, 0)
		res, err := db.InsertIssues(ctx, issues(id, 1, 1, 25_000))
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != 25_000 {
			t.Fatalf("%+v", res)
		}
		if _, issued := mustRows(t, db, id); issued != 25_000 {
			t.Fatalf("issued %d", issued)
		}
	})
}

// TestInsertIssuesSpread: a batch spread over many coupons, the many-drops
// shape, is written in one transaction (no re-plan) whether its coupons
// have the same number of rows or not (the counter UPDATE's constant and
// its per-bit IN lists), each counter raised by exactly its coupon's rows; writers whose batches share coupons, in any order, never
// deadlock and together count every row once.
func TestInsertIssuesSpread(t *testing.T) {
	db := mustOpenStore(t)
	ctx := context.Background()
	coupons := func(n int) []int64 {
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = mustCreateCoupon(t, db, 1000, 0)
		}
		return ids
	}
	for _, tt := range []struct {
		name string
		rows func(i int) int // rows of the i-th coupon
	}{
		{"one row per coupon", func(int) int { return 1 }},
		{"three rows per coupon", func(int) int { return 3 }},
		{"one to four rows per coupon", func(i int) int { return i%4 + 1 }},
		{"one or six rows per coupon", func(i int) int { return 1 + 5*(i%2) }}, // excess 5: bits 1 and 4, not 2
		{"two to a hundred rows per coupon", func(i int) int { return 2 + i*i%99 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ids := coupons(40)
			var batch []coupon.Issue
			want := 0
			for i := len(ids) - 1; i >= 0; i-- { // not in id order
				batch = append(batch, issues(ids[i], 1, 1, tt.rows(i))...)
				want += tt.rows(i)
			}
			res, err := db.InsertIssues(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			if res.Inserted != int64(want) || res.Duplicates != 0 || len(res.Rejected) != 0 || res.Retries != 0 {
				t.Fatalf("%+v; want %d inserted in one transaction", res, want)
			}
			for i, id := range ids {
				if rows, issued := mustRows(t, db, id); len(rows) != tt.rows(i) || issued != int64(tt.rows(i)) {
					t.Errorf("coupon %d: %d rows, issued_quantity %d; want %d", id, len(rows), issued, tt.rows(i))
				}
			}
		})
	}

	t.Run("writers sharing coupons never deadlock", func(t *testing.T) {
		ids := coupons(30)
		const writers, batches = 4, 15
		errs := make(chan error, writers)
		for w := range writers {
			go func() {
				for b := range batches {
					var batch []coupon.Issue
					for i := range ids {
						// each writer its own users, coupons in a different
						// order and with different counts per batch
						j := (i*(w+1) + b) % len(ids)
						batch = append(batch, issues(ids[j], int64(w*100_000+b*100+1), int64(b*10+1), (i+w+b)%3+1)...)
					}
					if _, err := db.InsertIssues(ctx, batch); err != nil {
						errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range writers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			if rows, issued := mustRows(t, db, id); int64(len(rows)) != issued {
				t.Errorf("coupon %d: %d rows, issued_quantity %d", id, len(rows), issued)
			}
		}
	})
}

// BenchmarkInsertIssues compares the VALUES literal built with strconv
// appends against the prepared statements (the default), 2,600-row batches
// of one coupon (a hot coupon's at ~26k req/s): rows/s, and MariaDB's CPU
// per row (from /proc, so with a server on this machine) and this
// process's, which a run of both modes compares.
func BenchmarkInsertIssues(b *testing.B) {
	db := mustOpenStore(b)
	ctx := context.Background()
	serverCPU := mysqlServerCPU(b, db)
	for _, mode := range []struct {
		name     string
		prepared bool
	}{{"literal", false}, {"prepared", true}} {
		b.Run(mode.name, func(b *testing.B) {
			defer mysql.SetPrepared(mode.prepared)()
			id := mustCreateCoupon(b, db, 100_000_000, 0)
			const batch = 2600
			b.ResetTimer()
			t0, s0, c0 := time.Now(), serverCPU(), processCPU()
			var rows int64
			for i := 0; b.Loop(); i++ {
				res, err := db.InsertIssues(ctx, issues(id, int64(i*batch+1), int64(i*batch+1), batch))
				if err != nil {
					b.Fatal(err)
				}
				rows += res.Inserted
			}
			rate := float64(rows) / time.Since(t0).Seconds()
			server := float64((serverCPU() - s0).Microseconds()) / float64(rows)
			client := float64((processCPU() - c0).Microseconds()) / float64(rows)
			b.ReportMetric(rate, "rows/s")
			b.ReportMetric(server, "mariadb-µs/row")
			b.ReportMetric(client, "client-µs/row")
			fmt.Printf("insert %-9s %9.0f rows/s  MariaDB %.2f µs/row  this process %.2f µs/row\n", mode.name, rate, server, client)
		})
	}
}

// mysqlServerCPU returns a func reading the CPU time the store's server has
// used, from /proc (the server runs on this machine; 0 if it does not).
func mysqlServerCPU(tb testing.TB, db *mysql.DB) func() time.Duration {
	var pidFile string
	if err := db.SQL().QueryRow("SELECT @@pid_file").Scan(&pidFile); err != nil {
		tb.Fatal(err)
	}
	pid, _ := os.ReadFile(pidFile)
	return func() time.Duration {
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		if err != nil {
			return 0
		}
		// utime and stime, the 14th and 15th fields, in clock ticks (100 Hz).
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(utime+stime) * 10 * time.Millisecond
	}
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInsertIssuesShape: 5,000-row batches of random-looking users
// spread over 1 or 24 coupons, against the raw multi-row INSERT of the same
// rows (no guard), in one run.
func BenchmarkInsertIssuesShape(b *testing.B) {
	db := mustOpenStore(b)
	ctx := context.Background()
	const batch, batches = 5000, 20
	for _, coupons := range []int{1, 24} {
		b.Run(fmt.Sprintf("coupons=%d", coupons), func(b *testing.B) {
			mk := func() [][]coupon.Issue {
				var ids []int64
				for range coupons {
					ids = append(ids, mustCreateCoupon(b, db, 100_000_000, 0))
				}
				out := make([][]coupon.Issue, batches)
				n := 0
				for i := range out {
					for j := range batch {
						r := int64(n/coupons + 1)
						out[i] = append(out[i], coupon.Issue{CouponID: ids[j%coupons], UserID: (r*2654435761)%1_000_000_000_000 + 1,
							Rank: r, AdmittedAt: time.Now(), Partition: 0, Offset: int64(n)})
						n++
					}
				}
				return out
			}
			for b.Loop() {
				raw := mk()
				t0 := time.Now()
				for _, rows := range raw {
					q, _ := mysql.BuildInsert(nil, "coupon_issues", slices.SortedFunc(slices.Values(rows), func(x, y coupon.Issue) int {
						if x.CouponID != y.CouponID {
							return int(x.CouponID - y.CouponID)
						}
						return cmpInt(x.UserID, y.UserID)
					}))
					if _, err := db.SQL().ExecContext(ctx, string(q)); err != nil {
						b.Fatal(err)
					}
				}
				ceiling := float64(batch*batches) / time.Since(t0).Seconds()
				guardedRows := mk()
				t0 = time.Now()
				for _, rows := range guardedRows {
					if _, err := db.InsertIssues(ctx, rows); err != nil {
						b.Fatal(err)
					}
				}
				guarded := float64(batch*batches) / time.Since(t0).Seconds()
				fmt.Printf("coupons/batch %2d: raw %7.0f rows/s  guarded %7.0f rows/s  ratio %.2f\n", coupons, ceiling, guarded, guarded/ceiling)
			}
		})
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
