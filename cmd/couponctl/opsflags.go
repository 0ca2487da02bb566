package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/internal/cli"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
	"github.com/coupondrop/coupon/ops"
)

// opsFlags are the connections of replay, rebuild-gate and reconcile.
type opsFlags struct {
	servers
	topic, group  string
	redisPassword string
	verbose       bool
}

func (f *opsFlags) bind(fs *cli.FlagSet, withRedis bool) {
	f.servers.bind(fs, true, withRedis)
	f.topic, f.group = coupon.DefaultTopic, coupon.DefaultSinkerGroup
	fs.TopicVar(&f.topic)
	// replay reads no group; the others read the sinker's offsets, never
	// moving them.
	if withRedis {
		fs.GroupIDVar(&f.group)
		fs.RedisMasterNameVar(&f.redisMaster)
		fs.RedisPasswordVar(&f.redisPassword)
	}
	fs.BoolVar(&f.verbose, "verbose", "COUPON_VERBOSE", false, "log progress details to stderr")
}

func (f *opsFlags) logger() *slog.Logger {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// open resolves the servers, announces them on stderr with the topic, and
// opens MySQL and the topic. With change, ambiguous servers or a database
// without the coupon schema are refused before anything is changed.
func (f *opsFlags) open(ctx context.Context, command string, change bool) (*mysql.DB, *couponkafka.Topic, error) {
	if err := f.resolve(); err != nil {
		return nil, nil, err
	}
	if len(f.resolvedKB) == 0 {
		return nil, nil, errors.New("kafka-brokers (COUPON_KAFKA_BROKERS) is required")
	}
	if f.topic == "" {
		return nil, nil, errors.New("topic (COUPON_TOPIC) is required")
	}
	f.lines = append(f.lines, "topic  "+f.topic)
	f.announce(os.Stderr, command, change)
	if !change {
		f.warnAmbiguous(os.Stderr)
	} else if err := f.mayChange(ctx, nil); err != nil {
		return nil, nil, err
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := mysql.Open(octx, mysql.Config{DSN: f.resolvedDSN, MaxConns: 4})
	if err != nil {
		return nil, nil, err
	}
	if change {
		if err := f.mayChange(octx, db); err != nil {
			_ = db.Close()
			return nil, nil, err
		}
	}
	return db, couponkafka.NewTopic(f.resolvedKB, f.topic), nil
}

// openGateClient opens the admission gate on Redis. Its timeouts are an
// operator's, not a request's: a coupon's whole state is read or written
// in one call.
func (f *opsFlags) openGateClient(ctx context.Context) (*admitter.Gate, error) {
	addrs := f.resolvedRedis
	if len(addrs) == 0 {
		return nil, errors.New("redis-addrs (COUPON_REDIS_ADDRS) is required")
	}
	cfg := admitter.DefaultConfig()
	cfg.Addrs, cfg.MasterName, cfg.Password = addrs, f.resolvedMaster, f.redisPassword
	cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout, cfg.BatchMax = 5*time.Second, time.Minute, time.Minute, 1
	gate, err := admitter.New(cfg, f.logger())
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", strings.Join(addrs, ","), err)
	}
	return gate, nil
}

// gateConns are what rebuild-gate and reconcile work on.
type gateConns struct {
	db    *mysql.DB
	topic *couponkafka.Topic
	gate  *admitter.Gate
	ids   []int64 // the coupons --coupon / --all name
}

// openGate opens MySQL, the topic and Redis (see open for change) and
// resolves --coupon / --all.
func (f *opsFlags) openGate(ctx context.Context, command string, change bool, id int, all bool) (*gateConns, error) {
	db, topic, err := f.open(ctx, command, change)
	if err != nil {
		return nil, err
	}
	gate, err := f.openGateClient(ctx)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	c := &gateConns{db: db, topic: topic, gate: gate}
	if c.ids, err = couponsArg(ctx, db, id, all); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the gate and MySQL.
func (c *gateConns) Close() {
	_ = c.gate.Close()
	_ = c.db.Close()
}

// couponsArg resolves --coupon N / --all into coupon IDs.
func couponsArg(ctx context.Context, db *mysql.DB, id int, all bool) ([]int64, error) {
	switch {
	case id > 0 && all:
		return nil, errors.New("give --coupon N or --all, not both")
	case id > 0:
		return []int64{int64(id)}, nil
	case all:
		return ops.AsyncCoupons(ctx, db)
	}
	return nil, errors.New("give --coupon N or --all")
}
