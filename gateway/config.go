package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/coupondrop/coupon/internal/cli"
)

// Config is the HTTP server's configuration. DefaultConfig gives working
// values for everything but AdminToken.
type Config struct {
	Addr       string // listen address, host:port
	AdminToken string // bearer token of the admin endpoints (secret)

	BodyLimit       int           // largest request body accepted, bytes (413 above)
	ReadTimeout     time.Duration // whole request read, per request
	WriteTimeout    time.Duration // response write
	IdleTimeout     time.Duration // keep-alive idle connections
	ShutdownTimeout time.Duration // bound on draining in-flight requests at shutdown

	IssueTimeout   time.Duration // budget of one baseline issue decision (cmd/gateway gives it to the baselines)
	GateTimeout    time.Duration // bound on one Redis gate call, independent of the client
	PublishTimeout time.Duration // bound on one Kafka publish, independent of the client
	StoreTimeout   time.Duration // bound on one MySQL call of a request

	CacheTTL         time.Duration // coupon metadata kept in the local cache (without a change feed confirming)
	CacheMaxAge      time.Duration // coupon metadata kept while the change feed (Deps.Changes) confirms: at least CacheTTL
	NegativeCacheTTL time.Duration // "no such coupon" kept in the local cache
	CacheMaxCoupons  int           // local cache capacity, in coupons
	ChangesPoll      time.Duration // how often the change counter is read (Deps.Changes): the bound on a missed change

	ReadyCacheTTL time.Duration // /readyz reuses its last result this long
	ReadyTimeout  time.Duration // bound on one round of readiness checks
	RetryAfter    time.Duration // Retry-After of 503 and 429 answers
	RateLimitByIP bool          // the issue rate limit (Deps.Limiter) counts per client IP, not per user
	LiveRefresh   time.Duration // a coupon's live view is computed at most once per this, shared by its viewers
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:8080",
		BodyLimit:        4 << 10,
		ReadTimeout:      10 * time.Second,
		WriteTimeout:     10 * time.Second,
		IdleTimeout:      60 * time.Second,
		ShutdownTimeout:  15 * time.Second,
		IssueTimeout:     5 * time.Second,
		GateTimeout:      time.Second,
		PublishTimeout:   3 * time.Second,
		StoreTimeout:     3 * time.Second,
		CacheTTL:         2 * time.Second,
		CacheMaxAge:      time.Minute,
		NegativeCacheTTL: time.Second,
		CacheMaxCoupons:  100_000,
		ChangesPoll:      250 * time.Millisecond,
		ReadyCacheTTL:    time.Second,
		ReadyTimeout:     2 * time.Second,
		RetryAfter:       time.Second,
		LiveRefresh:      time.Second,
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Addr == "", "http address is empty (COUPON_HTTP_ADDR, like 127.0.0.1:8080)")
	check(c.AdminToken == "", "admin token is required (COUPON_ADMIN_TOKEN)")
	check(c.AdminToken != "" && len(c.AdminToken) < 16, "admin token must be at least 16 characters (it has %d)", len(c.AdminToken))
	check(c.BodyLimit < 256 || c.BodyLimit > 1<<20, "body limit must be from 256 bytes to 1 MiB (it is %d)", c.BodyLimit)
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"read timeout", c.ReadTimeout}, {"write timeout", c.WriteTimeout}, {"idle timeout", c.IdleTimeout},
		{"shutdown timeout", c.ShutdownTimeout}, {"issue timeout", c.IssueTimeout}, {"gate timeout", c.GateTimeout},
		{"publish timeout", c.PublishTimeout}, {"store timeout", c.StoreTimeout},
		{"cache TTL", c.CacheTTL}, {"cache max age", c.CacheMaxAge}, {"negative cache TTL", c.NegativeCacheTTL}, {"changes poll", c.ChangesPoll},
		{"ready cache TTL", c.ReadyCacheTTL}, {"ready timeout", c.ReadyTimeout}, {"retry-after", c.RetryAfter},
		{"live refresh", c.LiveRefresh},
	} {
		check(d.v <= 0, "%s must be positive (it is %s)", d.name, d.v)
	}
	check(c.LiveRefresh > time.Minute, "live refresh must be at most 1m (it is %s)", c.LiveRefresh)
	check(c.CacheMaxCoupons < 1, "cache capacity must be at least 1 coupon (it is %d)", c.CacheMaxCoupons)
	return errors.Join(errs...)
}

