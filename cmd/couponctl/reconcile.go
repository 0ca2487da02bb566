package main

import (
	"context"
	"fmt"
	"time"

	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/ops"
)

func init() {
	register("reconcile", "compare gate, topic and MySQL per coupon; --fix releases unpublished admissions", runReconcile)
}

func runReconcile(ctx context.Context, args []string) error {
	fs := cli.New("reconcile")
	var f opsFlags
	var id int
	var all bool
	var opts ops.ReconcileOptions
	f.bind(fs, true)
	fs.FlagSet.IntVar(&id, "coupon", 0, "coupon ID to reconcile")
	fs.FlagSet.BoolVar(&all, "all", false, "every async coupon")
	fs.FlagSet.BoolVar(&opts.Fix, "fix", false, "release unpublished admissions and clear settled pending marks")
	fs.DurationVar(&opts.Wait, "wait", "COUPON_RECONCILE_WAIT", 2*time.Minute, "how long to wait for the sinker to catch up")
	fs.DurationVar(&opts.Grace, "grace", "COUPON_RECONCILE_GRACE", 30*time.Second, "with --fix: wait this long for late publishes before releasing (keep it well above the gateway's publish timeout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts.Group = f.group
	c, err := f.openGate(ctx, id, all)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := ops.Reconcile(ctx, c.db, c.topic, c.rdb, c.ids, opts, f.logger())
	fmt.Print(ops.FormatReconcile(res, opts.Fix))
	if err != nil {
		return err
	}
	mismatches := 0
	for _, r := range res {
		mismatches += len(r.Mismatches)
	}
	if mismatches > 0 {
		return fmt.Errorf("%d mismatches (listed above)", mismatches)
	}
	return nil
}
