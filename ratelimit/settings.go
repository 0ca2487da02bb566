package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/coupondrop/coupon/internal/cli"
)

// Settings are the command-line form of an optional limiter: a rate like
// "5/s" (empty or 0: no limiter), a burst, and what a key stands for.
type Settings struct {
	Rate  string // "N", "N/s", "N/m" or "N/h"; N may have a fraction
	Burst int    // 0: a second's worth of the rate, at least 1
	ByIP  bool   // key by client IP rather than by user
}

// Bind binds the settings to flags with COUPON_RATE_* environment defaults.
func (s *Settings) Bind(fs *cli.FlagSet) {
	fs.StringVar(&s.Rate, "rate-limit", "COUPON_RATE_LIMIT", "", `issue requests allowed per user (or IP), like "5/s" or "30/m" (empty: no limit); over it: 429`)
	fs.IntVar(&s.Burst, "rate-limit-burst", "COUPON_RATE_LIMIT_BURST", 0, "requests allowed at once after a pause (0: one second's worth, at least 1)")
	fs.BoolVar(&s.ByIP, "rate-limit-by-ip", "COUPON_RATE_LIMIT_BY_IP", false, "count the rate limit per client IP instead of per user")
}

// Config returns the limiter configuration, and false when the settings
// ask for no limiter.
func (s Settings) Config() (Config, bool, error) {
	rate, err := ParseRate(s.Rate)
	if err != nil || rate == 0 {
		return Config{}, false, err
	}
	burst := s.Burst
	if burst == 0 {
		burst = max(1, int(math.Ceil(rate)))
	}
	cfg := Config{Rate: rate, Burst: burst}
	return cfg, true, cfg.Validate()
}

// New returns the limiter the settings describe, or nil for none.
func (s Settings) New() (*Limiter, error) {
	cfg, on, err := s.Config()
	if err != nil || !on {
		return nil, err
	}
	return New(cfg)
}

// ParseRate parses "N", "N/s", "N/m" or "N/h" into events per second;
// "" is 0.
func ParseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num, unit, _ := strings.Cut(s, "/")
	per := time.Second
	switch strings.TrimSpace(unit) {
	case "", "s":
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return 0, fmt.Errorf("rate limit %q: the unit after / must be s, m or h", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, fmt.Errorf(`rate limit %q: want a non-negative number of requests like "5/s" or "30/m"`, s)
	}
	return n / per.Seconds(), nil
}
