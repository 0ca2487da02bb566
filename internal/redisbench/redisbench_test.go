package redisbench

import (
	"context"
	"testing"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
)

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Result
		wantErr bool
	}{
		{"redis 7", `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"EVALSHA abc 2 k1 k2 10 __rand_int__","81300.81","0.550","0.104","0.519","0.815","1.047","3.151"
`, Result{Command: "EVALSHA abc 2 k1 k2 10 __rand_int__", OpsPerSec: 81300.81, P50Ms: 0.519, P99Ms: 1.047}, false},
		{"redis 6", `"EVALSHA","61728.39"
`, Result{}, true}, // no header row: refuse rather than guess
		{"empty", ``, Result{}, true},
		{"header only", `"test","rps"
`, Result{}, true},
		{"not a number", `"test","rps"
"X","fast"
`, Result{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCSV([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseCSV = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestAdmitCeiling(t *testing.T) {
	testenv.MustOpenRedis(t)
	id := testenv.RandomCouponID()
	// One node's ceiling: on a Redis Cluster, the node of the coupon's slot.
	addr := testenv.RedisNodeOf(t, coupon.RedisKey(id, "users"))
	res, err := AdmitCeiling(context.Background(), Options{Addr: addr, Requests: 20_000, CouponID: id})
	if err != nil {
		t.Fatal(err)
	}
	if res.OpsPerSec < 1000 {
		t.Errorf("implausible rate %+v", res)
	}
	t.Logf("redis-benchmark EVALSHA admit: %.0f ops/s (p50 %.3f ms, p99 %.3f ms)", res.OpsPerSec, res.P50Ms, res.P99Ms)
}
