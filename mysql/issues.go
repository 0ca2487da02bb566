package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/coupondrop/coupon"
)

// Reasons a row of a batch is refused by InsertIssues; they name the
// dead-letter reason the sinker records.
const (
	ReasonUnknownCoupon = "unknown_coupon" // no such coupon row
	ReasonOverTotal     = "over_total"     // inserting it would push issued_quantity past total_quantity
)

// Tables names the two tables the guarded insert writes: the issued rows
// (the coupon_issues layout) and the per-coupon counters (columns id,
// total_quantity, issued_quantity, with a CHECK that issued_quantity never
// exceeds total_quantity). The sinker writes LiveTables; replay writes a
// shadow pair with the same code.
type Tables struct {
	Issues   string
	Counters string
}

// LiveTables are the tables the application reads.
var LiveTables = Tables{Issues: "coupon_issues", Counters: "coupons"}

// Rejection is a row InsertIssues refused, and why (a Reason* constant).
type Rejection struct {
	Issue  coupon.Issue
	Reason string
}

// InsertResult tells what one InsertIssues call did.
type InsertResult struct {
	Inserted   int64       // rows actually inserted (issued_quantity was raised by as much)
	Duplicates int64       // rows already present (or repeated in the batch): changed nothing
	Rejected   []Rejection // rows refused, in batch order of coupon then rank
	// Retries counts transactions rolled back and re-planned: the CHECK
	// guard refused a coupon's update, or new rows met already present ones.
	Retries int
}

// Statement limits. A VALUES literal stays well under max_allowed_packet
// (16 MiB on MariaDB by default, 64 MiB on MySQL 8); the prepared
// statements stay far under the protocol's 65,535 placeholders.
const (
	maxStmtBytes      = 4 << 20
	maxRowsPerStmt    = 10_000
	maxGuardAttempts  = 8
	existingChunkSize = 5_000
)

// The bulk insert sends its rows in prepared statements of minPreparedRows,
// twice that, ... up to maxPreparedRows rows (COM_STMT_EXECUTE: binary
// arguments, no SQL to parse), the largest that fits first, and the last
// rows, fewer than minPreparedRows, as a VALUES literal. MariaDB parsing a
// literal of a few thousand rows (the lexer, an Item per value, each
// timestamp's string converted) cost about a fifth of its CPU per issued row
// (BenchmarkInsertIssues). A table's statements are prepared once per pool
// connection and kept until Close: 64+128+256+512 rows of 6 placeholders.
const (
	minPreparedRows = 64
	maxPreparedRows = minPreparedRows << (preparedSizes - 1) // 512 rows, 3,072 placeholders
	preparedSizes   = 4
)

// usePrepared selects the prepared statements; without it every row goes in
// the VALUES literal (the tests and benchmarks compare both).
var usePrepared = true

// insertStmts are one table's prepared INSERTs: stmts[i] covers
// minPreparedRows<<i rows.
type insertStmts struct{ stmts [preparedSizes]*sql.Stmt }

func (s *insertStmts) close() {
	for _, st := range s.stmts {
		if st != nil {
			_ = st.Close()
		}
	}
}

// insertStatements returns table's prepared INSERTs, preparing them the
// first time. It must be called outside a transaction: preparing takes a
// pool connection, which a caller holding the last one would wait for
// forever.
func (db *DB) insertStatements(ctx context.Context, table string) (*insertStmts, error) {
	if !usePrepared {
		return nil, nil
	}
	db.mu.Lock()
	s := db.inserts[table]
	db.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s = &insertStmts{}
	for i := range s.stmts {
		st, err := db.db.PrepareContext(ctx, preparedInsert(table, minPreparedRows<<i))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("bulk insert: prepare the %d-row insert: %w", minPreparedRows<<i, err)
		}
		s.stmts[i] = st
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if old := db.inserts[table]; old != nil { // prepared meanwhile by another caller
		s.close()
		return old, nil
	}
	if db.inserts == nil {
		db.inserts = map[string]*insertStmts{}
	}
	db.inserts[table] = s
	return s, nil
}

