package ops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coupondrop/coupon"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
)

// OldIssuesPrefix names the previous issued table a replay keeps (see
// mysql.Shadow.SwapIn).
const OldIssuesPrefix = mysql.OldIssuesPrefix

// ReplayOptions tune a replay.
type ReplayOptions struct {
	BatchSize int       // rows per insert transaction; default 10,000
	Parallel  int       // partitions loaded at once; default 2
	DropOld   bool      // drop the previous table after the swap
	Progress  io.Writer // progress bar (stderr); nil draws none
}

// ReplaySummary is what a replay did.
type ReplaySummary struct {
	Partitions   int
	Records      int64            // records read, from the first offsets to the end offsets seen at start
	Inserted     int64            // rows loaded into the shadow table
	Duplicates   int64            // records whose (coupon, user) was already loaded
	Refused      map[string]int64 // records not loaded, by dead-letter reason
	CarriedOver  int64            // rows kept from the previous table that the replayed range does not cover
	CarryRefused []mysql.Rejection
	Coupons      int64         // coupons whose issued_quantity was recomputed
	Load         time.Duration // reading the topic and loading the shadow table
	KeepTimes    time.Duration // copying issued_at of the rows the live table already has
	Swap         time.Duration // the maintenance step
	OldTable     string        // where the previous rows are, "" when dropped
}

// RowsPerSecond is the load rate: records read and loaded per second.
func (s ReplaySummary) RowsPerSecond() float64 {
	if s.Load <= 0 {
		return 0
	}
	return float64(s.Records) / s.Load.Seconds()
}

// Total is the whole replay's duration.
func (s ReplaySummary) Total() time.Duration { return s.Load + s.KeepTimes + s.Swap }

// Replay rebuilds coupon_issues and every coupon's issued_quantity from the
// topic, reading each partition from its first offset to the end offset seen
// at start, without a consumer group (the sinker's offsets are untouched).
// It loads a shadow table with the sinker's guarded insert (against shadow
// counters, so the same records are refused), then in one maintenance step
// swaps it in with an atomic RENAME, carries over the rows of the previous
// table the replayed range does not cover (rows of the synchronous
// baselines, rows the running sinker wrote past the end offsets, rows of
// records lost to retention), and recomputes issued_quantity under the
// coupons' row locks, which the sinker takes first in every transaction.
func Replay(ctx context.Context, db *mysql.DB, t *couponkafka.Topic, opts ReplayOptions, logger *slog.Logger) (ReplaySummary, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 10_000
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	sum := ReplaySummary{Refused: map[string]int64{}}
	n, err := t.Partitions(ctx)
	if err != nil {
		return sum, fmt.Errorf("replay: %w", err)
	}
	first, end, err := t.Offsets(ctx, n)
	if err != nil {
		return sum, fmt.Errorf("replay: %w", err)
	}
	sum.Partitions = n
	var total int64
	for p := range n {
		total += end[p] - first[p]
	}
	logger.Info("replay: range", "topic", t.Name, "partitions", n, "records", total, "first", first, "end", end)

	// The counters snapshot comes after the end offsets: every coupon of a
	// replayed record existed by then.
	shadow, err := db.CreateShadow(ctx)
	if err != nil {
		return sum, fmt.Errorf("replay: %w", err)
	}

	t0 := time.Now()
	bar := startProgress(opts.Progress, "replay", total)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	for p := range n {
		if end[p] <= first[p] {
			continue
		}
		g.Go(func() error {
			r, err := loadPartition(gctx, t, shadow, p, first[p], end[p], opts.BatchSize, bar)
			mu.Lock()
			defer mu.Unlock()
			sum.Records += r.Records
			sum.Inserted += r.Inserted
			sum.Duplicates += r.Duplicates
			for k, v := range r.Refused {
				sum.Refused[k] += v
			}
			return err
		})
	}
	err = g.Wait()
	bar.finish()
	sum.Load = time.Since(t0)
	if err != nil {
		return sum, fmt.Errorf("replay: load: %w (the live tables are untouched)", err)
	}
	// Keep the issue times of rows that survive the rebuild.
	t0 = time.Now()
	if err := shadow.KeepIssueTimes(ctx); err != nil {
		return sum, fmt.Errorf("replay: %w (the live tables are untouched)", err)
	}
	sum.KeepTimes = time.Since(t0)

	t1 := time.Now()
	sw, err := shadow.SwapIn(ctx, first, end)
	sum.OldTable, sum.CarriedOver, sum.CarryRefused, sum.Coupons = sw.OldTable, sw.CarriedOver, sw.CarryRefused, sw.Coupons
	if err != nil {
		return sum, fmt.Errorf("replay: %w", err)
	}
	if opts.DropOld && len(sum.CarryRefused) == 0 {
		if err := db.DropOldIssues(ctx, sum.OldTable); err != nil {
			return sum, fmt.Errorf("replay: %w", err)
		}
		sum.OldTable = ""
	}
	sum.Swap = time.Since(t1)
	return sum, nil
}

