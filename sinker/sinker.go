// Package sinker consumes the admitted-request topic in batches and writes
// them to MySQL with the guarded bulk insert, committing offsets only after
// the transaction; poison records go to the dead-letter topic.
package sinker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/internal/sidehttp"
	"github.com/coupondrop/coupon/mysql"
	driver "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"
)

// Dead-letter reasons, the value of a dead-lettered record's "reason" header.
const (
	ReasonUndecodable   = "undecodable"             // not a valid Admission record
	ReasonUnknownCoupon = mysql.ReasonUnknownCoupon // no such coupon in MySQL
	ReasonOverTotal     = mysql.ReasonOverTotal     // the database guard refused it: over the coupon's total
)

// Headers of a dead-lettered record; its key and value are the original's.
const (
	HeaderReason    = "reason"
	HeaderError     = "error"
	HeaderTopic     = "source-topic"
	HeaderPartition = "source-partition"
	HeaderOffset    = "source-offset"
)

// Sinker is one consumer-group member. Several processes share the
// partitions; a rebalance's redeliveries insert nothing twice.
type Sinker struct {
	cfg       Config
	log       *slog.Logger
	db        *mysql.DB
	reader    *kafka.Reader
	dlq       *kafka.Writer
	metrics   *metrics
	mysqlAddr string

	kafkaDown *outage // the reader, the dead-letter writer or the cluster
	mysqlDown *outage // the insert transaction
	watch     *kafkaWatch
}

// New prepares the MySQL pool (it connects in Run, which waits for MySQL),
// the Kafka reader (joining the group happens on the first fetch in Run)
// and the dead-letter writer. A nil logger logs nothing.
func New(cfg Config, logger *slog.Logger) (*Sinker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = cli.OrDiscard(logger)
	db, err := mysql.OpenPool(cfg.MySQL)
	if err != nil {
		return nil, fmt.Errorf("sinker: %w", err)
	}
	s := &Sinker{cfg: cfg, log: logger, db: db, metrics: newMetrics()}
	if dsn, err := driver.ParseDSN(cfg.MySQL.DSN); err == nil { // Validate parsed it
		s.mysqlAddr = dsn.Addr
	}
	s.kafkaDown = newOutage(depKafka, logger, s.metrics)
	s.mysqlDown = newOutage(depMySQL, logger, s.metrics)
	s.watch = newKafkaWatch(s, s.kafkaDown)
	kafkaLog := logger.With("component", "kafka")
	s.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers,
		GroupID: cfg.GroupID,
		Topic:   cfg.Topic,
		// Room for the next batch while the current one is in MySQL, so
		// the partition readers keep fetching during the transaction.
		QueueCapacity:     2 * cfg.BatchSize * cfg.Workers,
		MinBytes:          cfg.MinBytes,
		MaxBytes:          cfg.MaxBytes,
		MaxWait:           cfg.MaxWait + readerRTTAllowance, // the broker waits cfg.MaxWait
		ReadBatchTimeout:  10 * time.Second,
		CommitInterval:    0, // synchronous commits, only after the DB transaction
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: cfg.SessionTimeout / 5,
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  cfg.SessionTimeout,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    2 * time.Second,
		// WatchPartitionChanges lets the group pick up added partitions.
		WatchPartitionChanges: true,
		Logger: kafka.LoggerFunc(func(msg string, args ...any) {
			kafkaLog.Debug(fmt.Sprintf(msg, args...))
		}),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			s.readerError(kafkaLog, fmt.Sprintf(msg, args...))
		}),
	})
	s.dlq = &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.DLQTopic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  3,
	}
	return s, nil
}

// readerRTTAllowance is kafka-go's allowance for a fetch's round trip
// (defaultRTT): a partition reader sets its connection's read deadline
// ReaderConfig.MaxWait after sending a fetch and asks the broker to wait
// that deadline less the allowance, or less a quarter for a MaxWait under
// the allowance (adjustDeadlineForRTT). Giving the reader cfg.MaxWait plus
// the allowance makes the broker wait exactly cfg.MaxWait and leaves the
// answer a second to arrive. With MaxWait alone (100 ms) the broker waited
// 75 ms and its answer had 25 ms: on a busy machine it often came late, and
// the reader reported an i/o timeout, closed the connection, dialled again
// (ApiVersions, Metadata, two ListOffsets) and fetched the lost records
// again: 11-15 reconnects a second in couponctl bench, more with traffic on
// every partition.
const readerRTTAllowance = time.Second

