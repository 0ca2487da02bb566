// Command sinker consumes the admitted-request topic and writes the issued
// rows to MySQL in batches, committing offsets after each transaction.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/sinker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "sinker: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, logCfg := sinker.DefaultConfig(), cli.DefaultLog()
	fs := cli.New("sinker")
	cfg.Bind(fs)
	logCfg.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := logCfg.New(os.Stderr)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger.Info("config", fs.Redacted()...)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := sinker.New(cfg, logger)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			logger.Warn("close", "err", err)
		}
		logger.Info("sinker stopped")
	}()
	return s.Run(ctx)
}
