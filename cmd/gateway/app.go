package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// config is the gateway binary's whole configuration.
type config struct {
	HTTP gateway.Config

	RedisAddrs    string
	RedisCluster  bool
	RedisMaster   string
	RedisPassword string
	RedisPoolSize int
	GateBatchMax  int
	GatePipelines int
	// RedisWaitReplicas > 0: each admission batch waits (WAIT) for that many
	// Redis replicas before it is published.
	RedisWaitReplicas int
	RedisWaitTimeout  time.Duration

	MySQLDSN   string
	MySQLConns int

	KafkaBrokers      string
	Topic             string
	SinkerGroup       string // the sinkers' consumer group, whose lag the live page shows
	PublishAttempts   int
	KafkaBatchTimeout time.Duration

	Baselines string // enabled baseline strategies, comma-separated

	JWT       auth.Config
	RateLimit ratelimit.Settings

	LogFormat, LogLevel string
	PprofAddr           string // net/http/pprof listener; empty: off
}

func (c *config) bind(fs *cli.FlagSet) {
	c.HTTP.Bind(fs)
	fs.StringVar(&c.RedisAddrs, "redis-addrs", "COUPON_REDIS_ADDRS", "127.0.0.1:6379", "Redis address, or Redis Cluster seed addresses, comma-separated")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", "COUPON_REDIS_CLUSTER", false, "use the Redis Cluster client even with one address")
	fs.StringVar(&c.RedisMaster, "redis-master-name", "COUPON_REDIS_MASTER_NAME", "", "Redis Sentinel: the primary's master name; COUPON_REDIS_ADDRS then lists the Sentinels")
	fs.SecretVar(&c.RedisPassword, "redis-password", "COUPON_REDIS_PASSWORD", "", "Redis password")
	fs.IntVar(&c.RedisPoolSize, "redis-pool-size", "COUPON_REDIS_POOL_SIZE", 0, "Redis connections per node (0: go-redis default, 10 per CPU)")
	fs.IntVar(&c.GateBatchMax, "gate-batch-max", "COUPON_GATE_BATCH_MAX", 0, "admissions per Redis pipeline at most, 0..2048 (0: default, 1: no batching)")
	fs.IntVar(&c.GatePipelines, "gate-pipelines", "COUPON_GATE_PIPELINES", 0, "admission pipelines in flight at once (0: default)")
	fs.IntVar(&c.RedisWaitReplicas, "redis-wait-replicas", "COUPON_REDIS_WAIT_REPLICAS", 0, "Redis replicas that must acknowledge each admission batch (WAIT) before it is published (0: off, for a standalone Redis)")
	fs.DurationVar(&c.RedisWaitTimeout, "redis-wait-timeout", "COUPON_REDIS_WAIT_TIMEOUT", admitter.DefaultWaitTimeout, "how long a batch waits for the replicas' acknowledgement (shorter than 1s)")
	fs.SecretVar(&c.MySQLDSN, "mysql-dsn", "COUPON_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/coupon", "MySQL/MariaDB DSN (go-sql-driver format)")
	fs.IntVar(&c.MySQLConns, "mysql-conns", "COUPON_MYSQL_CONNS", 32, "MySQL connection pool size")
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "COUPON_KAFKA_BROKERS", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&c.Topic, "topic", "COUPON_TOPIC", coupon.DefaultTopic, "admitted-request topic")
	fs.StringVar(&c.SinkerGroup, "group-id", "COUPON_GROUP_ID", "coupon-sinker", "the sinkers' consumer group (the drop page shows its lag)")
	fs.IntVar(&c.PublishAttempts, "publish-attempts", "COUPON_PUBLISH_ATTEMPTS", 3, "tries of one publish (transient errors only)")
	fs.DurationVar(&c.KafkaBatchTimeout, "kafka-batch-timeout", "COUPON_KAFKA_BATCH_TIMEOUT", 2*time.Millisecond, "how long a produce batch waits for more records")
	fs.StringVar(&c.Baselines, "baselines", "COUPON_BASELINES", "db-lock,redis-lock", "baseline strategies served besides async (db-lock, redis-lock; empty: none)")
	c.JWT.Bind(fs)
	c.RateLimit.Bind(fs)
	fs.StringVar(&c.LogFormat, "log-format", "COUPON_LOG_FORMAT", "json", "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", "COUPON_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "COUPON_PPROF_ADDR", "", "serve net/http/pprof on this address, like 127.0.0.1:6060 (empty: off)")
}

