package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MustStartRedisCluster starts a private Redis Cluster of masters nodes (no
// replicas) on free ports in a temporary folder, with Debian's redis-server
// and redis-cli, waits until every node reports cluster_state:ok and
// returns the node addresses. The nodes are killed at cleanup.
func MustStartRedisCluster(tb testing.TB, masters int) []string {
	tb.Helper()
	Integration(tb)
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Fatalf("redis cluster: %s not installed (Debian packages redis-server, redis-tools): %v", bin, err)
		}
	}
	ports := freePorts(tb, 2*masters) // a client port and a cluster bus port each
	addrs := make([]string, masters)
	for i := range masters {
		port, bus := ports[2*i], ports[2*i+1]
		addrs[i] = "127.0.0.1:" + strconv.Itoa(port)
		dir := filepath.Join(tb.TempDir(), "node"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		conf := fmt.Sprintf("bind 127.0.0.1\nport %d\ncluster-enabled yes\ncluster-port %d\ncluster-config-file nodes.conf\n"+
			"cluster-node-timeout 5000\ndir %s\nsave \"\"\nappendonly no\ndaemonize no\nlogfile %s\n",
			port, bus, dir, filepath.Join(dir, "redis.log"))
		confPath := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command("redis-server", confPath)
		if err := cmd.Start(); err != nil {
			tb.Fatalf("redis cluster node %s: %v", addrs[i], err)
		}
		tb.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		Eventually(tb, 10*time.Second, func() error { return c.Ping(context.Background()).Err() })
		_ = c.Close()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	var out bytes.Buffer
	create := exec.Command("redis-cli", args...)
	create.Stdout, create.Stderr = &out, &out
	if err := create.Run(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out.String())
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		Eventually(tb, 30*time.Second, func() error {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("node %s: cluster not ready yet", a)
			}
			return nil
		})
		_ = c.Close()
	}
	return addrs
}