// InsertIssues writes rows into the live tables; see InsertIssuesInto.
func (db *DB) InsertIssues(ctx context.Context, rows []coupon.Issue) (InsertResult, error) {
	return db.InsertIssuesInto(ctx, LiveTables, rows)
}

// InsertIssuesInto is the sinker's guarded, idempotent bulk insert, in one
// transaction: every row is inserted unless its (coupon, user) is already
// there (a redelivery changes nothing and raises no error), and each
// coupon's issued_quantity is raised by the rows actually inserted. When the
// CHECK constraint refuses a coupon's update (the rows would exceed its
// total), the transaction is rolled back whole and re-planned: the coupon's
// new rows beyond the remaining supply, by rank, are rejected with
// ReasonOverTotal and the rest inserted. Rows of a coupon that does not exist
// are rejected with ReasonUnknownCoupon. The batch is never half-written: on
// an error nothing was committed and the call may be retried as is.
//
// The common case (every coupon exists, no row is there yet, the guard
// accepts) costs four round trips whatever the number of coupons: BEGIN, one
// UPDATE raising every counter by its coupon's rows, one multi-row INSERT,
// COMMIT (insertAllNew). Otherwise that transaction is rolled back and the
// batch planned under the counters' locks (insertOnce): BEGIN, lock the
// counters, INSERT, UPDATE, COMMIT; only when some but not all rows are
// already there (a redelivery overlapping new records) is the batch redone
// with one INSERT per coupon, to learn each coupon's count.
//
// The DSN must not set clientFoundRows=true (RowsAffected must count inserted
// rows only).
func (db *DB) InsertIssuesInto(ctx context.Context, t Tables, rows []coupon.Issue) (InsertResult, error) {
	groups, dups := groupIssues(rows)
	if len(groups) == 0 {
		return InsertResult{}, nil
	}
	stmts, err := db.insertStatements(ctx, t.Issues)
	if err != nil {
		return InsertResult{}, err
	}
	r, ok, err := db.insertAllNew(ctx, t, stmts, groups)
	if err != nil {
		return InsertResult{}, err
	}
	if ok {
		r.Duplicates += dups
		return r, nil
	}
	p := plan{careful: map[int64]bool{}}
	for attempt := 1; ; attempt++ { // the first transaction was insertAllNew's
		r, refused, err := db.insertOnce(ctx, t, stmts, groups, p)
		switch {
		case err == nil:
			r.Duplicates += dups
			r.Retries = attempt
			return r, nil
		case errors.Is(err, errMixedDuplicates):
			p.perCoupon = true
		case len(refused) == 0:
			return InsertResult{}, err
		case attempt >= maxGuardAttempts:
			return InsertResult{}, fmt.Errorf("bulk insert: still refused by the guard after %d attempts: %w", attempt, err)
		default:
			for _, id := range refused {
				p.careful[id] = true
			}
		}
	}
}

// insertAllNew writes the batch on the assumption that holds for nearly
// every batch: every coupon exists, none of the rows is there yet, and each
// coupon's total has room for its rows. One UPDATE raises each counter by its
// coupon's rows; it locks the counter rows in id order (a range scan of the
// sorted IN list), as lockCounters does, so writers still serialise per
// coupon and never deadlock on the counters, and the CHECK constraint still
// guards each total. Then one INSERT writes every row, and the transaction
// commits if it inserted them all. If a coupon is missing, the guard refuses
// or a row was already there, it rolls back and reports !ok: nothing was
// written and the caller plans the batch under the counters' locks.
//
// It spares the locking read of the counters: with a batch spread over
// hundreds of coupons (1,000 coupons round robin, ~250 rows a batch) that
// read and a CASE in the counter UPDATE (before counterUpdate) cost MariaDB
// ~3 of ~13 µs per row; with one hot coupon they are negligible either way.
func (db *DB) insertAllNew(ctx context.Context, t Tables, stmts *insertStmts, groups []couponGroup) (res InsertResult, ok bool, err error) {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return res, false, fmt.Errorf("bulk insert: begin: %w", err)
	}
	defer func() {
		if !ok {
			_ = tx.Rollback()
		}
	}()
	counts := make([]couponCount, len(groups))
	var all []coupon.Issue
	for i, g := range groups {
		counts[i] = couponCount{g.couponID, int64(len(g.rows))}
		all = append(all, g.rows...)
	}
	r, err := tx.ExecContext(ctx, counterUpdate(t, counts))
	switch {
	case IsCheckViolation(err):
		return res, false, nil // a total has no room: plan under the locks
	case err != nil:
		return res, false, fmt.Errorf("bulk insert: raise issued_quantity: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return res, false, fmt.Errorf("bulk insert: rows affected: %w", err)
	} else if n != int64(len(counts)) {
		return res, false, nil // a coupon does not exist
	}
	n, err := insertRows(ctx, tx, t, stmts, all)
	if err != nil {
		return res, false, err
	}
	if n != int64(len(all)) {
		return res, false, nil // rows already there: the counts are wrong
	}
	if err := tx.Commit(); err != nil {
		return res, false, fmt.Errorf("bulk insert: commit: %w", err)
	}
	return InsertResult{Inserted: n}, true, nil
}

