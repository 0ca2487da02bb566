// Command sinker consumes the admitted-request topic and writes the issued
// rows to MySQL in batches, committing offsets after each transaction.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
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
	var cfg sinker.Config
	var logFormat, logLevel string
	fs := cli.New("sinker")
	cfg.Bind(fs)
	fs.StringVar(&logFormat, "log-format", "COUPON_LOG_FORMAT", "json", "log format: json or text")
	fs.StringVar(&logLevel, "log-level", "COUPON_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger, err := newLogger(logFormat, logLevel)
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

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level (COUPON_LOG_LEVEL) %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log-format (COUPON_LOG_FORMAT) %q: want json or text", format)
}
