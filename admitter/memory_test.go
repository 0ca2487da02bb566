package admitter_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/lua"
	"github.com/redis/go-redis/v9"
)

// BenchmarkMemoryPerUser admits 1,000,000 users (IDs 1..1e6) to one coupon
// with the real admit script, pipelined, and prints Redis' used_memory
// delta and MEMORY USAGE of the users hash per admitted user, then deletes
// the keys. It does the work once whatever b.N is:
//
//	go test ./admitter -run x -bench MemoryPerUser -benchtime 1x
func BenchmarkMemoryPerUser(b *testing.B) {
	const users, pipeline, workers = 1_000_000, 1000, 4
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr})
	defer client.Close()
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		b.Fatalf("test Redis at %s: %v", testenv.RedisAddr, err)
	}
	id := testenv.RandomCouponID()
	keys := []string{admitter.UsersKey(id)}
	defer client.Del(ctx, keys...)
	script := redis.NewScript(lua.Admit)
	if err := script.Load(ctx, client).Err(); err != nil {
		b.Fatal(err)
	}
	before := usedMemory(b, client)
	if err := client.HSet(ctx, keys[0], admitter.SeqField, 0).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for from := 1 + w*pipeline; from <= users; from += workers * pipeline {
				pipe := client.Pipeline()
				cmds := make([]*redis.Cmd, 0, pipeline)
				for u := from; u < from+pipeline && u <= users; u++ {
					cmds = append(cmds, script.EvalSha(ctx, pipe, keys, users, u))
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Error(err)
					return
				}
				for _, c := range cmds {
					if v, err := c.Int64Slice(); err != nil || v[0] != lua.AdmitOK {
						b.Errorf("admit: %v %v", v, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	after := usedMemory(b, client)
	fields, _ := client.HLen(ctx, keys[0]).Result()
	// The seq field is no user.
	n := fields - 1
	usage, err := client.MemoryUsage(ctx, keys[0], 0).Result() // SAMPLES 0: every field
	if err != nil {
		b.Fatal(err)
	}
	enc, _ := client.ObjectEncoding(ctx, keys[0]).Result()
	if n != users {
		b.Fatalf("%d users admitted, want %d", n, users)
	}
	perUser := float64(after-before) / users
	b.ReportMetric(perUser, "used-memory-B/user")
	b.ReportMetric(float64(usage)/users, "hash-B/user")
	fmt.Printf("\nRedis memory for one coupon with %d admitted users (IDs 1..%d, hash encoding %s):\n", users, users, enc)
	fmt.Printf("  used_memory delta     %6.1f bytes/user  (%.1f MB)\n", perUser, float64(after-before)/1e6)
	fmt.Printf("  MEMORY USAGE users    %6.1f bytes/user  (%.1f MB)\n", float64(usage)/users, float64(usage)/1e6)
}

func usedMemory(tb testing.TB, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Fatal("no used_memory in INFO memory")
	return 0
}