// readerError handles one error line of the kafka-go reader: its reconnects
// after a read timeout are noise (readerLogLine), lines that only happen
// once (leaving the group, skipping to the first offset) are warnings, and
// the rest is trouble for the Kafka watch to check: an outage is logged
// once by it, not once per line.
func (s *Sinker) readerError(log *slog.Logger, line string) {
	switch {
	case readerLogLine(line):
		s.metrics.readerErrors.WithLabelValues("read_timeout").Inc()
		log.Debug(line)
	case strings.Contains(line, "leave group failed"), strings.Contains(line, "reading before the first offset"):
		s.metrics.readerErrors.WithLabelValues("other").Inc()
		log.Warn(line)
	default:
		s.metrics.readerErrors.WithLabelValues("other").Inc()
		s.watch.trouble(errors.New(line), false)
	}
}

// Close leaves the consumer group and closes the connections, in reverse
// order of opening.
func (s *Sinker) Close() error {
	err := s.dlq.Close()
	if e := s.reader.Close(); e != nil && err == nil {
		err = e
	}
	if e := s.db.Close(); e != nil && err == nil {
		err = e
	}
	return err
}

// Run consumes until ctx is cancelled. On cancellation it stops fetching,
// settles the batch in flight (insert, dead letters, offset commit) within
// ShutdownTimeout, and returns nil. Kafka and MySQL outages are waited out
// (health.go). It returns an error only when the metrics listener cannot
// start or the reader is closed under it.
func (s *Sinker) Run(ctx context.Context) error {
	if s.cfg.MetricsAddr != "" {
		srv, err := s.serveMetrics()
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	// Settling a batch outlives ctx by at most ShutdownTimeout.
	settleCtx, cancelSettle := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSettle()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(s.cfg.ShutdownTimeout, cancelSettle)
		context.AfterFunc(settleCtx, func() { t.Stop() })
	})
	defer stop()

	if err := s.waitMySQL(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil // stopped while waiting for MySQL
	}
	s.log.Info("sinker started", "topic", s.cfg.Topic, "group", s.cfg.GroupID)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		s.watch.run(watchCtx)
	}()
	defer func() {
		stopWatch()
		<-watchDone
	}()
	// Pipeline: the fetcher gathers and decodes the next batches, one
	// worker's partitions each (fetch.go), while Workers goroutines settle them, each worker
	// owning the partitions p with p % Workers == its index, so one
	// partition's batches are settled in order by one worker. A coupon lives
	// in one partition, so workers never contend for a coupon's lock.
	w := s.cfg.Workers
	work := make([]chan *batch, w)
	for i := range work {
		work[i] = make(chan *batch, 1)
	}
	fetchErr := make(chan error, 1)
	go func() {
		defer func() {
			for _, c := range work {
				close(c)
			}
		}()
		fetchErr <- s.fetchLoop(ctx, work) // workers drain their channel until it closes
	}()
	// Offsets are committed by one goroutine while the next batches are in
	// MySQL: each commit follows its own batch's transaction, one
	// partition's commits come in order (from its one worker), and a lost
	// commit only means a harmless redelivery.
	var offsetTime time.Duration
	commits := make(chan []kafka.Message, 8*w)
	committerDone := make(chan struct{})
	go func() {
		defer close(committerDone)
		for c := range commits {
			offsetTime += s.commitOffsets(settleCtx, c)
		}
	}()
	stats := make([]runStats, w)
	var wg sync.WaitGroup
	for i := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[i]
			for {
				t0 := time.Now()
				b, ok := <-work[i]
				st.waited += time.Since(t0)
				if !ok {
					return
				}
				c, err := s.settle(ctx, settleCtx, b, st)
				if err != nil {
					s.log.Warn("batch abandoned at shutdown; it will be redelivered", "records", len(b.msgs), "err", err)
					for range work[i] { // let the fetcher finish
					}
					return
				}
				commits <- c
			}
		}()
	}
	wg.Wait()
	close(commits)
	<-committerDone
	var total runStats
	for _, st := range stats {
		total.add(st)
	}
	total.offset = offsetTime
	s.logStats(total)
	if err := <-fetchErr; ctx.Err() == nil {
		return fmt.Errorf("sinker: fetch: %w", err)
	}
	s.log.Info("sinker stopping")
	return nil
}

// runStats add up where a run's time went, logged at exit; waited, db and
// dlq are summed over the workers.
type runStats struct {
	batches, records        int64
	waited, db, dlq, offset time.Duration
}

func (st *runStats) add(o runStats) {
	st.batches += o.batches
	st.records += o.records
	st.waited += o.waited
	st.db += o.db
	st.dlq += o.dlq
}

func (s *Sinker) logStats(st runStats) {
	avg := int64(0)
	if st.batches > 0 {
		avg = st.records / st.batches
	}
	s.log.Info("sinker totals", "workers", s.cfg.Workers, "batches", st.batches, "records", st.records, "avg_batch", avg,
		"waited_for_fetch", st.waited.Round(time.Millisecond).String(), "db", st.db.Round(time.Millisecond).String(),
		"dead_letter", st.dlq.Round(time.Millisecond).String(), "offset_commit", st.offset.Round(time.Millisecond).String())
}

