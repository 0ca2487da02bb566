package main

import (
	"context"
	"fmt"
	"os"
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
	fs.FlagSet.IntVar(&id, "coupon", 0, "coupon ID to reconcile (default every async coupon)")
	fs.FlagSet.BoolVar(&all, "all", false, "every async coupon (the default)")
	fs.FlagSet.BoolVar(&opts.Fix, "fix", false, "release unpublished admissions and clear settled pending marks")
	fs.DurationVar(&opts.Wait, "wait", "COUPON_RECONCILE_WAIT", 2*time.Minute, "how long to wait for the sinker to catch up")
	fs.DurationVar(&opts.Grace, "grace", "COUPON_RECONCILE_GRACE", 30*time.Second, "with --fix: wait this long for late publishes before releasing (keep it well above the gateway's publish timeout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts.Group, opts.Progress = f.group, os.Stderr
	c, err := f.openGate(ctx, "reconcile", opts.Fix, id, all || id == 0)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := ops.Reconcile(ctx, c.db, c.topic, c.gate, c.ids, opts, f.logger())
	fmt.Print(ops.FormatReconcile(res, opts.Fix))
	if err != nil {
		return err
	}
	fmt.Println(ops.Verdict(res))
	if ops.Inconsistencies(res) > 0 {
		return errReported
	}
	return nil
}
