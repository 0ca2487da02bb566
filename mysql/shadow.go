package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
)

// Tables of a replay: the shadow pair it loads, and the prefix of the
// previous issued table it keeps after the swap (coupon_issues_old_<UTC
// time>; never dropped by a later replay, dropped by DropOldIssues).
const (
	ShadowIssuesTable   = "coupon_issues_shadow"
	ShadowCountersTable = "coupon_counters_shadow"
	OldIssuesPrefix     = "coupon_issues_old_"
)

// Shadow is the pair of tables a replay loads with the sinker's guarded
// insert (InsertIssuesInto, so the same records are refused) before it
// swaps them in for the live issued rows.
type Shadow struct {
	db *DB
	Tables
}

// CreateShadow (re)creates the shadow pair: an empty copy of coupon_issues,
// and counters holding every coupon's total with nothing issued. Create it
// after reading the topic's end offsets: every coupon of a replayed record
// exists by then.
func (db *DB) CreateShadow(ctx context.Context) (*Shadow, error) {
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + ShadowIssuesTable + ", " + ShadowCountersTable,
		"CREATE TABLE " + ShadowIssuesTable + " LIKE " + LiveTables.Issues,
		"CREATE TABLE " + ShadowCountersTable + ` (
			id BIGINT NOT NULL PRIMARY KEY,
			total_quantity BIGINT NOT NULL,
			issued_quantity BIGINT NOT NULL DEFAULT 0,
			CONSTRAINT coupon_counters_shadow_within_total CHECK (issued_quantity >= 0 AND issued_quantity <= total_quantity)
		) ENGINE=InnoDB`,
		"INSERT INTO " + ShadowCountersTable + " (id, total_quantity) SELECT id, total_quantity FROM " + LiveTables.Counters,
	} {
		if _, err := db.db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare shadow tables: %w", err)
		}
	}
	return &Shadow{db: db, Tables: Tables{Issues: ShadowIssuesTable, Counters: ShadowCountersTable}}, nil
}

// Insert loads rows into the shadow pair with the guarded insert.
func (s *Shadow) Insert(ctx context.Context, rows []coupon.Issue) (InsertResult, error) {
	return s.db.InsertIssuesInto(ctx, s.Tables, rows)
}

// KeepIssueTimes copies issued_at from the live rows to the shadow rows of
// the same (coupon, user): a row that survives the rebuild keeps its time.
func (s *Shadow) KeepIssueTimes(ctx context.Context) error {
	if _, err := s.db.db.ExecContext(ctx, "UPDATE "+s.Issues+" s JOIN "+LiveTables.Issues+
		" o ON o.coupon_id = s.coupon_id AND o.user_id = s.user_id SET s.issued_at = o.issued_at"); err != nil {
		return fmt.Errorf("copy issue times: %w", err)
	}
	return nil
}

// Swap is what SwapIn did.
type Swap struct {
	OldTable     string      // where the previous rows are
	CarriedOver  int64       // rows kept from the previous table that the replayed range does not cover
	CarryRefused []Rejection // rows of the previous table the guard refused (still in OldTable)
	Coupons      int64       // coupons whose issued_quantity was recomputed
}