// Bind binds every field to a flag with a COUPON_* environment default;
// the defaults are c's values (start from DefaultConfig).
func (c *Config) Bind(fs *cli.FlagSet) {
	fs.StringVar(&c.Addr, "http-addr", "COUPON_HTTP_ADDR", c.Addr, "gateway listen address, host:port")
	fs.SecretVar(&c.AdminToken, "admin-token", "COUPON_ADMIN_TOKEN", c.AdminToken, "bearer token of the admin endpoints (required, 16+ characters)")
	fs.IntVar(&c.BodyLimit, "body-limit", "COUPON_BODY_LIMIT", c.BodyLimit, "largest request body, bytes (413 above)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", "COUPON_READ_TIMEOUT", c.ReadTimeout, "time to read one request")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", "COUPON_WRITE_TIMEOUT", c.WriteTimeout, "time to write one response")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", "COUPON_IDLE_TIMEOUT", c.IdleTimeout, "keep-alive connections idle this long are closed")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", "COUPON_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, "bound on finishing requests in flight after SIGTERM")
	fs.DurationVar(&c.IssueTimeout, "issue-timeout", "COUPON_ISSUE_TIMEOUT", c.IssueTimeout, "budget of one baseline (db-lock, redis-lock) issue")
	fs.DurationVar(&c.GateTimeout, "gate-timeout", "COUPON_GATE_TIMEOUT", c.GateTimeout, "bound on one Redis gate call")
	fs.DurationVar(&c.PublishTimeout, "publish-timeout", "COUPON_PUBLISH_TIMEOUT", c.PublishTimeout, "bound on one Kafka publish (retries included)")
	fs.DurationVar(&c.StoreTimeout, "store-timeout", "COUPON_STORE_TIMEOUT", c.StoreTimeout, "bound on one MySQL call of a request")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", "COUPON_CACHE_TTL", c.CacheTTL, "coupon metadata cached this long (longer, up to --cache-max-age, while the Redis change feed confirms no change was missed)")
	fs.DurationVar(&c.CacheMaxAge, "cache-max-age", "COUPON_CACHE_MAX_AGE", c.CacheMaxAge, "coupon metadata cached at most this long while the Redis change feed confirms, every --changes-poll, that no change was missed (at least --cache-ttl)")
	fs.DurationVar(&c.NegativeCacheTTL, "negative-cache-ttl", "COUPON_NEGATIVE_CACHE_TTL", c.NegativeCacheTTL, "an unknown coupon ID cached this long")
	fs.DurationVar(&c.ChangesPoll, "changes-poll", "COUPON_CHANGES_POLL", c.ChangesPoll, "how often the coupon change counter is read: the latest a change missed on the Redis channel reaches this gateway")
	fs.IntVar(&c.CacheMaxCoupons, "cache-max-coupons", "COUPON_CACHE_MAX_COUPONS", c.CacheMaxCoupons, "coupons the local cache holds at most")
	fs.DurationVar(&c.ReadyCacheTTL, "ready-cache-ttl", "COUPON_READY_CACHE_TTL", c.ReadyCacheTTL, "/readyz reuses its result this long")
	fs.DurationVar(&c.ReadyTimeout, "ready-timeout", "COUPON_READY_TIMEOUT", c.ReadyTimeout, "bound on one round of readiness checks")
	fs.DurationVar(&c.RetryAfter, "retry-after", "COUPON_RETRY_AFTER", c.RetryAfter, "Retry-After of 503 answers")
	fs.DurationVar(&c.LiveRefresh, "live-refresh", "COUPON_LIVE_REFRESH", c.LiveRefresh, "a coupon's live view (the drop page) is computed at most once per this")
}
