package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisService runs Debian's redis-server with an append-only file
// (fsync every second) and no RDB snapshots.
type redisService struct{ s *Stack }

func (r *redisService) name() string    { return Redis }
func (r *redisService) ports() []int    { return []int{r.s.cfg.RedisPort} }
func (r *redisService) addr() string    { return r.s.RedisAddr() }
func (r *redisService) dir() string     { return r.s.svcDir(Redis) }
func (r *redisService) logFile() string { return filepath.Join(r.dir(), "redis.log") }
func (r *redisService) tools() []tool {
	return []tool{{"redis-server", "redis-server"}, {"redis-cli", "redis-tools"}}
}

func (r *redisService) stopTimeout() time.Duration  { return 20 * time.Second }
func (r *redisService) startTimeout() time.Duration { return 30 * time.Second }

func (r *redisService) conf() string { return filepath.Join(r.dir(), "redis.conf") }

func (r *redisService) prepare(ctx context.Context) error {
	data := filepath.Join(r.dir(), "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf(`# Written by couponctl stack; rewritten on every start.
bind 127.0.0.1
port %d
protected-mode yes
daemonize no
dir %s
logfile ""
databases 16
# Dev/test durability: append-only file fsynced every second, no snapshots.
save ""
appendonly yes
appendfsync everysec
maxclients 10000
tcp-backlog 511
latency-monitor-threshold 0
`, r.s.cfg.RedisPort, data)
	return os.WriteFile(r.conf(), []byte(conf), 0o644)
}

func (r *redisService) command() ([]string, error) {
	return []string{mustLook("redis-server"), r.conf()}, nil
}

func (r *redisService) ready(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: time.Second, PoolSize: 1})
	defer c.Close()
	return c.Ping(ctx).Err()
}