// SwapIn is a replay's maintenance step: an atomic RENAME puts the shadow
// rows live (the previous table becomes OldTable), then, in one transaction
// holding every coupon row's lock (which the sinker takes first in each of
// its transactions, so none is half-way), the rows of the previous table
// the replay did not cover (their source offset outside [first[p], end[p])
// of their partition: rows of the synchronous baselines, rows the running
// sinker wrote past the end offsets, rows of records lost to retention)
// are carried over and every coupon's issued_quantity is recounted. Should
// a recount exceed a total (the old table held rows the guard would
// refuse), that transaction is undone and the carry-over goes through the
// guarded insert instead, which refuses them and reports them. The shadow
// counters are dropped at the end.
func (s *Shadow) SwapIn(ctx context.Context, first, end []int64) (Swap, error) {
	var sw Swap
	now := time.Now().UTC()
	old := fmt.Sprintf("%s%s_%06d", OldIssuesPrefix, now.Format("20060102_150405"), now.Nanosecond()/1000)
	// One statement: atomic. It waits for the sinker's transaction in
	// flight; the sinker's next one writes the new table.
	if _, err := s.db.db.ExecContext(ctx, "RENAME TABLE "+LiveTables.Issues+" TO "+old+", "+s.Issues+" TO "+LiveTables.Issues); err != nil {
		return sw, fmt.Errorf("swap: %w", err)
	}
	sw.OldTable = old
	covered := make([]string, 0, len(end))
	for p := range end {
		covered = append(covered, fmt.Sprintf("(source_partition = %d AND source_offset >= %d AND source_offset < %d)", p, first[p], end[p]))
	}
	uncovered := "TRUE"
	if len(covered) > 0 {
		uncovered = "NOT (" + strings.Join(covered, " OR ") + ")"
	}
	handover := func(err error) error {
		return fmt.Errorf("swapped in, but %w; the previous rows are in %s: rerun replay, then carry them over by hand", err, old)
	}
	err := s.db.withCouponsLocked(ctx, func(tx *sql.Tx, coupons int64) error {
		const cols = "coupon_id, user_id, issue_rank, admitted_at, issued_at, source_partition, source_offset"
		r, err := tx.ExecContext(ctx, "INSERT INTO "+LiveTables.Issues+" ("+cols+") SELECT "+cols+" FROM "+old+
			" WHERE "+uncovered+" ON DUPLICATE KEY UPDATE "+LiveTables.Issues+".coupon_id = "+LiveTables.Issues+".coupon_id")
		if err != nil {
			return fmt.Errorf("carry over: %w", err)
		}
		carried, _ := r.RowsAffected()
		if err := recount(ctx, tx); err != nil {
			return err
		}
		sw.CarriedOver, sw.Coupons = carried, coupons
		return nil
	})
	if err == nil {
		return sw, s.dropCounters(ctx)
	}
	if !IsCheckViolation(err) {
		return sw, handover(err)
	}

	// Some coupon would exceed its total: recount the replayed rows alone,
	// then carry over through the guard.
	if err := s.db.withCouponsLocked(ctx, func(tx *sql.Tx, coupons int64) error {
		sw.Coupons = coupons
		return recount(ctx, tx)
	}); err != nil {
		return sw, handover(err)
	}
	var lastCoupon, lastUser int64 = -1 << 62, -1 << 62
	for {
		rows, err := s.db.oldRows(ctx, old, uncovered, lastCoupon, lastUser)
		if err != nil {
			return sw, fmt.Errorf("carry over: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		res, err := s.db.InsertIssues(ctx, rows)
		if err != nil {
			return sw, fmt.Errorf("carry over: %w", err)
		}
		sw.CarriedOver += res.Inserted
		sw.CarryRefused = append(sw.CarryRefused, res.Rejected...)
		last := rows[len(rows)-1]
		lastCoupon, lastUser = last.CouponID, last.UserID
	}
	return sw, s.dropCounters(ctx)
}

// oldRows returns the next 5,000 rows of the old table matching where,
// after (lastCoupon, lastUser) in key order.
func (db *DB) oldRows(ctx context.Context, old, where string, lastCoupon, lastUser int64) ([]coupon.Issue, error) {
	rs, err := db.db.QueryContext(ctx, `SELECT coupon_id, user_id, issue_rank, admitted_at, source_partition, source_offset FROM `+
		old+` WHERE (coupon_id > ? OR (coupon_id = ? AND user_id > ?)) AND `+where+
		` ORDER BY coupon_id, user_id LIMIT 5000`, lastCoupon, lastCoupon, lastUser)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var rows []coupon.Issue
	for rs.Next() {
		var r coupon.Issue
		if err := rs.Scan(&r.CouponID, &r.UserID, &r.Rank, &r.AdmittedAt, &r.Partition, &r.Offset); err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, rs.Err()
}

func (s *Shadow) dropCounters(ctx context.Context) error {
	if _, err := s.db.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+s.Counters); err != nil {
		return fmt.Errorf("drop %s: %w", s.Counters, err)
	}
	return nil
}

// DropOldIssues drops a previous issued table a replay kept (its name
// starts with OldIssuesPrefix; any other name is refused).
func (db *DB) DropOldIssues(ctx context.Context, table string) error {
	if !strings.HasPrefix(table, OldIssuesPrefix) || strings.ContainsAny(table, "` .;") {
		return fmt.Errorf("drop %q: not a previous issued table (%s<time>)", table, OldIssuesPrefix)
	}
	if _, err := db.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		return fmt.Errorf("drop %s: %w", table, err)
	}
	return nil
}

// withCouponsLocked runs f in a transaction that first locks every coupon
// row (FOR UPDATE, in id order, like the sinker), and commits if f succeeds.
func (db *DB) withCouponsLocked(ctx context.Context, f func(tx *sql.Tx, coupons int64) error) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	rs, err := tx.QueryContext(ctx, "SELECT id FROM "+LiveTables.Counters+" ORDER BY id FOR UPDATE")
	if err != nil {
		return fmt.Errorf("lock coupons: %w", err)
	}
	var n int64
	for rs.Next() {
		n++
	}
	err = rs.Err()
	rs.Close()
	if err != nil {
		return fmt.Errorf("lock coupons: %w", err)
	}
	if err := f(tx, n); err != nil {
		return err
	}
	return tx.Commit()
}

// recount sets every coupon's issued_quantity to its row count.
func recount(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE `+LiveTables.Counters+` c LEFT JOIN (SELECT coupon_id, COUNT(*) AS n FROM `+LiveTables.Issues+
		` GROUP BY coupon_id) x ON x.coupon_id = c.id SET c.issued_quantity = COALESCE(x.n, 0)`); err != nil {
		return fmt.Errorf("recount issued_quantity: %w", err)
	}
	return nil
}
