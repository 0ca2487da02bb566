// Package ratelimit is an in-memory token-bucket limiter per key (a user or a
// client IP), sharded so concurrent callers rarely share a lock.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"
)

// Config sets the rate of every key's bucket.
type Config struct {
	Rate    float64 // tokens added per second per key; > 0
	Burst   int     // bucket capacity: requests allowed at once after idling; >= 1
	MaxKeys int     // keys tracked at most (0: DefaultMaxKeys); beyond, idle-most-likely keys are dropped
}

// DefaultMaxKeys bounds memory (~100 bytes a key) when Config.MaxKeys is 0.
const DefaultMaxKeys = 1 << 20

const numShards = 64 // power of two

// Validate reports a configuration the limiter cannot use.
func (c Config) Validate() error {
	switch {
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("rate limit: rate must be a positive number of requests per second (got %v)", c.Rate)
	case c.Burst < 1:
		return fmt.Errorf("rate limit: burst must be at least 1 (got %d)", c.Burst)
	case c.MaxKeys < 0:
		return errors.New("rate limit: max keys must not be negative")
	}
	return nil
}

// Limiter is a set of token buckets, one per key, created full on first use.
// A bucket idle long enough to be full again is indistinguishable from a new
// one, so it is evicted. It is safe for concurrent use.
type Limiter struct {
	rate     float64 // tokens per nanosecond
	burst    float64
	idle     int64 // ns after which an untouched bucket is full: evictable
	maxShard int   // keys per shard at most
	seed     maphash.Seed
	shards   [numShards]shard
}

type shard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	nextSweep int64    // unix ns
	_         [40]byte // keep neighbouring shards' locks off one cache line
}

type bucket struct {
	tokens float64
	last   int64 // unix ns of the last refill
}

// New returns a Limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	l := &Limiter{
		rate:     cfg.Rate / 1e9,
		burst:    float64(cfg.Burst),
		maxShard: max(1, cfg.MaxKeys/numShards),
		seed:     maphash.MakeSeed(),
	}
	// Time to refill an empty bucket, at least a second so sweeps stay rare.
	l.idle = max(int64(float64(cfg.Burst)/l.rate), int64(time.Second))
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]*bucket)
	}
	return l, nil
}

// Allow takes one token from key's bucket at time now. When the bucket is
// empty it returns false and how long until a token is available. key may
// alias a buffer the caller reuses: Allow copies it before keeping it.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	t := now.UnixNano()
	s := &l.shards[maphash.String(l.seed, key)&(numShards-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if t >= s.nextSweep {
		s.sweep(t, l.idle)
	}
	b := s.buckets[key]
	if b == nil {
		if len(s.buckets) >= l.maxShard {
			s.dropOne()
		}
		b = &bucket{tokens: l.burst, last: t}
		s.buckets[strings.Clone(key)] = b
	} else if t > b.last {
		b.tokens = min(l.burst, b.tokens+float64(t-b.last)*l.rate)
		b.last = t
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) / l.rate))
}

// sweep drops the buckets idle for at least idle ns (full again) and
// schedules the next sweep, so each bucket is visited about once per idle.
func (s *shard) sweep(t, idle int64) {
	for k, b := range s.buckets {
		if t-b.last >= idle {
			delete(s.buckets, k)
		}
	}
	s.nextSweep = t + idle
}

// dropOne evicts an arbitrary bucket of a full shard: its key gets a fresh
// (full) bucket if it comes back, which errs on the side of allowing.
func (s *shard) dropOne() {
	for k := range s.buckets {
		delete(s.buckets, k)
		return
	}
}

// Len returns the number of keys tracked, for tests and metrics.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}
