package gateway

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"
)

// readiness probes the dependencies at most once per TTL, however many
// probes ask: one round runs at a time, the others reuse its result.
type readiness struct {
	checks  map[string]Check
	ttl     time.Duration
	timeout time.Duration

	mu     sync.Mutex
	at     time.Time
	result map[string]string // name -> "ok" or the error
	ok     bool
}

func newReadiness(checks map[string]Check, ttl, timeout time.Duration) *readiness {
	return &readiness{checks: checks, ttl: ttl, timeout: timeout}
}

// Check returns whether every dependency answered, and each one's state.
func (r *readiness) Check() (bool, map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.result != nil && time.Since(r.at) < r.ttl {
		return r.ok, r.result
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	type answer struct {
		name string
		err  error
	}
	answers := make(chan answer, len(r.checks))
	for name, check := range r.checks {
		go func() { answers <- answer{name, check(ctx)} }()
	}
	result, ok := make(map[string]string, len(r.checks)), true
	for range r.checks {
		select {
		case a := <-answers:
			if a.err != nil {
				result[a.name], ok = a.err.Error(), false
			} else {
				result[a.name] = "ok"
			}
		case <-ctx.Done():
		}
	}
	for name := range r.checks {
		if _, answered := result[name]; !answered {
			result[name], ok = "no answer within "+r.timeout.String(), false
		}
	}
	r.at, r.result, r.ok = time.Now(), result, ok
	return ok, result
}

// failures lists the failed checks as "name: error", sorted.
func failures(result map[string]string) string {
	var out []string
	for name, state := range result {
		if state != "ok" {
			out = append(out, name+": "+state)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}
