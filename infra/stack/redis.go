package stack

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
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
# A rewrite (a forked copy of the whole dataset) once the file passes 512mb
# and doubled, not at the default 64mb: a bench run appends ~35mb, and a
# rewrite in every run cost ~0.8 cpu-s in the middle of its load.
auto-aof-rewrite-min-size 512mb
maxclients 10000
tcp-backlog 511
latency-monitor-threshold 0
`, r.s.cfg.RedisPort, data)
	return os.WriteFile(r.conf(), []byte(conf), 0o644)
}

func (r *redisService) command() ([]string, error) {
	return []string{mustLook("redis-server"), r.conf()}, nil
}

// ready sends a raw PING (a go-redis client would log every refused dial
// while the server starts).
func (r *redisService) ready(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(3 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read PING reply: %w", err)
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
