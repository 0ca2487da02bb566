package sinker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Dependencies whose outages the sinker rides out.
const (
	depKafka = "kafka"
	depMySQL = "mysql"
)

// outage tracks whether the sinker waits for one dependency. An outage is
// logged twice: one WARN once it has lasted outageGrace, naming what the
// sinker waits for, and one INFO when it ends, with its length and the
// failures seen; the failures in between are debug lines. Shorter ones (a
// leader election, a rebalance, a fresh cluster creating its offsets topic
// while the first sinker joins) are debug lines only. While it lasts the
// gauge is 1 and /readyz answers 503 naming the dependency.
type outage struct {
	dep   string
	log   *slog.Logger
	gauge prometheus.Gauge

	mu       sync.Mutex
	since    time.Time // zero: no outage
	told     bool      // the WARN is out
	waitFor  string
	lastErr  error
	failures int
}

// outageGrace is how long an outage lasts before it is logged.
const outageGrace = 3 * time.Second

func newOutage(dep string, log *slog.Logger, m *metrics) *outage {
	return &outage{dep: dep, log: log, gauge: m.unavailable.WithLabelValues(dep)}
}

// fail records a failure; the first one starts an outage.
func (o *outage) fail(waitFor string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		o.since, o.failures = time.Now(), 0
		o.gauge.Set(1)
	}
	o.waitFor, o.lastErr = waitFor, err
	o.failures++
	if !o.tell() {
		o.log.Debug(o.dep+" unavailable", "waiting_for", waitFor, "err", err)
	}
}

// check logs the outage going on once it has lasted outageGrace.
func (o *outage) check() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tell()
}

// tell logs the outage's WARN if it is due; it reports whether it did.
// The caller holds mu.
func (o *outage) tell() bool {
	if o.told || o.since.IsZero() || time.Since(o.since) < outageGrace {
		return false
	}
	o.told = true
	o.log.Warn(o.dep+" unavailable: the sinker waits and resumes by itself; nothing is committed past unwritten rows",
		"waiting_for", o.waitFor, "since", o.since.UTC().Format(time.RFC3339Nano), "err", o.lastErr)
	return true
}

// recover ends the outage, if any.
func (o *outage) recover() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return
	}
	level := slog.LevelDebug
	if o.told {
		level = slog.LevelInfo
	}
	o.log.Log(context.Background(), level, o.dep+" available again; the sinker resumed",
		"outage", time.Since(o.since).Round(time.Millisecond).String(), "failures", o.failures, "waited_for", o.waitFor)
	o.since, o.told, o.waitFor, o.lastErr, o.failures = time.Time{}, false, "", nil, 0
	o.gauge.Set(0)
}

// active reports whether an outage is going on.
func (o *outage) active() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.since.IsZero()
}

// err describes the outage going on, or returns nil.
func (o *outage) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return nil
	}
	return fmt.Errorf("%s: waiting for %s since %s (%s): %v", o.dep, o.waitFor,
		o.since.UTC().Format(time.RFC3339), time.Since(o.since).Round(time.Second), o.lastErr)
}

// readerLogLine classifies one kafka-go reader error line: the reader's
// own reconnects after a read i/o timeout (segmentio/kafka-go #726, #998:
// a connection's deadline passing on a loaded machine; the reader
// reconnects at once) are noise, counted and logged at debug level; every
// other line is a sign of trouble the watcher checks.
func readerLogLine(line string) (noise bool) {
	return strings.Contains(line, "unknown error reading partition") &&
		(strings.Contains(line, "i/o timeout") || strings.Contains(line, "deadline exceeded"))
}