// poison is a record headed for the dead-letter topic.
type poison struct {
	msg    kafka.Message
	reason string
	err    string
}

type position struct {
	partition int
	offset    int64
}

// batch is a fetched batch, decoded.
type batch struct {
	msgs []kafka.Message
	rows []coupon.Issue
	bad  []poison
}

// decode turns records into rows; the undecodable ones become poison.
func (s *Sinker) decode(msgs []kafka.Message) *batch {
	b := &batch{msgs: msgs, rows: make([]coupon.Issue, 0, len(msgs))}
	for _, m := range msgs {
		a, err := coupon.UnmarshalAdmission(m.Value)
		if err == nil && !mysql.ValidAdmittedAt(a.AdmittedAt) {
			err = fmt.Errorf("decode admission: admittedAt %s out of range", a.AdmittedAt.Format(time.RFC3339))
		}
		if err != nil {
			b.bad = append(b.bad, poison{msg: m, reason: ReasonUndecodable, err: err.Error()})
			continue
		}
		b.rows = append(b.rows, coupon.Issue{
			CouponID: a.CouponID, UserID: a.UserID, Rank: a.Rank, AdmittedAt: a.AdmittedAt,
			Partition: int32(m.Partition), Offset: m.Offset,
		})
	}
	return b
}

// settle writes one batch: the insert transaction (retried with backoff on
// any error), then dead letters; it returns the records whose offsets are to
// be committed next. It returns an error only when shutdown cut it short.
func (s *Sinker) settle(ctx, settleCtx context.Context, b *batch, st *runStats) ([]kafka.Message, error) {
	batch, rows, bad := b.msgs, b.rows, b.bad
	s.metrics.batchSize.Observe(float64(len(batch)))
	t0 := time.Now()
	var res mysql.InsertResult
	if len(rows) > 0 {
		err := retry(ctx, settleCtx, s.mysqlDown, "MySQL at "+s.mysqlAddr, "insert batch", func() error {
			t0 := time.Now()
			var err error
			res, err = s.db.InsertIssues(settleCtx, rows)
			if err != nil {
				kind := dbErrorOther
				if mysql.IsTransient(err) {
					kind = dbErrorTransient
				}
				s.metrics.dbErrors.WithLabelValues(kind).Inc()
				return err
			}
			s.metrics.commitDuration.WithLabelValues("db").Observe(time.Since(t0).Seconds())
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(res.Rejected) > 0 {
			byPos := make(map[position]kafka.Message, len(batch))
			for _, m := range batch {
				byPos[position{m.Partition, m.Offset}] = m
			}
			for _, r := range res.Rejected {
				m := byPos[position{int(r.Issue.Partition), r.Issue.Offset}]
				bad = append(bad, poison{msg: m, reason: r.Reason,
					err: fmt.Sprintf("coupon %d user %d rank %d: %s", r.Issue.CouponID, r.Issue.UserID, r.Issue.Rank, r.Reason)})
			}
		}
	}
	s.metrics.inserted.Add(float64(res.Inserted))
	s.metrics.duplicates.Add(float64(res.Duplicates))

	st.db += time.Since(t0)
	if len(bad) > 0 {
		t0 := time.Now()
		if err := s.deadLetter(ctx, settleCtx, bad); err != nil {
			return nil, err
		}
		st.dlq += time.Since(t0)
	}

	// Commit the highest offset of each partition, never before the rows
	// are committed in MySQL. A failed commit only means a redelivery.
	last := map[int]kafka.Message{}
	for _, m := range batch {
		if l, ok := last[m.Partition]; !ok || m.Offset > l.Offset {
			last[m.Partition] = m
		}
	}
	commits := make([]kafka.Message, 0, len(last))
	for p, m := range last {
		commits = append(commits, m)
		s.metrics.lag.WithLabelValues(strconv.Itoa(p)).Set(float64(max(m.HighWaterMark-m.Offset-1, 0)))
	}
	st.batches++
	st.records += int64(len(batch))
	s.metrics.records.Add(float64(len(batch)))
	s.log.Debug("batch settled", "records", len(batch), "inserted", res.Inserted,
		"duplicates", res.Duplicates, "dead_lettered", len(bad))
	return commits, nil
}

// commitOffsets commits the highest offset of each partition of a settled
// batch and returns how long it took.
func (s *Sinker) commitOffsets(ctx context.Context, commits []kafka.Message) time.Duration {
	t0 := time.Now()
	if err := s.reader.CommitMessages(ctx, commits...); err != nil {
		s.metrics.commitErrors.Inc()
		level := slog.LevelWarn
		if s.kafkaDown.active() {
			level = slog.LevelDebug // the outage is logged once
		}
		s.log.Log(ctx, level, "offset commit failed; the batch will be redelivered and skipped as duplicates", "err", err)
	} else {
		s.metrics.commitDuration.WithLabelValues("offsets").Observe(time.Since(t0).Seconds())
	}
	return time.Since(t0)
}

// deadLetter writes poison records to the dead-letter topic with their
// reason, retrying until the broker acknowledges: nothing is committed past
// (and so dropped) before it is there.
func (s *Sinker) deadLetter(ctx, settleCtx context.Context, bad []poison) error {
	msgs := make([]kafka.Message, len(bad))
	for i, p := range bad {
		msgs[i] = kafka.Message{
			Key:   p.msg.Key,
			Value: p.msg.Value,
			Headers: []kafka.Header{
				{Key: HeaderReason, Value: []byte(p.reason)},
				{Key: HeaderError, Value: []byte(p.err)},
				{Key: HeaderTopic, Value: []byte(p.msg.Topic)},
				{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(p.msg.Partition), 10)},
				{Key: HeaderOffset, Value: strconv.AppendInt(nil, p.msg.Offset, 10)},
			},
		}
	}
	t0 := time.Now()
	err := retry(ctx, settleCtx, s.kafkaDown, "the dead-letter topic "+s.cfg.DLQTopic, "dead-letter write", func() error {
		return s.dlq.WriteMessages(settleCtx, msgs...)
	})
	if err != nil {
		return err
	}
	s.metrics.commitDuration.WithLabelValues("dlq").Observe(time.Since(t0).Seconds())
	// Every record is logged, up to a bound per batch; the rest are summed.
	const logged = 20
	for i, p := range bad {
		s.metrics.deadLettered.WithLabelValues(p.reason).Inc()
		if i < logged {
			s.log.Warn("record dead-lettered", "reason", p.reason, "partition", p.msg.Partition,
				"offset", p.msg.Offset, "key", string(p.msg.Key), "err", p.err)
		}
	}
	if len(bad) > logged {
		byReason := map[string]int{}
		for _, p := range bad[logged:] {
			byReason[p.reason]++
		}
		s.log.Warn("more records dead-lettered in this batch", "count", len(bad)-logged, "by_reason", byReason)
	}
	return nil
}

// retry calls f until it succeeds, backing off from 100 ms to 5 s with
// jitter; a failure is a failure of down (waiting for waitFor), which the
// success ends. After ctx is cancelled (shutdown) it stops retrying;
// settleCtx bounds the attempt in progress.
func retry(ctx, settleCtx context.Context, down *outage, waitFor, what string, f func() error) error {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			down.recover()
			return nil
		}
		if ctx.Err() != nil || settleCtx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		down.fail(waitFor, fmt.Errorf("%s: %w", what, err))
		down.log.Debug(what+" failed; retrying without committing offsets", "attempt", attempt, "retry_in", delay, "err", err)
		if !pause(ctx, delay+rand.N(delay/4+1)) {
			return fmt.Errorf("%s: %w", what, err)
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// waitMySQL waits until MySQL answers before consuming: a MySQL unreachable
// at start is an outage like one later (/readyz 503 naming it,
// coupon_sinker_unavailable{dependency="mysql"} 1, one WARN after
// outageGrace), waited out with backoff, not a reason to exit. A server
// that answers and refuses (wrong password, unknown database) is a
// configuration error and ends Run. It returns nil when ctx ends first.
func (s *Sinker) waitMySQL(ctx context.Context) error {
	var refused error
	err := retry(ctx, ctx, s.mysqlDown, "MySQL at "+s.mysqlAddr, "connect", func() error {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		err := s.db.PingContext(pctx)
		var merr *driver.MySQLError
		if errors.As(err, &merr) {
			refused = err
			return nil
		}
		return err
	})
	switch {
	case refused != nil:
		return fmt.Errorf("sinker: MySQL at %s refused the connection: %w", s.mysqlAddr, refused)
	case err != nil && ctx.Err() == nil:
		return fmt.Errorf("sinker: %w", err)
	}
	return nil
}

// serveMetrics starts the metrics and health listener.
func (s *Sinker) serveMetrics() (*http.Server, error) {
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("sinker: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := s.ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"status":"unavailable","error":%q}`+"\n", err.Error())
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	srv := sidehttp.Server(mux, s.cfg.MetricsTimeouts)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "err", err)
		}
	}()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return srv, nil
}

// ready fails during an outage, naming what the sinker waits for, and
// otherwise checks MySQL and one Kafka broker answer.
func (s *Sinker) ready(ctx context.Context) error {
	for _, o := range []*outage{s.kafkaDown, s.mysqlDown} {
		if err := o.err(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("mysql: %w", err)
	}
	var lastErr error
	for _, b := range s.cfg.Brokers {
		conn, err := (&kafka.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", b)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		lastErr = err
	}
	return fmt.Errorf("kafka: %w", lastErr)
}
