package ratelimit

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAllow(t *testing.T) {
	type step struct {
		key   string
		at    time.Duration // after t0
		ok    bool
		retry time.Duration
	}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"burst then empty", Config{Rate: 1, Burst: 3}, []step{
			{"a", 0, true, 0}, {"a", 0, true, 0}, {"a", 0, true, 0},
			{"a", 0, false, time.Second},
			{"a", 500 * time.Millisecond, false, 500 * time.Millisecond},
			{"a", time.Second, true, 0},
			{"a", time.Second, false, time.Second},
		}},
		{"keys are independent", Config{Rate: 1, Burst: 1}, []step{
			{"a", 0, true, 0}, {"a", 0, false, time.Second},
			{"b", 0, true, 0}, {"b", 0, false, time.Second},
			{"user:1", 0, true, 0}, {"ip:1", 0, true, 0},
		}},
		{"refill caps at burst", Config{Rate: 10, Burst: 2}, []step{
			{"a", 0, true, 0}, {"a", 0, true, 0}, {"a", 0, false, 100 * time.Millisecond},
			{"a", time.Hour, true, 0}, {"a", time.Hour, true, 0}, {"a", time.Hour, false, 100 * time.Millisecond},
		}},
		{"fractional rate", Config{Rate: 0.5, Burst: 1}, []step{
			{"a", 0, true, 0}, {"a", 0, false, 2 * time.Second},
			{"a", 1500 * time.Millisecond, false, 500 * time.Millisecond},
			{"a", 2 * time.Second, true, 0},
		}},
		{"denied requests take no token", Config{Rate: 1, Burst: 1}, []step{
			{"a", 0, true, 0},
			{"a", 100 * time.Millisecond, false, 900 * time.Millisecond},
			{"a", 200 * time.Millisecond, false, 800 * time.Millisecond},
			{"a", time.Second, true, 0},
		}},
		{"clock going back refills nothing", Config{Rate: 1, Burst: 1}, []step{
			{"a", time.Second, true, 0}, {"a", 0, false, time.Second}, {"a", 2 * time.Second, true, 0},
		}},
		{"high rate", Config{Rate: 1e6, Burst: 1}, []step{
			{"a", 0, true, 0}, {"a", 0, false, time.Microsecond}, {"a", time.Microsecond, true, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustNew(t, tt.cfg)
			for i, s := range tt.steps {
				ok, retry := l.Allow(s.key, t0.Add(s.at))
				if ok != s.ok || retry != s.retry {
					t.Fatalf("step %d: Allow(%q, +%v) = %v, %v; want %v, %v", i, s.key, s.at, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{Rate: 5, Burst: 10}, ""},
		{"zero rate", Config{Rate: 0, Burst: 1}, "rate must be"},
		{"negative rate", Config{Rate: -1, Burst: 1}, "rate must be"},
		{"zero burst", Config{Rate: 1}, "burst must be"},
		{"negative max keys", Config{Rate: 1, Burst: 1, MaxKeys: -1}, "max keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("New(%+v) error = %v, want %q", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

// TestEviction: buckets idle long enough to be full are dropped, and a
// dropped key behaves exactly like a full bucket.
func TestEviction(t *testing.T) {
	l := mustNew(t, Config{Rate: 1, Burst: 2}) // full again after 2 s
	for i := range 1000 {
		l.Allow("old-"+strconv.Itoa(i), t0)
		l.Allow("old-"+strconv.Itoa(i), t0)
	}
	if n := l.Len(); n != 1000 {
		t.Fatalf("Len = %d, want 1000", n)
	}
	later := t0.Add(2 * time.Second)
	// Touch every shard once after the idle period, with fresh keys.
	probes := 0
	for i := 0; !allSwept(l, later); i++ {
		l.Allow("probe-"+strconv.Itoa(i), later)
		probes++
	}
	if n := l.Len(); n != probes {
		t.Fatalf("Len = %d after the sweep, want the %d probe keys only", n, probes)
	}
	// An evicted key starts full: burst 2.
	for i := range 2 {
		if ok, _ := l.Allow("old-1", later); !ok {
			t.Fatalf("request %d of an evicted key refused", i)
		}
	}
	if ok, _ := l.Allow("old-1", later); ok {
		t.Fatal("third request of an evicted key allowed beyond the burst")
	}
}

func allSwept(l *Limiter, t time.Time) bool {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		done := s.nextSweep > t.UnixNano()
		s.mu.Unlock()
		if !done {
			return false
		}
	}
	return true
}

// TestEvictionIsLossless: with sweeps running, the limiter answers exactly
// like a reference that keeps every bucket forever.
func TestEvictionIsLossless(t *testing.T) {
	cfg := Config{Rate: 2, Burst: 3} // idle after 1.5 s
	l := mustNew(t, cfg)
	type ref struct {
		tokens float64
		last   int64
	}
	model := map[string]*ref{}
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	evicted := false
	for i := range 20_000 {
		now = now.Add(time.Duration(rng.IntN(200)) * time.Millisecond)
		key := "k" + strconv.Itoa(rng.IntN(40))
		tn := now.UnixNano()
		r := model[key]
		if r == nil {
			r = &ref{tokens: float64(cfg.Burst), last: tn}
			model[key] = r
		}
		r.tokens = min(float64(cfg.Burst), r.tokens+float64(tn-r.last)*(cfg.Rate/1e9))
		r.last = tn
		wantOK := r.tokens >= 1
		if wantOK {
			r.tokens--
		}
		ok, _ := l.Allow(key, now)
		if ok != wantOK {
			t.Fatalf("step %d: Allow(%s) = %v, reference says %v", i, key, ok, wantOK)
		}
		evicted = evicted || l.Len() < len(model)
	}
	if !evicted {
		t.Fatal("no bucket was ever evicted: the test proves nothing")
	}
}

func TestMaxKeys(t *testing.T) {
	l := mustNew(t, Config{Rate: 1, Burst: 1, MaxKeys: 128}) // 2 per shard
	for i := range 10_000 {
		if ok, _ := l.Allow("k"+strconv.Itoa(i), t0); !ok {
			t.Fatalf("new key %d refused", i)
		}
	}
	if n := l.Len(); n > 128 {
		t.Fatalf("Len = %d, want at most 128", n)
	}
}

// TestConcurrent: goroutines hammering the same keys at one instant get
// exactly Burst tokens per key between them (run with -race).
func TestConcurrent(t *testing.T) {
	const (
		burst      = 50
		keys       = 200
		goroutines = 8
		perKey     = 20 // requests per key per goroutine
	)
	l := mustNew(t, Config{Rate: 1, Burst: burst})
	allowed := make([]atomic.Int64, keys)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := []byte("key-")
			for r := range perKey {
				for k := range keys {
					// Reuse one buffer for keys, as fiber does.
					buf = strconv.AppendInt(buf[:4], int64((k+g*7+r)%keys), 10)
					if ok, _ := l.Allow(unsafeString(buf), t0); ok {
						allowed[(k+g*7+r)%keys].Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	for k := range allowed {
		if n := allowed[k].Load(); n != burst {
			t.Fatalf("key %d: %d allowed, want exactly %d", k, n, burst)
		}
	}
	if n := l.Len(); n != keys {
		t.Fatalf("Len = %d, want %d", n, keys)
	}
}

func BenchmarkAllow(b *testing.B) {
	for _, keys := range []int{1, 1000, 100_000} {
		b.Run("keys="+strconv.Itoa(keys), func(b *testing.B) {
			l := mustNew(b, Config{Rate: 1e9, Burst: 1_000_000})
			names := make([]string, keys)
			for i := range names {
				names[i] = "203.0.113." + strconv.Itoa(i)
			}
			now := time.Now()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					l.Allow(names[i%keys], now)
					i++
				}
			})
		})
	}
}