// kafkaWatch decides when a Kafka outage starts and ends. The reader's
// error lines and fetch errors nudge it to probe the cluster (probeKafka),
// and during an outage it probes every probeEvery. An outage starts when a
// probe fails, or when FetchMessage failed (the reader gave up its retries
// for now) even though the cluster looks whole; it ends when a probe passes
// and the reader has reported no error for probeEvery.
type kafkaWatch struct {
	s     *Sinker
	o     *outage
	nudge chan struct{}

	mu          sync.Mutex
	lastBad     time.Time // the reader's last error
	lastErr     error
	fetchFailed bool // since the last probe
}

const probeEvery = time.Second

func newKafkaWatch(s *Sinker, o *outage) *kafkaWatch {
	return &kafkaWatch{s: s, o: o, nudge: make(chan struct{}, 1)}
}

// trouble records an error the reader reported; fetchFailed says
// FetchMessage itself returned it.
func (w *kafkaWatch) trouble(err error, fetchFailed bool) {
	w.mu.Lock()
	w.lastBad, w.lastErr = time.Now(), err
	w.fetchFailed = w.fetchFailed || fetchFailed
	w.mu.Unlock()
	w.s.log.Debug("kafka reader error", "fetch_failed", fetchFailed, "err", err)
	select {
	case w.nudge <- struct{}{}:
	default:
	}
}

// run probes after each nudge and, during an outage, every probeEvery.
func (w *kafkaWatch) run(ctx context.Context) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.nudge:
		case <-t.C:
			if !w.o.active() {
				continue
			}
			w.o.check()
		}
		waitFor, err := w.s.probeKafka(ctx)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		quiet := time.Since(w.lastBad) >= probeEvery
		forced, lastErr := w.fetchFailed, w.lastErr
		w.fetchFailed = false
		w.mu.Unlock()
		switch {
		case err != nil:
			w.o.fail(waitFor, err)
		case forced:
			w.o.fail("the Kafka reader to reconnect", lastErr)
		case quiet:
			w.o.recover()
		}
	}
}

// probeKafka checks what consuming needs: a bootstrap broker answering
// metadata, a reachable leader for every partition of the topic, and the
// group's coordinator found and reachable. On failure it names what is
// missing.
func (s *Sinker) probeKafka(ctx context.Context) (waitFor string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	tr := &kafka.Transport{DialTimeout: time.Second, MetadataTTL: time.Second}
	defer tr.CloseIdleConnections()
	brokers := s.cfg.Brokers
	var md *kafka.MetadataResponse
	for _, b := range brokers {
		cl := &kafka.Client{Addr: kafka.TCP(b), Transport: tr, Timeout: 2 * time.Second}
		if md, err = cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.Topic}}); err == nil {
			break
		}
	}
	if err != nil {
		return "a broker of " + strings.Join(brokers, ","), err
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		if len(md.Topics) == 1 {
			err = md.Topics[0].Error
		}
		return "topic " + s.cfg.Topic, fmt.Errorf("topic metadata: %v", err)
	}
	dialed := map[string]error{}
	var d net.Dialer
	reach := func(host string, port int) error {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		if e, ok := dialed[addr]; ok {
			return e
		}
		c, e := d.DialContext(ctx, "tcp", addr)
		if e == nil {
			_ = c.Close()
		}
		dialed[addr] = e
		return e
	}
	for _, p := range md.Topics[0].Partitions {
		what := fmt.Sprintf("the leader of partition %d", p.ID)
		switch {
		case p.Error != nil:
			return what, p.Error
		case p.Leader.Host == "" || p.Leader.ID < 0:
			return what, errors.New("no leader")
		}
		if e := reach(p.Leader.Host, p.Leader.Port); e != nil {
			return fmt.Sprintf("%s (broker %d)", what, p.Leader.ID), e
		}
	}
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 2 * time.Second}
	what := "the coordinator of group " + s.cfg.GroupID
	fc, err := cl.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: s.cfg.GroupID})
	if err == nil {
		err = fc.Error
	}
	if err != nil {
		return what, err
	}
	if e := reach(fc.Coordinator.Host, fc.Coordinator.Port); e != nil {
		return what, e
	}
	return "", nil
}
