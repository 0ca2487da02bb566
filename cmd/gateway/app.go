package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/auth"
	"github.com/coupondrop/coupon/baseline"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
	"github.com/coupondrop/coupon/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
)

// config is the gateway binary's whole configuration: each component's
// own, bound by its Bind.
type config struct {
	HTTP  gateway.Config
	Gate  admitter.Config
	MySQL mysql.Config
	Kafka kafka.Config

	SinkerGroup string   // the sinkers' consumer group, whose lag the live page shows
	Baselines   []string // enabled baseline strategies

	JWT       auth.Config
	RateLimit ratelimit.Settings

	Log       cli.Log
	PprofAddr string // net/http/pprof listener; empty: off
}

// defaultConfig is every component's DefaultConfig.
func defaultConfig() config {
	return config{
		HTTP: gateway.DefaultConfig(), Gate: admitter.DefaultConfig(), MySQL: mysql.DefaultConfig(), Kafka: kafka.DefaultConfig(),
		SinkerGroup: coupon.DefaultSinkerGroup,
		Baselines:   []string{string(coupon.StrategyDBLock), string(coupon.StrategyRedisLock)},
		Log:         cli.DefaultLog(),
	}
}

func (c *config) bind(fs *cli.FlagSet) {
	c.HTTP.Bind(fs)
	c.Gate.Bind(fs)
	c.MySQL.Bind(fs)
	c.Kafka.Bind(fs)
	fs.GroupIDVar(&c.SinkerGroup)
	fs.ListVar(&c.Baselines, "baselines", "COUPON_BASELINES", c.Baselines, "baseline strategies served besides async (db-lock, redis-lock; empty: none)")
	c.JWT.Bind(fs)
	c.RateLimit.Bind(fs)
	c.Log.Bind(fs)
	fs.StringVar(&c.PprofAddr, "pprof-addr", "COUPON_PPROF_ADDR", c.PprofAddr, "serve net/http/pprof on this address, like 127.0.0.1:6060 (empty: off)")
}

// validate reports every problem at once.
func (c *config) validate() error {
	errs := []error{c.HTTP.Validate(), c.Gate.Validate(), c.MySQL.Validate(), c.Kafka.Validate(), c.Log.Validate()}
	if c.SinkerGroup == "" {
		errs = append(errs, errors.New("the sinkers' group is required (COUPON_GROUP_ID)"))
	}
	for _, b := range c.Baselines {
		if st := coupon.Strategy(b); st == coupon.StrategyAsync || !st.Valid() {
			errs = append(errs, fmt.Errorf("baselines: %q is not a baseline strategy (want db-lock, redis-lock) (COUPON_BASELINES)", b))
		}
	}
	if err := c.JWT.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w (COUPON_JWT_*)", err))
	}
	if _, _, err := c.RateLimit.Config(); err != nil {
		errs = append(errs, fmt.Errorf("%w (COUPON_RATE_LIMIT, COUPON_RATE_LIMIT_BURST)", err))
	}
	return errors.Join(errs...)
}

