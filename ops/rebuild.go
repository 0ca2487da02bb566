package ops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
	"github.com/segmentio/kafka-go"
)

// GateRebuild tells what RebuildGate did for one coupon.
type GateRebuild struct {
	CouponID  int64
	Rebuilt   bool   // the state was written
	Skipped   string // why not, when not
	Users     int    // admitted users restored
	FromMySQL int    // of which issued rows
	FromTopic int    // of which records the sinker had not written yet
	Seq       int64  // the rank counter restored
}

// RebuildOptions tune RebuildGate.
type RebuildOptions struct {
	// Group is the sinker's consumer group: the topic is read from its
	// committed offsets (everything before is in MySQL). Empty reads the
	// coupons' partitions from their first offsets.
	Group string
	// Force rewrites a state that is present (dangerous while the gateway
	// admits for the coupon); by default only lost states are rebuilt.
	Force bool
	// Settle is waited before the last read of the topic's tail, so that
	// publishes in flight when the state was lost (bounded by the gateway's
	// publish timeout) have landed or failed.
	Settle time.Duration
	// DeadLetters, when set, is the dead-letter topic, read whole: the ranks
	// of records the sinker dead-lettered (no row, and before the committed
	// offsets) count for the rank counter too, so the rebuilt gate never
	// hands one of them out again.
	DeadLetters *couponkafka.Topic
	// Progress, when set, shows the settle wait as it runs.
	Progress io.Writer
}

// AsyncCoupons returns the IDs of every coupon of the async strategy.
func AsyncCoupons(ctx context.Context, db *mysql.DB) ([]int64, error) {
	return db.CouponIDs(ctx, coupon.StrategyAsync)
}

// topicAdmissions collects, per wanted coupon, the admitted users (userId
// -> rank) found in a range of the topic.
type topicAdmissions map[int64]map[int64]int64

