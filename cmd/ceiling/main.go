// Command ceiling serves the benchmark's HTTP ceiling (gateway.NewCeiling):
// the gateway's issue route with its body parsing and its 202 answer, and
// nothing behind it. couponctl bench measures it beside the gateway, on
// the same machine in the same run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/cli"
)

func main() {
	cfg := gateway.DefaultConfig()
	fs := cli.New("ceiling")
	fs.StringVar(&cfg.Addr, "http-addr", "COUPON_HTTP_ADDR", cfg.Addr, "listen address")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	app := gateway.NewCeiling(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = app.ShutdownWithTimeout(5 * time.Second)
	}()
	if err := app.Listen(cfg.Addr); err != nil {
		fmt.Fprintf(os.Stderr, "ceiling: %v\n", err)
		os.Exit(1)
	}
}
