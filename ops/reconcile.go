package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
)

// ReconcileOptions tune Reconcile.
type ReconcileOptions struct {
	Group string        // the sinker's consumer group, waited on
	Wait  time.Duration // how long to wait for the sinker to catch up; default 2m
	Fix   bool          // release unpublished admissions, clear settled pending marks
	// Grace is waited before releasing, after which the topic's new tail
	// is read once more: a publish whose outcome was unknown may still land.
	Grace time.Duration
	// Progress, when set, shows the waits (the sinker catching up, the
	// grace period) as they run.
	Progress io.Writer
}

// Admission is one user's slot of a coupon.
type Admission struct{ UserID, Rank int64 }

// CouponReconcile is the comparison of one coupon's gate, topic and MySQL.
type CouponReconcile struct {
	CouponID       int64
	Total          int64
	IssuedQuantity int64
	GateLost       bool // seq missing: run rebuild-gate
	Gate           int  // admitted users in the gate
	Pending        int  // pending marks
	Topic          int  // distinct users in the topic
	Rows           int  // rows in MySQL

	// Unpublished are admitted but neither in the topic nor in MySQL once
	// the sinker has caught up: the gateway's unknown-outcome publishes
	// that never landed (marked pending), and admissions whose gate call
	// itself timed out or whose gateway died before publishing (unmarked).
	// No client was told "accepted" for any of them. --fix releases their
	// slots after the grace period.
	Unpublished []Admission
	// Released are the Unpublished admissions --fix released (one already
	// gone, released by the gateway meanwhile, is not among them). Fixed
	// says --fix finished with this coupon: Gate and Pending are then
	// counted after the fix.
	Released []Admission
	Fixed    bool
	// SettledPending are pending marks whose record did land; --fix clears them.
	SettledPending []Admission
	Cleared        int
	// Mismatches are everything else that disagrees: each is a bug or a
	// fault to look at.
	Mismatches []string
}