// readAdmissions reads [from[p], to[p]) of the given partitions and adds
// the records of wanted coupons to into. Undecodable records are skipped:
// they never became rows or admissions.
func readAdmissions(ctx context.Context, t *couponkafka.Topic, partitions []int, from, to []int64, into topicAdmissions) error {
	for _, p := range partitions {
		err := t.Read(ctx, p, from[p], to[p], func(m kafka.Message) error {
			a, err := coupon.UnmarshalAdmission(m.Value)
			if err != nil {
				return nil
			}
			users, ok := into[a.CouponID]
			if !ok {
				return nil
			}
			if r, dup := users[a.UserID]; !dup || a.Rank < r {
				users[a.UserID] = a.Rank
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// highestRanks reads the n partitions of t whole and raises into[coupon] to
// the highest rank among the records of the coupons it holds.
func highestRanks(ctx context.Context, t *couponkafka.Topic, n int, into map[int64]int64) error {
	first, end, err := t.Offsets(ctx, n)
	if err != nil {
		return err
	}
	for p := range n {
		err := t.Read(ctx, p, first[p], end[p], func(m kafka.Message) error {
			if a, err := coupon.UnmarshalAdmission(m.Value); err == nil {
				if r, ok := into[a.CouponID]; ok && a.Rank > r {
					into[a.CouponID] = a.Rank
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// RebuildGate restores the gate state of the given coupons exactly: the
// admitted users and their ranks from MySQL's rows plus the records the
// sinker has not written yet (the topic from the group's committed offsets
// to the end), and the rank counter at the highest rank seen. The state is
// written with Gate.Restore (one MULTI/EXEC, seq last). While a
// coupon's state is missing the gateway refuses it (503), so no admission
// races the rebuild; records published just before the loss are caught by
// reading the topic's tail once more right before writing.
func RebuildGate(ctx context.Context, db *mysql.DB, t *couponkafka.Topic, gate *admitter.Gate, couponIDs []int64, opts RebuildOptions, logger *slog.Logger) ([]GateRebuild, error) {
	out := make([]GateRebuild, 0, len(couponIDs))
	var todo []int64
	coupons := map[int64]*coupon.Coupon{}
	for _, id := range couponIDs {
		c, err := db.FindCoupon(ctx, id)
		switch {
		case coupon.ErrorCode(err) == coupon.ENOTFOUND:
			out = append(out, GateRebuild{CouponID: id, Skipped: "no such coupon"})
			continue
		case err != nil:
			return out, fmt.Errorf("rebuild gate: %w", err)
		case c.Strategy != coupon.StrategyAsync:
			out = append(out, GateRebuild{CouponID: id, Skipped: "strategy " + string(c.Strategy) + " has no gate"})
			continue
		}
		coupons[id] = c
		present, err := gate.HasState(ctx, id)
		if err != nil {
			return out, fmt.Errorf("rebuild gate: %w", err)
		}
		if present && !opts.Force {
			out = append(out, GateRebuild{CouponID: id, Skipped: "state present (use --force to rewrite it)"})
			continue
		}
		todo = append(todo, id)
	}
	if len(todo) == 0 {
		return out, nil
	}
	var deadParts int
	if opts.DeadLetters != nil { // a wrong name fails now, not after the reads and the settle time
		var err error
		if deadParts, err = opts.DeadLetters.Partitions(ctx); err != nil {
			return out, fmt.Errorf("rebuild gate: dead letters: %w", err)
		}
	}

	n, err := t.Partitions(ctx)
	if err != nil {
		return out, fmt.Errorf("rebuild gate: %w", err)
	}
	// Committed offsets before MySQL: every record before them is in MySQL
	// (or was dead-lettered) by the time MySQL is read.
	first, end, err := t.Offsets(ctx, n)
	if err != nil {
		return out, fmt.Errorf("rebuild gate: %w", err)
	}
	from := slices.Clone(first)
	if opts.Group != "" {
		committed, err := t.Committed(ctx, opts.Group, n)
		if err != nil {
			return out, fmt.Errorf("rebuild gate: %w", err)
		}
		for p := range from {
			from[p] = max(committed[p], first[p])
		}
	}
	var parts []int
	fromMySQL := map[int64]map[int64]int64{}
	tail := topicAdmissions{}
	for _, id := range todo {
		rows, err := db.IssuedRanks(ctx, id)
		if err != nil {
			return out, fmt.Errorf("rebuild gate: %w", err)
		}
		fromMySQL[id] = rows
		tail[id] = map[int64]int64{}
		if p := couponkafka.PartitionOf(id, n); !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	slices.Sort(parts)
	if err := readAdmissions(ctx, t, parts, from, end, tail); err != nil {
		return out, fmt.Errorf("rebuild gate: read topic: %w", err)
	}
	// Once more, after the settle time: what was published meanwhile.
	if err := pause(ctx, opts.Progress, "rebuild-gate: settle for publishes in flight", opts.Settle); err != nil {
		return out, err
	}
	_, end2, err := t.Offsets(ctx, n)
	if err != nil {
		return out, fmt.Errorf("rebuild gate: %w", err)
	}
	if err := readAdmissions(ctx, t, parts, end, end2, tail); err != nil {
		return out, fmt.Errorf("rebuild gate: read topic: %w", err)
	}

	// Read after the committed offsets: a record dead-lettered since is in
	// the dead-letter topic now, or was in the tail read above.
	dead := map[int64]int64{} // coupon -> highest dead-lettered rank
	if opts.DeadLetters != nil {
		for _, id := range todo {
			dead[id] = 0
		}
		if err := highestRanks(ctx, opts.DeadLetters, deadParts, dead); err != nil {
			return out, fmt.Errorf("rebuild gate: dead letters: %w", err)
		}
	}

	for _, id := range todo {
		users := make(map[int64]int64, len(fromMySQL[id])+len(tail[id]))
		r := GateRebuild{CouponID: id, Seq: dead[id]}
		for u, rank := range fromMySQL[id] {
			users[u] = rank
			r.Seq = max(r.Seq, rank)
		}
		r.FromMySQL = len(users)
		for u, rank := range tail[id] {
			r.Seq = max(r.Seq, rank)
			if _, ok := users[u]; !ok {
				users[u] = rank
				r.FromTopic++
			}
		}
		r.Users = len(users)
		st := admitter.State{Users: users, Seq: r.Seq, Total: coupons[id].TotalQuantity, Revision: coupons[id].Revision}
		ok, err := gate.Restore(ctx, id, st, !opts.Force)
		if err != nil {
			return out, fmt.Errorf("rebuild gate: %w", err)
		}
		if r.Rebuilt = ok; !ok {
			r.Skipped = "state appeared meanwhile (another rebuild or init); left as is"
		}
		logger.Info("gate rebuilt", "coupon", id, "written", ok, "users", r.Users, "from_mysql", r.FromMySQL, "from_topic", r.FromTopic, "seq", r.Seq)
		out = append(out, r)
	}
	return out, nil
}

// FormatRebuilds renders RebuildGate's results as a table.
func FormatRebuilds(rs []GateRebuild) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s %-8s %10s %10s %10s %10s  %s\n", "coupon", "rebuilt", "users", "mysql", "topic", "seq", "note")
	for _, r := range rs {
		fmt.Fprintf(&b, "%-12d %-8t %10d %10d %10d %10d  %s\n", r.CouponID, r.Rebuilt, r.Users, r.FromMySQL, r.FromTopic, r.Seq, r.Skipped)
	}
	return b.String()
}
