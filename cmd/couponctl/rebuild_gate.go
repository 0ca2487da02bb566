package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/cli"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/ops"
)

func init() {
	register("rebuild-gate", "restore lost gate state in Redis from MySQL and the topic", runRebuildGate)
}

func runRebuildGate(ctx context.Context, args []string) error {
	fs := cli.New("rebuild-gate")
	var f opsFlags
	var id int
	var all, force bool
	var settle time.Duration
	var dlq string
	f.bind(fs, true)
	dlq = coupon.DefaultDeadLetterTopic
	fs.DLQTopicVar(&dlq, "read whole, so its ranks are never handed out again (empty: not read)")
	fs.DurationVar(&settle, "settle", "COUPON_REBUILD_SETTLE", 10*time.Second, "wait for publishes in flight (the gateway's publish timeout) before the last topic read")
	fs.FlagSet.IntVar(&id, "coupon", 0, "coupon ID to rebuild")
	fs.FlagSet.BoolVar(&all, "all", false, "every async coupon whose state is lost")
	fs.FlagSet.BoolVar(&force, "force", false, "rewrite a state that is present (only with the gateway stopped)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := f.openGate(ctx, "rebuild-gate", true, id, all)
	if err != nil {
		return err
	}
	defer c.Close()
	opts := ops.RebuildOptions{Group: f.group, Force: force, Settle: settle, Progress: os.Stderr}
	if dlq != "" {
		opts.DeadLetters = couponkafka.NewTopic(f.resolvedKB, dlq)
	}
	res, err := ops.RebuildGate(ctx, c.db, c.topic, c.gate, c.ids, opts, f.logger())
	fmt.Print(ops.FormatRebuilds(res))
	return err
}