// couponCount is how much to raise a coupon's issued_quantity by.
type couponCount struct{ couponID, n int64 }

// counterUpdate is one UPDATE raising each coupon's issued_quantity by its
// count; counts are in id order and every count is positive. The increment
// is the smallest count plus, for each bit of a coupon's excess over it,
// that bit's value where the coupon is in the bit's IN list: a constant
// when every count is the same (one hot coupon, or a batch smaller than the
// coupons it spreads over), a few IN lists (each looked up by binary search)
// otherwise, where a CASE over the coupons costs the coupons times the
// coupons (~4 us per row at 500 coupons).
func counterUpdate(t Tables, counts []couponCount) string {
	low, high := counts[0].n, counts[0].n
	for _, c := range counts {
		low, high = min(low, c.n), max(high, c.n)
	}
	q := make([]byte, 0, 128+len(counts)*24)
	q = append(q, "UPDATE "...)
	q = append(q, t.Counters...)
	q = append(q, " SET issued_quantity = issued_quantity + "...)
	q = strconv.AppendInt(q, low, 10)
	for bit := int64(1); bit <= high-low; bit <<= 1 {
		var in []byte
		for _, c := range counts {
			if (c.n-low)&bit != 0 {
				if len(in) > 0 {
					in = append(in, ',')
				}
				in = strconv.AppendInt(in, c.couponID, 10)
			}
		}
		if len(in) == 0 {
			continue // no coupon's excess has this bit
		}
		q = append(q, " + "...)
		q = strconv.AppendInt(q, bit, 10)
		q = append(q, " * (id IN ("...)
		q = append(q, in...)
		q = append(q, "))"...)
	}
	q = append(q, " WHERE id IN ("...)
	q = appendIDs(q, counts, func(c couponCount) int64 { return c.couponID })
	return string(append(q, ')'))
}

// appendIDs appends the IDs of xs to b, comma-separated: a literal IN list
// (integers only, so inlining them is safe; one round trip, no prepare).
func appendIDs[T any](b []byte, xs []T, id func(T) int64) []byte {
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id(x), 10)
	}
	return b
}

// plan is how insertOnce writes a batch.
type plan struct {
	perCoupon bool           // one INSERT per coupon (counts per coupon from RowsAffected)
	careful   map[int64]bool // coupons the guard refused once: fit their new rows to the supply first
}

// errMixedDuplicates: the single INSERT met some, not all, rows already
// present, so the per-coupon counts are unknown; redo per coupon.
var errMixedDuplicates = errors.New("bulk insert: some rows already present")

// couponGroup is one coupon's rows of a batch, one per user, sorted by user:
// the primary key's order (coupon_id, user_id) and the user index's, so
// InnoDB walks both B-trees in one direction per statement.
type couponGroup struct {
	couponID int64
	rows     []coupon.Issue
}

