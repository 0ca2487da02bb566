// Package sidehttp builds the net/http servers of the side listeners (the
// sinker's metrics and health, the gateway's opt-in pprof), bounded like
// the gateway's API listener so that idle or slow clients cannot hold
// their connections open.
package sidehttp

import (
	"net/http"
	"time"
)

// Timeouts bound each connection of a side listener; a zero field takes
// the Metrics value.
type Timeouts struct {
	ReadHeader time.Duration // request headers
	Read       time.Duration // whole request
	Write      time.Duration // whole response
	Idle       time.Duration // keep-alive wait for the next request
}

// Metrics are the timeouts of a metrics and health listener: requests and
// answers are small.
var Metrics = Timeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 10 * time.Second, Idle: 60 * time.Second}

// Profiling are the timeouts of a pprof listener: an answer may stream a
// CPU profile or trace of up to 110 seconds (net/http/pprof refuses longer
// ones under this write timeout).
var Profiling = Timeouts{ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 2 * time.Minute, Idle: 60 * time.Second}

// Server returns a server of h with timeouts t.
func Server(h http.Handler, t Timeouts) *http.Server {
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: pick(t.ReadHeader, Metrics.ReadHeader),
		ReadTimeout:       pick(t.Read, Metrics.Read),
		WriteTimeout:      pick(t.Write, Metrics.Write),
		IdleTimeout:       pick(t.Idle, Metrics.Idle),
	}
}