// Reconcile waits until the sinker group has caught up with the topic's end
// offsets, then compares, per coupon, the gate (admitted users, pending
// marks), the topic (every record of the coupon's partition) and MySQL
// (rows, issued_quantity). See CouponReconcile for what it reports.
func Reconcile(ctx context.Context, db *mysql.DB, t *couponkafka.Topic, gate *admitter.Gate, couponIDs []int64, opts ReconcileOptions, logger *slog.Logger) ([]CouponReconcile, error) {
	if opts.Wait <= 0 {
		opts.Wait = 2 * time.Minute
	}
	n, err := t.Partitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	first, end, err := t.Offsets(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	if opts.Group != "" {
		wctx, cancel := context.WithTimeout(ctx, opts.Wait)
		err := waitCaughtUp(wctx, t, opts.Group, first, end, opts.Progress)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("reconcile: the sinker has not caught up: %w", err)
		}
	}

	topic := topicAdmissions{}
	var parts []int
	for _, id := range couponIDs {
		topic[id] = map[int64]int64{}
		if p := couponkafka.PartitionOf(id, n); !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	if err := readAdmissions(ctx, t, parts, first, end, topic); err != nil {
		return nil, fmt.Errorf("reconcile: read topic: %w", err)
	}

	out := make([]CouponReconcile, 0, len(couponIDs))
	for _, id := range couponIDs {
		r, err := reconcileCoupon(ctx, db, gate, id, topic[id])
		if err != nil {
			return out, fmt.Errorf("reconcile: coupon %d: %w", id, err)
		}
		out = append(out, r)
	}
	if !opts.Fix {
		return out, nil
	}

	// Before releasing, give late publishes a chance and look again.
	unpublished := 0
	for _, r := range out {
		unpublished += len(r.Unpublished)
	}
	if unpublished > 0 {
		if err := pause(ctx, opts.Progress, fmt.Sprintf("reconcile: %d unpublished admissions, grace for late publishes", unpublished), opts.Grace); err != nil {
			return out, err
		}
		_, end2, err := t.Offsets(ctx, n)
		if err != nil {
			return out, fmt.Errorf("reconcile: %w", err)
		}
		late := topicAdmissions{}
		for _, id := range couponIDs {
			late[id] = map[int64]int64{}
		}
		if err := readAdmissions(ctx, t, parts, end, end2, late); err != nil {
			return out, fmt.Errorf("reconcile: read topic: %w", err)
		}
		for i := range out {
			r := &out[i]
			kept := r.Unpublished[:0]
			for _, a := range r.Unpublished {
				if _, landed := late[r.CouponID][a.UserID]; landed {
					r.SettledPending = append(r.SettledPending, a)
					continue
				}
				kept = append(kept, a)
			}
			r.Unpublished = kept
		}
	}
	for i := range out {
		r := &out[i]
		for _, a := range r.Unpublished {
			released, err := gate.Release(ctx, r.CouponID, a.UserID, a.Rank)
			switch {
			case released && errors.Is(err, coupon.ErrGateUnacked):
				// Released on the primary; a failover before the replicas
				// catch up brings it back, and the next reconcile finds it.
				r.Released = append(r.Released, a)
				logger.Warn("released unpublished admission on the Redis primary only", "coupon", r.CouponID, "user", a.UserID, "rank", a.Rank, "err", err)
			case err != nil:
				return out, fmt.Errorf("reconcile: %w", err)
			case released:
				r.Released = append(r.Released, a)
				logger.Info("released unpublished admission", "coupon", r.CouponID, "user", a.UserID, "rank", a.Rank)
			}
		}
		settled := make([]int64, len(r.SettledPending))
		for i, a := range r.SettledPending {
			settled[i] = a.UserID
		}
		if err := gate.ClearPending(ctx, r.CouponID, settled...); err != nil {
			return out, fmt.Errorf("reconcile: %w", err)
		}
		r.Cleared = len(settled)
		// The report shows the gate as the fix left it.
		st, _, err := gate.State(ctx, r.CouponID)
		if err != nil {
			return out, fmt.Errorf("reconcile: recount coupon %d after the fix: %w", r.CouponID, err)
		}
		r.Gate, r.Pending, r.Fixed = len(st.Users), len(st.Pending), true
	}
	return out, nil
}

func reconcileCoupon(ctx context.Context, db *mysql.DB, gate *admitter.Gate, id int64, topic map[int64]int64) (CouponReconcile, error) {
	r := CouponReconcile{CouponID: id, Topic: len(topic)}
	c, err := db.FindCoupon(ctx, id)
	if err != nil {
		return r, fmt.Errorf("read coupon: %w", err)
	}
	r.Total, r.IssuedQuantity = c.TotalQuantity, c.IssuedQuantity
	rows, err := db.IssuedRanks(ctx, id)
	if err != nil {
		return r, err
	}
	r.Rows = len(rows)
	st, present, err := gate.State(ctx, id)
	if err != nil {
		return r, err
	}
	admitted, pending := st.Users, st.Pending
	r.Gate, r.Pending, r.GateLost = len(admitted), len(pending), !present
	bad := func(format string, args ...any) { r.Mismatches = append(r.Mismatches, fmt.Sprintf(format, args...)) }

	if int64(r.Rows) != r.IssuedQuantity {
		bad("issued_quantity is %d but %d rows exist", r.IssuedQuantity, r.Rows)
	}
	if int64(r.Rows) > r.Total {
		bad("%d rows exceed the total %d", r.Rows, r.Total)
	}
	// Rows and the topic: the sinker has caught up, so every record is a
	// row unless it was dead-lettered.
	for _, u := range sortedKeys(topic) {
		if _, ok := rows[u]; !ok {
			bad("user %d (rank %d) is in the topic but has no row: dead-lettered? (see the dead-letter topic)", u, topic[u])
		}
	}
	for _, u := range sortedKeys(rows) {
		if tr, ok := topic[u]; ok && tr != rows[u] {
			bad("user %d has rank %d in MySQL but %d in the topic", u, rows[u], tr)
		}
	}
	if r.GateLost {
		if r.Gate > 0 || r.Pending > 0 || r.Rows > 0 || r.Topic > 0 {
			bad("gate state lost (seq missing): run couponctl rebuild-gate --coupon %d", id)
		}
		return r, nil
	}
	if int64(r.Gate) > r.Total {
		bad("the gate admitted %d users, more than the total %d", r.Gate, r.Total)
	}
	for _, u := range sortedKeys(admitted) {
		rank := admitted[u]
		if rr, ok := rows[u]; ok {
			if rr != rank {
				bad("user %d has rank %d in the gate but %d in MySQL", u, rank, rr)
			}
			continue
		}
		if _, ok := topic[u]; ok {
			continue // reported above
		}
		r.Unpublished = append(r.Unpublished, Admission{UserID: u, Rank: rank})
	}
	for _, u := range sortedKeys(rows) {
		if _, ok := admitted[u]; !ok {
			bad("user %d has a row but is not admitted in the gate (the gate would admit the user again)", u)
		}
	}
	for _, u := range sortedKeys(pending) {
		_, inRows := rows[u]
		_, inTopic := topic[u]
		gr, inGate := admitted[u]
		switch {
		case inRows || inTopic:
			r.SettledPending = append(r.SettledPending, Admission{UserID: u, Rank: pending[u]})
		case !inGate || gr != pending[u]:
			// A stale mark: the slot is gone or re-taken with another rank.
			r.SettledPending = append(r.SettledPending, Admission{UserID: u, Rank: pending[u]})
		}
	}
	return r, nil
}

func sortedKeys(m map[int64]int64) []int64 {
	return slices.Sorted(maps.Keys(m))
}

// Inconsistencies counts what the report found wrong and left so: every
// mismatch, and the unpublished admissions and settled pending marks of the
// coupons --fix did not settle.
func Inconsistencies(rs []CouponReconcile) int {
	n := 0
	for _, r := range rs {
		n += len(r.Mismatches)
		if !r.Fixed {
			n += len(r.Unpublished) + len(r.SettledPending)
		}
	}
	return n
}

// Verdict is the report's last line: "all consistent" or "N inconsistencies".
func Verdict(rs []CouponReconcile) string {
	switch n := Inconsistencies(rs); n {
	case 0:
		return fmt.Sprintf("all consistent (%d coupons)", len(rs))
	case 1:
		return "1 inconsistency"
	default:
		return fmt.Sprintf("%d inconsistencies", n)
	}
}

// FormatReconcile renders the report; mismatches are listed after the table.
// With fix, the gate and pending columns are counted after the fix.
func FormatReconcile(rs []CouponReconcile, fix bool) string {
	var b strings.Builder
	if fix {
		b.WriteString("gate and pending as the fix left them (action: what it did)\n")
	}
	fmt.Fprintf(&b, "%-12s %9s %9s %9s %9s %9s %9s %11s %9s  %s\n",
		"coupon", "total", "issued", "rows", "gate", "pending", "topic", "unpublished", "mismatch", "action")
	for _, r := range rs {
		action := ""
		switch {
		case fix && !r.Fixed:
			action = "not fixed (see the error)"
		case fix && (len(r.Released) > 0 || r.Cleared > 0):
			action = fmt.Sprintf("released %d, cleared %d pending", len(r.Released), r.Cleared)
		case !fix && (len(r.Unpublished) > 0 || len(r.SettledPending) > 0):
			action = "run with --fix"
		}
		gate := strconv.Itoa(r.Gate)
		if r.GateLost {
			gate = "LOST"
		}
		fmt.Fprintf(&b, "%-12d %9d %9d %9d %9s %9d %9d %11d %9d  %s\n", r.CouponID, r.Total, r.IssuedQuantity, r.Rows,
			gate, r.Pending, r.Topic, len(r.Unpublished), len(r.Mismatches), action)
	}
	for _, r := range rs {
		for i, a := range r.Unpublished {
			if i == 20 {
				fmt.Fprintf(&b, "coupon %d: ... and %d more unpublished\n", r.CouponID, len(r.Unpublished)-20)
				break
			}
			state := ""
			switch {
			case slices.Contains(r.Released, a):
				state = ": released"
			case r.Fixed:
				state = ": already gone"
			}
			fmt.Fprintf(&b, "coupon %d: user %d (rank %d) admitted but never published%s\n", r.CouponID, a.UserID, a.Rank, state)
		}
	}
	for _, r := range rs {
		for _, m := range r.Mismatches {
			fmt.Fprintf(&b, "MISMATCH coupon %d: %s\n", r.CouponID, m)
		}
	}
	return b.String()
}
