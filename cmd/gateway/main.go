// Command gateway serves the coupon HTTP API: it admits issue requests in
// the Redis gate and publishes them to Kafka (async), or runs a baseline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stderr))
}

// realMain parses the configuration (flags over COUPON_* variables), then
// runs the gateway until SIGINT or SIGTERM; it returns the exit code.
func realMain(args []string, stderr io.Writer) int {
	cfg, fs, err := parseConfig(args)
	if errors.Is(err, flag.ErrHelp) {
		return 2
	} else if err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 2
	}
	logger, err := cfg.Log.New(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 2
	}
	logger.Info("config", fs.Redacted()...)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("gateway failed", "err", err)
		return 1
	}
	return 0
}