// parseConfig reads the configuration from the environment and args over
// the defaults, and validates it.
func parseConfig(args []string) (config, *cli.FlagSet, error) {
	cfg := defaultConfig()
	fs := cli.New("gateway")
	cfg.bind(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, fs, err
	}
	if err := cfg.validate(); err != nil {
		return cfg, fs, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, fs, nil
}

// run connects the dependencies, serves until ctx is cancelled, drains and
// closes everything in reverse order (the publisher after the server, so
// requests in flight get their acks).
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	db, err := mysql.Open(startCtx, cfg.MySQL)
	if err != nil {
		return err
	}
	defer closeLogged(logger, "mysql", db.Close)

	gate, err := admitter.New(cfg.Gate, logger)
	if err != nil {
		return fmt.Errorf("admission gate: %w", err)
	}
	defer closeLogged(logger, "admission gate", gate.Close)

	pub, err := kafka.New(cfg.Kafka, logger)
	if err != nil {
		return fmt.Errorf("kafka publisher: %w", err)
	}
	defer closeLogged(logger, "kafka publisher", pub.Close)

	if cfg.PprofAddr != "" {
		if err := servePprof(ctx, cfg.PprofAddr, pub, logger); err != nil {
			return fmt.Errorf("pprof listener: %w", err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(batchingMetrics(gate, pub)...)
	deps := gateway.Deps{
		Store: db, Gate: gate, Publisher: pub, Changes: gate,
		Issuers:  map[coupon.Strategy]coupon.Issuer{},
		Registry: reg,
		Lag:      kafka.NewLag(cfg.Kafka.Brokers, cfg.Kafka.Topic, cfg.SinkerGroup, cfg.HTTP.LiveRefresh),
		Checks: map[string]gateway.Check{
			"redis": func(ctx context.Context) error { return gate.Client().Ping(ctx).Err() },
			"kafka": pub.Ready,
		},
	}
	for _, b := range cfg.Baselines {
		switch coupon.Strategy(b) {
		case coupon.StrategyDBLock:
			dc := baseline.DefaultDBLockConfig()
			dc.Timeout = cfg.HTTP.IssueTimeout
			deps.Issuers[coupon.StrategyDBLock] = baseline.NewDBLock(db, dc, logger)
		case coupon.StrategyRedisLock:
			rc := baseline.DefaultRedisLockConfig()
			rc.Timeout = cfg.HTTP.IssueTimeout
			rl, err := baseline.NewRedisLock(db, gate.Client(), rc, logger)
			if err != nil {
				return fmt.Errorf("redis-lock baseline: %w", err)
			}
			deps.Issuers[coupon.StrategyRedisLock] = rl
		}
	}
	if cfg.JWT.Enabled() {
		v, err := auth.New(cfg.JWT)
		if err != nil {
			return fmt.Errorf("user auth: %w", err)
		}
		deps.UserAuth = v
		logger.Info("user auth on: the issue endpoint takes the user from a bearer token", "algorithms", strings.Join(v.Algorithms(), ","))
	}
	if l, err := cfg.RateLimit.New(); err != nil {
		return err
	} else if l != nil {
		deps.Limiter = l
		cfg.HTTP.RateLimitByIP = cfg.RateLimit.ByIP
		logger.Info("issue rate limit on", "rate", cfg.RateLimit.Rate, "burst", cfg.RateLimit.Burst, "byIP", cfg.RateLimit.ByIP)
	}

	srv, err := gateway.New(cfg.HTTP, deps, logger)
	if err != nil {
		return err
	}
	defer closeLogged(logger, "gateway", srv.Close)
	return srv.Run(ctx)
}

func closeLogged(logger *slog.Logger, what string, closeFn func() error) {
	if err := closeFn(); err != nil {
		logger.Warn("close "+what, "err", err)
	}
}

// batchingMetrics count the gateway's batching (couponctl bench reads them
// per phase): produce requests and the records they carried, admit script
// calls and the users they carried; and the gate's writes the Redis replicas
// did not acknowledge.
func batchingMetrics(gate *admitter.Gate, pub *kafka.Publisher) []prometheus.Collector {
	counter := func(name, help string, f func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	return []prometheus.Collector{
		counter("coupon_gateway_kafka_produce_requests_total", "Kafka produce requests sent (one per leader broker of a batch).",
			func() int64 { return pub.Stats().Requests }),
		counter("coupon_gateway_kafka_records_total", "Records the produce requests carried (attempts, retries included).",
			func() int64 { return pub.Stats().Records }),
		counter("coupon_gateway_gate_script_calls_total", "Admit script calls sent by the gate's batches.",
			func() int64 { return gate.Stats().Calls }),
		counter("coupon_gateway_gate_script_users_total", "Users the admit script calls carried.",
			func() int64 { return gate.Stats().Users }),
		unacked("admit", func() int64 { return gate.Stats().UnackedAdmits }),
		unacked("release", func() int64 { return gate.Stats().UnackedReleases }),
		unacked("pending", func() int64 { return gate.Stats().UnackedPending }),
	}
}

// unacked is one write kind's series of coupon_gateway_gate_unacked_writes_total.
func unacked(write string, f func() int64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "coupon_gateway_gate_unacked_writes_total",
		Help:        "Gate writes fewer Redis replicas acknowledged than COUPON_REDIS_WAIT_REPLICAS, by write: admit (admissions released again, answered unknown), release and pending (standing on the primary only, answered unknown).",
		ConstLabels: prometheus.Labels{"write": write},
	}, func() float64 { return float64(f()) })
}