// groupIssues splits rows by coupon (ascending, the lock order), keeps the
// lowest-ranked row of a user that appears more than once (the first of
// equal ones) and sorts each group by user; it returns the groups and how
// many repeats it dropped. One sort by (coupon, user, rank) puts a user's
// repeats next to each other, behind the one kept.
func groupIssues(rows []coupon.Issue) ([]couponGroup, int64) {
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b coupon.Issue) int {
		if c := cmp.Compare(a.CouponID, b.CouponID); c != 0 {
			return c
		}
		if c := cmp.Compare(a.UserID, b.UserID); c != 0 {
			return c
		}
		return cmp.Compare(a.Rank, b.Rank)
	})
	kept := slices.CompactFunc(sorted, func(a, b coupon.Issue) bool { return a.CouponID == b.CouponID && a.UserID == b.UserID })
	var groups []couponGroup
	for start := 0; start < len(kept); {
		end := start + 1
		for end < len(kept) && kept[end].CouponID == kept[start].CouponID {
			end++
		}
		groups = append(groups, couponGroup{couponID: kept[start].CouponID, rows: kept[start:end:end]})
		start = end
	}
	return groups, int64(len(rows) - len(kept))
}

type counter struct{ total, issued int64 }

// insertOnce runs one transaction. When the guard refuses the counters'
// update it rolls back and returns the coupons that would exceed their total.
func (db *DB) insertOnce(ctx context.Context, t Tables, stmts *insertStmts, groups []couponGroup, p plan) (res InsertResult, refused []int64, err error) {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return res, nil, fmt.Errorf("bulk insert: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	// Lock the batch's coupon rows in id order: writers following this
	// protocol serialise per coupon and never deadlock on the counters.
	counters, err := lockCounters(ctx, tx, t, groups)
	if err != nil {
		return res, nil, err
	}
	// What to write, per known coupon.
	type write struct {
		couponID int64
		rows     []coupon.Issue
		inserted int64
	}
	writes := make([]write, 0, len(groups))
	var all []coupon.Issue // every row to write, in (coupon, user) order
	for _, g := range groups {
		c, ok := counters[g.couponID]
		if !ok {
			for _, r := range g.rows {
				res.Rejected = append(res.Rejected, Rejection{Issue: r, Reason: ReasonUnknownCoupon})
			}
			continue
		}
		rows := g.rows
		if p.careful[g.couponID] {
			var surplus []coupon.Issue
			var existing int64
			rows, surplus, existing, err = planWithinTotal(ctx, tx, t, g, c)
			if err != nil {
				return res, nil, err
			}
			res.Duplicates += existing
			for _, r := range surplus {
				res.Rejected = append(res.Rejected, Rejection{Issue: r, Reason: ReasonOverTotal})
			}
		}
		writes = append(writes, write{couponID: g.couponID, rows: rows})
		if !p.perCoupon {
			all = append(all, rows...)
		}
	}

	if p.perCoupon {
		for i := range writes {
			if writes[i].inserted, err = insertRows(ctx, tx, t, stmts, writes[i].rows); err != nil {
				return res, nil, fmt.Errorf("bulk insert: coupon %d: %w", writes[i].couponID, err)
			}
		}
	} else if len(all) > 0 {
		n, err := insertRows(ctx, tx, t, stmts, all)
		if err != nil {
			return res, nil, err
		}
		switch n {
		case int64(len(all)): // all new
			for i := range writes {
				writes[i].inserted = int64(len(writes[i].rows))
			}
		case 0: // all present: nothing to count
		default:
			return res, nil, errMixedDuplicates
		}
	}

	// The guard: the CHECK constraint refuses an issued_quantity over the
	// total, whatever the gate admitted. One UPDATE for every coupon.
	var counts []couponCount
	for _, w := range writes {
		res.Inserted += w.inserted
		res.Duplicates += int64(len(w.rows)) - w.inserted
		if w.inserted > 0 {
			counts = append(counts, couponCount{w.couponID, w.inserted})
		}
	}
	if len(counts) > 0 {
		if _, err = tx.ExecContext(ctx, counterUpdate(t, counts)); err != nil {
			if !IsCheckViolation(err) {
				return res, nil, fmt.Errorf("bulk insert: raise issued_quantity: %w", err)
			}
			// Which coupons: the counters are locked, so the arithmetic is
			// exact; if it finds none, suspect every coupon written.
			for _, w := range writes {
				if c := counters[w.couponID]; w.inserted > 0 && c.issued+w.inserted > c.total {
					refused = append(refused, w.couponID)
				}
			}
			if len(refused) == 0 {
				for _, w := range writes {
					if w.inserted > 0 {
						refused = append(refused, w.couponID)
					}
				}
			}
			return res, refused, fmt.Errorf("bulk insert: coupons %v: new rows exceed the total: %w", refused, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return res, nil, fmt.Errorf("bulk insert: commit: %w", err)
	}
	return res, nil, nil
}

// insertRows inserts rows (skipping those present) in as few statements as
// the limits allow (prepared ones with stmts, see minPreparedRows) and
// returns how many were inserted.
func insertRows(ctx context.Context, tx *sql.Tx, t Tables, stmts *insertStmts, rows []coupon.Issue) (int64, error) {
	var inserted int64
	var buf []byte
	var args []any
	var txStmts [preparedSizes]*sql.Stmt // stmts bound to tx, once each
	for start := 0; start < len(rows); {
		rest := rows[start:]
		var n int
		var r sql.Result
		var err error
		if stmts != nil && len(rest) >= minPreparedRows {
			i := preparedSizes - 1
			for minPreparedRows<<i > len(rest) {
				i--
			}
			n = minPreparedRows << i
			if txStmts[i] == nil {
				txStmts[i] = tx.StmtContext(ctx, stmts.stmts[i])
			}
			args = appendIssueArgs(args[:0], rest[:n])
			r, err = txStmts[i].ExecContext(ctx, args...)
		} else {
			buf, n = buildInsert(buf[:0], t.Issues, rest)
			r, err = tx.ExecContext(ctx, string(buf))
		}
		if err != nil {
			return inserted, fmt.Errorf("bulk insert: insert %d rows: %w", n, err)
		}
		affected, err := r.RowsAffected()
		if err != nil {
			return inserted, fmt.Errorf("bulk insert: rows affected: %w", err)
		}
		inserted += affected
		start += n
	}
	return inserted, nil
}

// lockCounters reads and locks the counters of the batch's coupons.
func lockCounters(ctx context.Context, tx *sql.Tx, t Tables, groups []couponGroup) (map[int64]counter, error) {
	q := make([]byte, 0, 96+len(groups)*8)
	q = append(q, "SELECT id, total_quantity, issued_quantity FROM "...)
	q = append(q, t.Counters...)
	q = append(q, " WHERE id IN ("...)
	q = appendIDs(q, groups, func(g couponGroup) int64 { return g.couponID })
	q = append(q, ") ORDER BY id FOR UPDATE"...)
	rs, err := tx.QueryContext(ctx, string(q))
	if err != nil {
		return nil, fmt.Errorf("bulk insert: lock coupons: %w", err)
	}
	defer rs.Close()
	out := make(map[int64]counter, len(groups))
	for rs.Next() {
		var id int64
		var c counter
		if err := rs.Scan(&id, &c.total, &c.issued); err != nil {
			return nil, fmt.Errorf("bulk insert: lock coupons: %w", err)
		}
		out[id] = c
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("bulk insert: lock coupons: %w", err)
	}
	return out, nil
}

// planWithinTotal splits a coupon's rows, under its counter's lock, into the
// new rows that fit in the remaining supply (lowest ranks first) and the
// surplus; rows already present are dropped and counted.
func planWithinTotal(ctx context.Context, tx *sql.Tx, t Tables, g couponGroup, c counter) (fit, surplus []coupon.Issue, existing int64, err error) {
	present := map[int64]struct{}{}
	for start := 0; start < len(g.rows); start += existingChunkSize {
		end := min(start+existingChunkSize, len(g.rows))
		q := make([]byte, 0, 128+(end-start)*12)
		q = append(q, "SELECT user_id FROM "...)
		q = append(q, t.Issues...)
		q = append(q, " WHERE coupon_id = "...)
		q = strconv.AppendInt(q, g.couponID, 10)
		q = append(q, " AND user_id IN ("...)
		q = appendIDs(q, g.rows[start:end], func(r coupon.Issue) int64 { return r.UserID })
		q = append(q, ") LOCK IN SHARE MODE"...)
		rs, err := tx.QueryContext(ctx, string(q))
		if err != nil {
			return nil, nil, 0, fmt.Errorf("bulk insert: find present rows of coupon %d: %w", g.couponID, err)
		}
		for rs.Next() {
			var u int64
			if err := rs.Scan(&u); err != nil {
				rs.Close()
				return nil, nil, 0, fmt.Errorf("bulk insert: find present rows of coupon %d: %w", g.couponID, err)
			}
			present[u] = struct{}{}
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("bulk insert: find present rows of coupon %d: %w", g.couponID, err)
		}
	}
	room := max(c.total-c.issued, 0)
	byRank := slices.Clone(g.rows)
	slices.SortFunc(byRank, func(a, b coupon.Issue) int { return cmp.Compare(a.Rank, b.Rank) })
	for _, r := range byRank { // the lowest ranks get the remaining supply
		switch _, ok := present[r.UserID]; {
		case ok:
			existing++
		case int64(len(fit)) < room:
			fit = append(fit, r)
		default:
			surplus = append(surplus, r)
		}
	}
	slices.SortFunc(fit, func(a, b coupon.Issue) int { return cmp.Compare(a.UserID, b.UserID) })
	return fit, surplus, existing, nil
}

// The bulk INSERT's parts around its VALUES: a row already present
// (a redelivery) is skipped, and RowsAffected counts only the rows inserted.
const (
	insertColumns = " (coupon_id,user_id,issue_rank,admitted_at,source_partition,source_offset) VALUES "
	insertTail    = " ON DUPLICATE KEY UPDATE coupon_id = coupon_id"
)

// buildInsert appends to b one INSERT of as many of rows as fit in the
// statement limits, as a VALUES literal, and returns it with the number of
// rows it covers (>= 1).
func buildInsert(b []byte, table string, rows []coupon.Issue) ([]byte, int) {
	b = append(append(append(b, "INSERT INTO "...), table...), insertColumns...)
	n := 0
	for _, r := range rows {
		if n == maxRowsPerStmt || (n > 0 && len(b) > maxStmtBytes-256) {
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendRow(b, r)
		n++
	}
	return append(b, insertTail...), n
}

// preparedInsert is the INSERT of n rows with placeholders (appendIssueArgs
// gives its arguments).
func preparedInsert(table string, n int) string {
	b := append(append([]byte("INSERT INTO "), table...), insertColumns...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, "(?,?,?,?,?,?)"...)
	}
	return string(append(b, insertTail...))
}

// appendRow appends the VALUES tuple of r. Every field is an integer or a
// timestamp formatted here, so nothing needs quoting or escaping.
func appendRow(b []byte, r coupon.Issue) []byte {
	b = append(b, '(')
	b = strconv.AppendInt(b, r.CouponID, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.UserID, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Rank, 10)
	b = append(b, ',', '\'')
	b = r.AdmittedAt.UTC().AppendFormat(b, "2006-01-02 15:04:05.000000")
	b = append(b, '\'', ',')
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Offset, 10)
	return append(b, ')')
}

// appendIssueArgs appends the arguments of rows for preparedInsert: the
// timestamp cut to the column's microseconds, as appendRow writes it.
func appendIssueArgs(args []any, rows []coupon.Issue) []any {
	for _, r := range rows {
		args = append(args, r.CouponID, r.UserID, r.Rank, r.AdmittedAt.UTC().Truncate(time.Microsecond), int64(r.Partition), r.Offset)
	}
	return args
}

// ValidAdmittedAt reports whether t fits a DATETIME column (years 1000 to
// 9999); the sinker treats other timestamps as poison.
func ValidAdmittedAt(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1000 && y <= 9999
}