// validate reports every problem at once.
func (c *config) validate() error {
	errs := []error{c.HTTP.Validate()}
	add := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	add(len(cli.List(c.RedisAddrs)) == 0, "redis address is required (COUPON_REDIS_ADDRS)")
	add(c.RedisMaster != "" && c.RedisCluster, "a Redis Sentinel master name (COUPON_REDIS_MASTER_NAME) and the cluster client (COUPON_REDIS_CLUSTER) exclude each other")
	add(c.RedisPoolSize < 0, "redis pool size must not be negative (COUPON_REDIS_POOL_SIZE)")
	add(c.GateBatchMax < 0 || c.GateBatchMax > admitter.MaxBatch, "gate batch max must be 0..%d (COUPON_GATE_BATCH_MAX)", admitter.MaxBatch)
	add(c.GatePipelines < 0, "gate pipelines must not be negative (COUPON_GATE_PIPELINES)")
	add(c.RedisWaitReplicas < 0, "redis wait replicas must not be negative (COUPON_REDIS_WAIT_REPLICAS)")
	add(c.RedisWaitReplicas > 0 && c.RedisCluster, "waiting for Redis replicas (COUPON_REDIS_WAIT_REPLICAS) is not available with the cluster client (COUPON_REDIS_CLUSTER)")
	add(c.RedisWaitTimeout <= 0 || c.RedisWaitTimeout >= time.Second, "redis wait timeout must be between 0 and 1s (COUPON_REDIS_WAIT_TIMEOUT)")
	add(c.MySQLDSN == "", "mysql DSN is required (COUPON_MYSQL_DSN)")
	add(c.MySQLConns < 1, "mysql connections must be at least 1 (COUPON_MYSQL_CONNS)")
	add(len(cli.List(c.KafkaBrokers)) == 0, "kafka brokers are required (COUPON_KAFKA_BROKERS)")
	add(c.Topic == "", "topic is required (COUPON_TOPIC)")
	add(c.SinkerGroup == "", "the sinkers' group is required (COUPON_GROUP_ID)")
	add(c.PublishAttempts < 1, "publish attempts must be at least 1 (COUPON_PUBLISH_ATTEMPTS)")
	add(c.KafkaBatchTimeout <= 0, "kafka batch timeout must be positive (COUPON_KAFKA_BATCH_TIMEOUT)")
	for _, b := range cli.List(c.Baselines) {
		st := coupon.Strategy(b)
		add(st == coupon.StrategyAsync || !st.Valid(), "baselines: %q is not a baseline strategy (want db-lock, redis-lock) (COUPON_BASELINES)", b)
	}
	if err := c.JWT.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w (COUPON_JWT_*)", err))
	}
	if _, _, err := c.RateLimit.Config(); err != nil {
		errs = append(errs, fmt.Errorf("%w (COUPON_RATE_LIMIT, COUPON_RATE_LIMIT_BURST)", err))
	}
	add(c.LogFormat != "json" && c.LogFormat != "text", "log format must be json or text (COUPON_LOG_FORMAT), not %q", c.LogFormat)
	var lv slog.Level
	add(lv.UnmarshalText([]byte(c.LogLevel)) != nil, "log level must be debug, info, warn or error (COUPON_LOG_LEVEL), not %q", c.LogLevel)
	return errors.Join(errs...)
}

// parseConfig reads the configuration from the environment and args and
// validates it.
func parseConfig(args []string) (config, *cli.FlagSet, error) {
	var cfg config
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

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// run connects the dependencies, serves until ctx is cancelled, drains and
// closes everything in reverse order (the publisher after the server, so
// requests in flight get their acks).
func run(ctx context.Context, cfg config, logger *slog.Logger) error {
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	db, err := mysql.Open(startCtx, cfg.MySQLDSN, cfg.MySQLConns)
	if err != nil {
		return err
	}
	defer closeLogged(logger, "mysql", db.Close)

	gate, err := admitter.New(admitter.Config{
		Addrs: cli.List(cfg.RedisAddrs), Cluster: cfg.RedisCluster, MasterName: cfg.RedisMaster, Password: cfg.RedisPassword,
		PoolSize: cfg.RedisPoolSize, BatchMax: cfg.GateBatchMax, BatchPipelines: cfg.GatePipelines,
		WaitReplicas: cfg.RedisWaitReplicas, WaitTimeout: cfg.RedisWaitTimeout,
	}, logger)
	if err != nil {
		return fmt.Errorf("admission gate: %w", err)
	}
	defer closeLogged(logger, "admission gate", gate.Close)

	pub, err := kafka.New(kafka.Config{
		Brokers: cli.List(cfg.KafkaBrokers), Topic: cfg.Topic,
		MaxAttempts: cfg.PublishAttempts, BatchTimeout: cfg.KafkaBatchTimeout,
	}, logger)
	if err != nil {
		return fmt.Errorf("kafka publisher: %w", err)
	}
	defer closeLogged(logger, "kafka publisher", pub.Close)

	if cfg.PprofAddr != "" {
		if err := servePprof(ctx, cfg.PprofAddr, pub, logger); err != nil {
			return fmt.Errorf("pprof listener: %w", err)
		}
	}

	deps := gateway.Deps{
		Store: db, Gate: gate, Publisher: pub, Changes: gate,
		Issuers:  map[coupon.Strategy]coupon.Issuer{},
		Registry: prometheus.NewRegistry(),
		Lag:      kafka.NewLag(cli.List(cfg.KafkaBrokers), cfg.Topic, cfg.SinkerGroup, cfg.HTTP.LiveRefresh),
		Checks: map[string]gateway.Check{
			"redis": func(ctx context.Context) error { return gate.Client().Ping(ctx).Err() },
			"kafka": pub.Ready,
		},
	}
	for _, b := range cli.List(cfg.Baselines) {
		switch coupon.Strategy(b) {
		case coupon.StrategyDBLock:
			deps.Issuers[coupon.StrategyDBLock] = baseline.NewDBLock(db, baseline.DefaultDBLockConfig(), logger)
		case coupon.StrategyRedisLock:
			rl, err := baseline.NewRedisLock(db, gate.Client(), baseline.DefaultRedisLockConfig(), logger)
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
