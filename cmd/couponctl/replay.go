package main

import (
	"context"
	"fmt"
	"os"

	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/ops"
)

func init() {
	register("replay", "rebuild coupon_issues and issued_quantity from the admitted-request topic", runReplay)
}

func runReplay(ctx context.Context, args []string) error {
	fs := cli.New("replay")
	var f opsFlags
	var opts ops.ReplayOptions
	f.bind(fs, false)
	fs.IntVar(&opts.BatchSize, "batch-size", "COUPON_REPLAY_BATCH_SIZE", 10_000, "rows per insert transaction")
	fs.IntVar(&opts.Parallel, "parallel", "COUPON_REPLAY_PARALLEL", 2, "partitions loaded at once")
	fs.BoolVar(&opts.DropOld, "drop-old", "COUPON_REPLAY_DROP_OLD", false, "drop the previous table ("+ops.OldIssuesPrefix+"<time>) after a clean swap")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if opts.BatchSize < 1 || opts.Parallel < 1 {
		return fmt.Errorf("batch-size and parallel must be at least 1")
	}
	db, topic, err := f.open(ctx, "replay", true)
	if err != nil {
		return err
	}
	defer db.Close()
	opts.Progress = os.Stderr
	sum, err := ops.Replay(ctx, db, topic, opts, f.logger())
	if err != nil {
		return err
	}
	fmt.Print(sum.String())
	if len(sum.CarryRefused) > 0 {
		return fmt.Errorf("%d rows of the previous table were refused by the guard (listed above)", len(sum.CarryRefused))
	}
	return nil
}
