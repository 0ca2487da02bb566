package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// redisService runs Debian's redis-server with an append-only file
// (fsync every second) and no RDB snapshots: the one server of the
// standalone mode (node 0), or node 1..3 of the sentinel mode (node 1 the
// first primary, 2 and 3 its replicas) or 1..6 of the cluster mode.
type redisService struct {
	s    *Stack
	node int    // 0: standalone
	mode string // RedisSentinel or RedisCluster when node > 0
}

func (r *redisService) name() string {
	if r.node == 0 {
		return Redis
	}
	return Redis + "-" + strconv.Itoa(r.node)
}
func (r *redisService) port() int {
	return r.s.cfg.RedisPort + max(r.node-1, 0)
}

// busPort is the cluster bus port of a cluster node: after the six client
// ports, not the default port+10000 (which may be another profile's).
func (r *redisService) busPort() int { return r.s.cfg.RedisPort + 6 + r.node - 1 }
func (r *redisService) ports() []int {
	if r.mode == RedisCluster {
		return []int{r.port(), r.busPort()}
	}
	return []int{r.port()}
}
func (r *redisService) addr() string    { return fmt.Sprintf("127.0.0.1:%d", r.port()) }
func (r *redisService) dir() string     { return r.s.svcDir(r.name()) }
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
	extra := ""
	switch r.mode {
	case RedisSentinel:
		// The Sentinels rewrite this file when they move the primary:
		// it is written once, with the first primary's replicas.
		if _, err := os.Stat(r.conf()); err == nil {
			return nil
		}
		if r.node > 1 {
			extra = fmt.Sprintf("replicaof 127.0.0.1 %d\n", r.s.cfg.RedisPort)
		}
	case RedisCluster:
		extra = fmt.Sprintf("cluster-enabled yes\ncluster-port %d\ncluster-config-file %s\ncluster-node-timeout 5000\n",
			r.busPort(), filepath.Join(data, "nodes.conf"))
	}
	conf := fmt.Sprintf(`# Written by couponctl stack; rewritten on every start (sentinel mode: once).
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
# A replica's first sync starts at once, not after the default 5 s.
repl-diskless-sync-delay 0
latency-monitor-threshold 0
%s`, r.port(), data, extra)
	return os.WriteFile(r.conf(), []byte(conf), 0o644)
}

func (r *redisService) command() ([]string, error) {
	return []string{mustLook("redis-server"), r.conf()}, nil
}

// ready sends a PING; a replica must also have finished its first sync.
func (r *redisService) ready(ctx context.Context) error {
	if err := ping(ctx, r.addr()); err != nil {
		return err
	}
	if r.mode != RedisSentinel || r.node == 1 {
		return nil
	}
	info, err := respString(ctx, r.addr(), "INFO", "replication")
	if err != nil {
		return err
	}
	if infoField(info, "role") == "slave" && infoField(info, "master_link_status") != "up" {
		return fmt.Errorf("replica %s: link to its primary is %s", r.addr(), infoField(info, "master_link_status"))
	}
	return nil
}

func (r *redisService) role(ctx context.Context) string { return redisRole(ctx, r.addr()) }

func ping(ctx context.Context, addr string) error {
	s, err := respString(ctx, addr, "PING")
	if err != nil {
		return err
	}
	if s != "PONG" {
		return fmt.Errorf("PING answered %q", s)
	}
	return nil
}

// sentinelService runs one of the three Sentinels (Debian's
// redis-sentinel) of the sentinel mode, on RedisPort+3..5, watching the
// primary as SentinelMaster with a quorum of two.
type sentinelService struct {
	s    *Stack
	node int
}

func (t *sentinelService) name() string                { return "sentinel-" + strconv.Itoa(t.node) }
func (t *sentinelService) port() int                   { return t.s.cfg.RedisPort + 2 + t.node }
func (t *sentinelService) ports() []int                { return []int{t.port()} }
func (t *sentinelService) addr() string                { return fmt.Sprintf("127.0.0.1:%d", t.port()) }
func (t *sentinelService) dir() string                 { return t.s.svcDir(t.name()) }
func (t *sentinelService) logFile() string             { return filepath.Join(t.dir(), "sentinel.log") }
func (t *sentinelService) conf() string                { return filepath.Join(t.dir(), "sentinel.conf") }
func (t *sentinelService) tools() []tool               { return []tool{{"redis-sentinel", "redis-sentinel"}} }
func (t *sentinelService) stopTimeout() time.Duration  { return 20 * time.Second }
func (t *sentinelService) startTimeout() time.Duration { return 30 * time.Second }

