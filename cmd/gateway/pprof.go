package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/coupondrop/coupon/internal/sidehttp"
	"github.com/coupondrop/coupon/kafka"
)

// pprofTimeouts bound the pprof listener's connections (tests shorten them).
var pprofTimeouts = sidehttp.Profiling

// servePprof serves net/http/pprof on addr (opt-in, COUPON_PPROF_ADDR) until
// ctx ends, and /debug/kafka-writer: the publisher's kafka-go counters
// since the previous read (JSON). It is a separate listener so the profiler
// is never exposed on the API port; bind it to loopback.
func servePprof(ctx context.Context, addr string, pub *kafka.Publisher, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/kafka-writer", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(pub.Stats())
	})
	srv := sidehttp.Server(mux, pprofTimeouts)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof listener stopped", "err", err)
		}
	}()
	logger.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}
