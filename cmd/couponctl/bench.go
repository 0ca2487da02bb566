package main

import (
	"context"
	"os"
	"strings"

	"github.com/coupondrop/coupon/bench"
	"github.com/coupondrop/coupon/internal/cli"
)

func init() {
	register("bench", "compare db-lock, redis-lock and async on the local stack: table, JSON and HTML report", runBench)
}

func runBench(ctx context.Context, args []string) error {
	fs := cli.New("bench")
	var sf stackFlags
	sf.bind(fs)
	o := bench.DefaultOptions()
	o.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	st, err := sf.open()
	if err != nil {
		return err
	}
	local := bench.Local{Stack: st, Database: dbName(sf.profile), Root: repoRoot()}
	return bench.Compare(ctx, o, local, "couponctl bench "+strings.Join(args, " "), os.Stdout)
}