type loadResult struct {
	Records, Inserted, Duplicates int64
	Refused                       map[string]int64
}

// loadPartition reads one partition's range and inserts it batch after
// batch, in offset order (so the guard refuses what the sinker refused),
// reading the next batch while the previous one is in MySQL.
func loadPartition(ctx context.Context, t *couponkafka.Topic, shadow *mysql.Shadow, p int, from, to int64, batchSize int, bar *progress) (loadResult, error) {
	res := loadResult{Refused: map[string]int64{}}
	type batch struct {
		rows    []coupon.Issue
		records int64
	}
	ch := make(chan batch, 2)
	g, gctx := errgroup.WithContext(ctx)
	var undecodable int64
	g.Go(func() error {
		defer close(ch)
		cur := batch{rows: make([]coupon.Issue, 0, batchSize)}
		send := func() error {
			select {
			case ch <- cur:
			case <-gctx.Done():
				return gctx.Err()
			}
			cur = batch{rows: make([]coupon.Issue, 0, batchSize)}
			return nil
		}
		err := t.Read(gctx, p, from, to, func(m kafka.Message) error {
			cur.records++
			if a, err := coupon.UnmarshalAdmission(m.Value); err == nil && mysql.ValidAdmittedAt(a.AdmittedAt) {
				cur.rows = append(cur.rows, coupon.Issue{CouponID: a.CouponID, UserID: a.UserID, Rank: a.Rank,
					AdmittedAt: a.AdmittedAt, Partition: int32(m.Partition), Offset: m.Offset})
			} else {
				undecodable++
			}
			if cur.records == int64(batchSize) {
				return send()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if cur.records > 0 {
			return send()
		}
		return nil
	})
	g.Go(func() error {
		for b := range ch {
			r, err := shadow.Insert(gctx, b.rows)
			if err != nil {
				return fmt.Errorf("partition %d: %w", p, err)
			}
			res.Records += b.records
			res.Inserted += r.Inserted
			res.Duplicates += r.Duplicates
			for _, rej := range r.Rejected {
				res.Refused[rej.Reason]++
			}
			bar.add(b.records)
		}
		return nil
	})
	err := g.Wait()
	if undecodable > 0 {
		res.Refused["undecodable"] += undecodable
	}
	return res, err
}

// String renders the summary for the operator.
func (s ReplaySummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replayed %d records from %d partitions in %s: load %s (%.0f records/s), issue times kept %s, swap %s\n",
		s.Records, s.Partitions, s.Total().Round(time.Millisecond), s.Load.Round(time.Millisecond), s.RowsPerSecond(),
		s.KeepTimes.Round(time.Millisecond), s.Swap.Round(time.Millisecond))
	line := func(label string, v int64, note string) { fmt.Fprintf(&b, "  %-26s %9d%s\n", label+":", v, note) }
	line("rows loaded", s.Inserted, "")
	line("duplicate records", s.Duplicates, "")
	for _, k := range []string{"undecodable", mysql.ReasonUnknownCoupon, mysql.ReasonOverTotal} {
		line("refused "+k, s.Refused[k], "")
	}
	line("rows carried over", s.CarriedOver, " (from the previous table, outside the replayed range)")
	if len(s.CarryRefused) > 0 {
		fmt.Fprintf(&b, "  CARRY-OVER REFUSED:  %d rows of the previous table were not kept:\n", len(s.CarryRefused))
		for i, r := range s.CarryRefused {
			if i == 20 {
				fmt.Fprintf(&b, "    ... and %d more (they are still in %s)\n", len(s.CarryRefused)-20, s.OldTable)
				break
			}
			fmt.Fprintf(&b, "    coupon %d user %d rank %d: %s\n", r.Issue.CouponID, r.Issue.UserID, r.Issue.Rank, r.Reason)
		}
	}
	line("coupons recounted", s.Coupons, "")
	if s.OldTable != "" {
		fmt.Fprintf(&b, "  previous rows kept in %s (drop it when satisfied; --drop-old does it after a clean run)\n", s.OldTable)
	}
	return b.String()
}
