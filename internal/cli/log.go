package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Log is a binary's logging configuration.
type Log struct {
	Format string // json or text
	Level  string // debug, info, warn or error
}

// DefaultLog is JSON at info.
func DefaultLog() Log { return Log{Format: "json", Level: "info"} }

// Bind binds --log-format and --log-level, with l's values as defaults.
func (l *Log) Bind(fs *FlagSet) {
	fs.StringVar(&l.Format, "log-format", "COUPON_LOG_FORMAT", l.Format, "log format: json or text")
	fs.StringVar(&l.Level, "log-level", "COUPON_LOG_LEVEL", l.Level, "log level: debug, info, warn or error")
}

// Validate reports every problem at once.
func (l Log) Validate() error {
	var errs []error
	if l.Format != "json" && l.Format != "text" {
		errs = append(errs, fmt.Errorf("log format must be json or text (COUPON_LOG_FORMAT), not %q", l.Format))
	}
	var lv slog.Level
	if lv.UnmarshalText([]byte(l.Level)) != nil {
		errs = append(errs, fmt.Errorf("log level must be debug, info, warn or error (COUPON_LOG_LEVEL), not %q", l.Level))
	}
	return errors.Join(errs...)
}

// New returns the logger writing to w.
func (l Log) New(w io.Writer) (*slog.Logger, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level)) // Validate checked it
	opts := &slog.HandlerOptions{Level: lv}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// OrDiscard returns logger, or a logger that drops everything when it is
// nil: the components' constructors accept a nil logger.
func OrDiscard(logger *slog.Logger) *slog.Logger {
	if logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return logger
}