func (t *sentinelService) prepare(ctx context.Context) error {
	// A Sentinel keeps its state (the current primary, its peers) in its
	// config file: written once.
	if _, err := os.Stat(t.conf()); err == nil {
		return nil
	}
	conf := fmt.Sprintf(`# Written once by couponctl stack; the Sentinel rewrites it.
bind 127.0.0.1
port %d
daemonize no
dir %s
logfile ""
sentinel monitor %s 127.0.0.1 %d 2
sentinel down-after-milliseconds %[3]s 5000
sentinel failover-timeout %[3]s 30000
sentinel parallel-syncs %[3]s 1
`, t.port(), t.dir(), SentinelMaster, t.s.cfg.RedisPort)
	return os.WriteFile(t.conf(), []byte(conf), 0o644)
}

func (t *sentinelService) command() ([]string, error) {
	return []string{mustLook("redis-sentinel"), t.conf()}, nil
}

func (t *sentinelService) ready(ctx context.Context) error { return ping(ctx, t.addr()) }
func (t *sentinelService) role(ctx context.Context) string {
	v, err := respDo(ctx, t.addr(), "SENTINEL", "get-master-addr-by-name", SentinelMaster)
	if a, ok := v.([]any); err == nil && ok && len(a) == 2 {
		return fmt.Sprintf("sentinel (primary %v:%v)", a[0], a[1])
	}
	return "sentinel"
}

// waitSentinels waits until every Sentinel sees the primary with its two
// replicas and its two peers, so a failover can happen from then on.
func (s *Stack) waitSentinels(ctx context.Context) error {
	return s.waitGroup(ctx, "redis", "Sentinels to see the primary, 2 replicas and 2 peers", 60*time.Second, func(ctx context.Context) error {
		for _, a := range s.SentinelAddrs() {
			v, err := respDo(ctx, a, "SENTINEL", "master", SentinelMaster)
			if err != nil {
				return err
			}
			kv, _ := v.([]any)
			m := map[string]string{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = fmt.Sprint(kv[i+1])
			}
			if m["num-slaves"] != "2" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("sentinel %s sees %s replicas and %s other sentinels", a, m["num-slaves"], m["num-other-sentinels"])
			}
		}
		return nil
	})
}

// formRedisCluster creates the cluster on first start (three primaries,
// a replica each, with redis-cli --cluster create) and waits until every
// node reports cluster_state:ok.
func (s *Stack) formRedisCluster(ctx context.Context) error {
	addrs := s.RedisAddrs()
	info, err := respString(ctx, addrs[0], "CLUSTER", "INFO")
	if err != nil {
		return err
	}
	if infoField(info, "cluster_known_nodes") == "1" {
		s.printf("redis creating the cluster: 3 primaries, 1 replica each")
		logFile := filepath.Join(s.cfg.Dir, "redis-cluster-create.log")
		args := append([]string{mustLook("redis-cli"), "--cluster", "create"}, addrs...)
		args = append(args, "--cluster-replicas", "1", "--cluster-yes")
		if err := run(ctx, logFile, s.cfg.Dir, nil, args...); err != nil {
			return fmt.Errorf("redis cluster create: %w%s", err, tailNote(logFile))
		}
	}
	return s.waitGroup(ctx, "redis", "every cluster node to report cluster_state:ok", 60*time.Second, func(ctx context.Context) error {
		for _, a := range addrs {
			info, err := respString(ctx, a, "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if st := infoField(info, "cluster_state"); st != "ok" {
				return fmt.Errorf("node %s: cluster_state %s", a, st)
			}
			if n := infoField(info, "cluster_known_nodes"); n != "6" {
				return fmt.Errorf("node %s knows %s nodes", a, n)
			}
		}
		return nil
	})
}

// waitGroup polls cond until it passes or within passes, saying what it
// waits for when that takes more than a second.
func (s *Stack) waitGroup(ctx context.Context, group, what string, within time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	t0 := time.Now()
	told := false
	delay := 50 * time.Millisecond
	for {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		err := cond(pctx)
		pcancel()
		if err == nil {
			if told {
				s.printf("%-5s done waiting for %s (%s)", group, what, time.Since(t0).Round(10*time.Millisecond))
			}
			return nil
		}
		if !told && time.Since(t0) > time.Second {
			s.printf("%-5s waiting for %s", group, what)
			told = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waited %s for %s: %w", group, within, what, errors.Join(err, ctx.Err()))
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}
