package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/batch"
	"github.com/coupondrop/coupon/internal/cli"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/produce"
)

var (
	_ coupon.Publisher     = (*Publisher)(nil)
	_ coupon.PublisherThen = (*Publisher)(nil)
)

// Config configures the Publisher. Start from DefaultConfig.
type Config struct {
	Brokers []string // bootstrap addresses (required)
	Topic   string

	// BatchTimeout is how long a batch that is not full waits for more
	// records once a slot is free (one timer per batch); 0 sends what
	// queued while the batches in flight were busy. Default 2ms: on the
	// co-located 2-core bench, batches without it carried half the records
	// (22 per produce request on a hot coupon against the kafka-go Writer's
	// ~50 with its 2ms) and cost the broker twice the CPU per record.
	BatchTimeout time.Duration
	BatchSize    int   // records per batch at most (all partitions)
	BatchBytes   int64 // bytes per batch at most (all partitions)

	// WriteTimeout bounds one produce attempt (dial, send, broker ack) and
	// metadata reads.
	WriteTimeout time.Duration
	DialTimeout  time.Duration
	// MaxAttempts is how many times Publish tries a record; retries follow
	// transient errors only. Retrying an attempt whose outcome is unknown
	// may duplicate the record in the topic; the sinker is idempotent on
	// (coupon, user).
	MaxAttempts  int
	RetryBackoff time.Duration // wait before retry n is n×RetryBackoff
	MetadataTTL  time.Duration // how often partition leaders are refreshed
	ClientID     string

	// Dial, when set, opens the connections to brokers (tests put a
	// fault-injecting proxy in front of the broker with it).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// DefaultConfig is the production configuration against the dev stack's
// broker.
func DefaultConfig() Config {
	return Config{
		Brokers:      []string{"127.0.0.1:9092"},
		Topic:        coupon.DefaultTopic,
		BatchTimeout: 2 * time.Millisecond,
		BatchSize:    1024,
		BatchBytes:   1 << 20,
		WriteTimeout: 5 * time.Second,
		DialTimeout:  2 * time.Second,
		MaxAttempts:  3,
		RetryBackoff: 50 * time.Millisecond,
		MetadataTTL:  3 * time.Second,
		ClientID:     "coupon-gateway",
	}
}

// Bind binds the settings an operator sets to flags with COUPON_*
// environment defaults; the defaults are c's values.
func (c *Config) Bind(fs *cli.FlagSet) {
	fs.KafkaBrokersVar(&c.Brokers)
	fs.TopicVar(&c.Topic)
	fs.IntVar(&c.MaxAttempts, "publish-attempts", "COUPON_PUBLISH_ATTEMPTS", c.MaxAttempts, "tries of one publish (transient errors only)")
	fs.DurationVar(&c.BatchTimeout, "kafka-batch-timeout", "COUPON_KAFKA_BATCH_TIMEOUT", c.BatchTimeout, "how long a produce batch that is not full waits for more records (0: it takes what queued while the batches in flight were busy)")
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	add := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("kafka publisher: "+format, args...))
		}
	}
	add(len(c.Brokers) == 0, "at least one broker address is required (COUPON_KAFKA_BROKERS)")
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			add(true, "broker address %q (COUPON_KAFKA_BROKERS): %v", b, err)
		}
	}
	add(c.Topic == "", "topic is required (COUPON_TOPIC)")
	add(c.MaxAttempts < 1, "publish attempts must be at least 1 (COUPON_PUBLISH_ATTEMPTS), not %d", c.MaxAttempts)
	add(c.BatchTimeout < 0, "batch timeout must not be negative (COUPON_KAFKA_BATCH_TIMEOUT), not %s", c.BatchTimeout)
	add(c.BatchSize < 1 || c.BatchBytes < 1, "batch size and bytes must be positive")
	add(c.WriteTimeout <= 0 || c.DialTimeout <= 0 || c.MetadataTTL <= 0, "write and dial timeouts and the metadata TTL must be positive")
	add(c.RetryBackoff < 0, "retry backoff must not be negative")
	add(c.ClientID == "", "client ID is required")
	return errors.Join(errs...)
}

// Publisher writes admissions to the admitted-request topic: acks from all
// in-sync replicas, Murmur2 key hashing (the Java client's partitioner),
// key = coupon ID. Concurrent Publish calls share produce requests across
// coupons and partitions: a loop takes the records queued while the
// in-flight requests were busy (so a lone record goes out at once and
// batches grow with load), groups them by partition and the partitions by
// leader, and sends one produce request per leader broker, each record's
// outcome taken from its partition's answer.
type Publisher struct {
	transport *kafkago.Transport
	addr      net.Addr
	cfg       Config
	logger    *slog.Logger

	batch     *batch.Batcher[*record]
	closeOnce sync.Once

	batches, requests, records atomic.Int64 // counters for Stats
	partitionIDs               atomic.Pointer[[]int]
}

// record is one Publish attempt and its outcome.
type record struct {
	key, value []byte
	err        error
	// A PublishThen record also carries its context, its callback and
	// its attempts so far (retries re-queue the same record).
	ctx              context.Context
	then             func(error)
	tries            attempts
	couponID, userID int64
	keyBuf           [20]byte // key's storage: no allocation of its own
}

// InFlight is how many produce batches the publisher keeps in flight at
// once; records queue meanwhile and make the next batch.
const InFlight = 2

// New returns a publisher; it connects lazily (see Ready). A nil logger
// logs nothing.
func New(cfg Config, logger *slog.Logger) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger = cli.OrDiscard(logger)
	transport := &kafkago.Transport{
		Dial:        cfg.Dial,
		DialTimeout: cfg.DialTimeout,
		MetadataTTL: cfg.MetadataTTL,
		ClientID:    cfg.ClientID,
	}
	p := &Publisher{transport: transport, addr: kafkago.TCP(cfg.Brokers...), cfg: cfg, logger: logger}
	p.batch = batch.New(batch.Config[*record]{Max: cfg.BatchSize, Slots: InFlight, Linger: cfg.BatchTimeout,
		Size: func(r *record) int64 { return int64(len(r.key) + len(r.value) + recordOverhead) }, MaxSize: cfg.BatchBytes,
		Run: p.exec, Then: p.attempted})
	logger.Info("kafka publisher ready", "brokers", cfg.Brokers, "topic", cfg.Topic,
		"batch_size", cfg.BatchSize, "write_timeout", cfg.WriteTimeout)
	return p, nil
}

// Publish writes a to the topic and returns once all in-sync replicas
// acknowledged it. Errors wrap coupon.ErrPublishFailed when no attempt can
// have reached the log, coupon.ErrPublishUnknown when one may have.
func (p *Publisher) Publish(ctx context.Context, a coupon.Admission) error {
	value, err := coupon.MarshalAdmission(a)
	if err != nil {
		return fmt.Errorf("publish admission of user %d to coupon %d: %w: %w", a.UserID, a.CouponID, coupon.ErrPublishFailed, err)
	}
	key := coupon.EventKey(a.CouponID)
	err = publishWithRetry(ctx, p.cfg.MaxAttempts, p.cfg.RetryBackoff, func(ctx context.Context) error {
		return p.send(ctx, key, value)
	})
	if err != nil {
		return fmt.Errorf("publish admission of user %d to coupon %d: %w", a.UserID, a.CouponID, err)
	}
	return nil
}

// PublishThen is Publish without waiting (coupon.PublisherThen): the
// record joins the next batch and then gets its outcome from the goroutine
// that ran its last batch; a retry waits its backoff on a timer and queues
// the record again. A record whose ctx has ended before a batch takes it is
// not sent, and the batch carrying it ends by ctx's deadline.
func (p *Publisher) PublishThen(ctx context.Context, a coupon.Admission, then func(error)) {
	value, err := coupon.MarshalAdmission(a)
	if err != nil {
		then(fmt.Errorf("publish admission of user %d to coupon %d: %w: %w", a.UserID, a.CouponID, coupon.ErrPublishFailed, err))
		return
	}
	r := &record{value: value, ctx: ctx, then: then, couponID: a.CouponID, userID: a.UserID}
	r.key = coupon.AppendEventKey(r.keyBuf[:0], a.CouponID)
	if err := p.tooLarge(r.key, r.value); err != nil {
		p.attempted(r, err)
		return
	}
	p.batch.Go(ctx, r)
}

// attempted takes the outcome of one attempt of a PublishThen record (the
// batcher's Then): it hands the record's final outcome to its then, or
// queues it again after the backoff when the error is transient and
// attempts are left (Publish's rules, publishWithRetry).
func (p *Publisher) attempted(r *record, err error) {
	switch {
	case errors.Is(err, batch.ErrClosed):
		err = errClosed
	case err == nil:
		err = r.err
	}
	if err == nil {
		r.then(nil)
		return
	}
	r.tries.failed(err)
	if n := len(r.tries.errs); n < p.cfg.MaxAttempts && Retryable(err) {
		r.err = nil
		time.AfterFunc(time.Duration(n)*p.cfg.RetryBackoff, func() {
			if err := r.ctx.Err(); err != nil {
				r.tries.errs = append(r.tries.errs, err) // not an attempt: it changes no outcome
				r.then(r.finalError())
				return
			}
			p.batch.Go(r.ctx, r)
		})
		return
	}
	r.then(r.finalError())
}

// finalError is a PublishThen record's error once no attempt is left.
func (r *record) finalError() error {
	return fmt.Errorf("publish admission of user %d to coupon %d: %w", r.userID, r.couponID, r.tries.err())
}

// tooLarge refuses a record that no batch can carry.
func (p *Publisher) tooLarge(key, value []byte) error {
	if n := int64(len(key) + len(value) + recordOverhead); n > p.cfg.BatchBytes {
		return kafkago.MessageTooLargeError{Message: kafkago.Message{Key: key, Value: value}}
	}
	return nil
}

// errClosed is the answer of a closed publisher (io.ErrClosedPipe, as
// kafka-go's Writer answers).
var errClosed = fmt.Errorf("kafka publisher closed: %w", io.ErrClosedPipe)

// send queues one record for the next batch and waits for its outcome. If
// ctx ends while it is queued, nothing is sent (batch.ErrNotSent); once
// sent, ctx's end returns ctx's error (the outcome is then unknown).
func (p *Publisher) send(ctx context.Context, key, value []byte) error {
	if err := p.tooLarge(key, value); err != nil {
		return err
	}
	r := &record{key: key, value: value}
	switch err := p.batch.Do(ctx, r); {
	case errors.Is(err, batch.ErrClosed):
		return errClosed
	case err != nil:
		return err
	}
	return r.err
}

// recordOverhead bounds a record's framing in a record batch (length,
// attributes, timestamp and offset deltas, key and value lengths, headers).
const recordOverhead = 32

// exec produces a batch's records under one deadline: WriteTimeout, or
// the earliest deadline of its PublishThen records (nobody else bounds
// their wait; Publish's callers stop waiting at theirs).
func (p *Publisher) exec(records []*record) {
	deadline := time.Now().Add(p.cfg.WriteTimeout)
	for _, r := range records {
		if r.ctx == nil {
			continue
		}
		if d, ok := r.ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	p.produce(ctx, records)
}

// produce writes records in one produce request per leader broker (sent
// at once) and sets each record's err from its partition's answer.
func (p *Publisher) produce(ctx context.Context, records []*record) {
	p.batches.Add(1)
	p.records.Add(int64(len(records)))
	leaders, err := p.leaders(ctx)
	if err != nil {
		for _, r := range records {
			r.err = err
		}
		return
	}
	ids := p.partitions(len(leaders))
	// byPartition keeps each partition's records in queue order.
	byPartition := map[int][]*record{}
	byLeader := map[int32][]int{} // leader -> its partitions, in first-seen order
	for _, r := range records {
		part := balancer.Balance(kafkago.Message{Key: r.key}, ids...)
		if _, ok := byPartition[part]; !ok {
			byLeader[leaders[part]] = append(byLeader[leaders[part]], part)
		}
		byPartition[part] = append(byPartition[part], r)
	}
	now := time.Now()
	send := func(parts []int) {
		p.requests.Add(1)
		req := &produce.Request{Acks: int16(kafkago.RequireAll), Timeout: int32(p.cfg.WriteTimeout.Milliseconds()),
			Topics: []produce.RequestTopic{{Topic: p.cfg.Topic, Partitions: make([]produce.RequestPartition, len(parts))}}}
		for i, part := range parts {
			rs := byPartition[part]
			recs := make([]protocol.Record, len(rs))
			kvs := make([]recordBytes, 2*len(rs))
			for j, r := range rs {
				key, value := &kvs[2*j], &kvs[2*j+1]
				key.Reset(r.key)
				value.Reset(r.value)
				recs[j] = protocol.Record{Time: now, Key: key, Value: value}
			}
			req.Topics[0].Partitions[i] = produce.RequestPartition{Partition: int32(part),
				RecordSet: protocol.RecordSet{Version: 2, Records: protocol.NewRecordReader(recs...)}}
		}
		answers := partitionErrors(p.transport.RoundTrip(ctx, p.addr, req))
		for _, part := range parts {
			err := answers.of(part)
			for _, r := range byPartition[part] {
				r.err = err
			}
		}
	}
	var wg sync.WaitGroup
	for _, parts := range byLeader {
		if len(byLeader) == 1 {
			send(parts)
			break
		}
		wg.Go(func() { send(parts) })
	}
	wg.Wait()
}

// recordBytes is a record's key or value as a protocol.Bytes, what
// protocol.NewBytes makes with one allocation each: a partition's records
// get theirs in one.
type recordBytes struct{ bytes.Reader }

func (*recordBytes) Close() error { return nil }

// answers are a produce response's outcome per partition.
type answers struct {
	err   error           // the whole request failed (nothing answered)
	codes map[int32]int16 // partition -> error code
}

// partitionErrors reads a produce round trip's result.
func partitionErrors(m protocol.Message, err error) answers {
	if err != nil {
		return answers{err: err}
	}
	res, ok := m.(*produce.Response)
	if !ok {
		return answers{err: fmt.Errorf("kafka produce: unexpected response %T", m)}
	}
	a := answers{codes: map[int32]int16{}}
	for _, t := range res.Topics {
		for _, pr := range t.Partitions {
			a.codes[pr.Partition] = pr.ErrorCode
		}
	}
	return a
}

// errNoAnswer: the broker's response did not mention the partition, so its
// records may or may not be in the log.
var errNoAnswer = errors.New("kafka produce: no answer for the partition")

// of returns partition's outcome: nil (appended), its broker error code,
// the request's error, or errNoAnswer.
func (a answers) of(partition int) error {
	if a.err != nil {
		return a.err
	}
	code, ok := a.codes[int32(partition)]
	switch {
	case !ok:
		return errNoAnswer
	case code != 0:
		return kafkago.Error(code)
	}
	return nil
}

// leaders returns the leader broker of each partition of the topic, from
// the transport's cached metadata (no round trip; refreshed every
// MetadataTTL and after errors).
func (p *Publisher) leaders(ctx context.Context) ([]int32, error) {
	m, err := p.transport.RoundTrip(ctx, p.addr, &metadata.Request{TopicNames: []string{p.cfg.Topic}})
	if err != nil {
		return nil, err
	}
	for _, t := range m.(*metadata.Response).Topics {
		if t.Name != p.cfg.Topic {
			continue
		}
		if t.ErrorCode != 0 {
			return nil, kafkago.Error(t.ErrorCode)
		}
		if len(t.Partitions) == 0 {
			break
		}
		out := make([]int32, len(t.Partitions))
		for i := range out {
			out[i] = -1
		}
		for _, part := range t.Partitions {
			if int(part.PartitionIndex) < len(out) {
				out[part.PartitionIndex] = part.LeaderID
			}
		}
		return out, nil
	}
	return nil, kafkago.UnknownTopicOrPartition
}

// partitions returns the partition IDs 0..n-1 the balancer picks from
// (the writer's list: the same placement as kafka-go's Writer).
func (p *Publisher) partitions(n int) []int {
	if ids := p.partitionIDs.Load(); ids != nil && len(*ids) == n {
		return *ids
	}
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	p.partitionIDs.Store(&ids)
	return ids
}

// publishWithRetry calls write up to maxAttempts times while the error is
// transient. The result wraps ErrPublishUnknown if any attempt may have
// reached the log, ErrPublishFailed if none did; a later certain failure
// never clears an earlier unknown.
func publishWithRetry(ctx context.Context, maxAttempts int, backoff time.Duration, write func(context.Context) error) error {
	var t attempts
	for attempt := 1; ; attempt++ {
		err := write(ctx)
		if err == nil {
			return nil
		}
		t.failed(err)
		if attempt >= maxAttempts || !Retryable(err) {
			break
		}
		if err := sleep(ctx, time.Duration(attempt)*backoff); err != nil {
			t.errs = append(t.errs, err) // not an attempt: it changes no outcome
			break
		}
	}
	return t.err()
}

// attempts are a record's failed attempts: their errors, and whether one
// may have reached the log.
type attempts struct {
	errs      []error
	maybeSent bool
}

func (t *attempts) failed(err error) {
	t.errs = append(t.errs, err)
	if Classify(err) == MaybeSent {
		t.maybeSent = true
	}
}

// err wraps ErrPublishUnknown if any attempt may have reached the log,
// ErrPublishFailed if none did.
func (t *attempts) err() error {
	kind := coupon.ErrPublishFailed
	if t.maybeSent {
		kind = coupon.ErrPublishUnknown
	}
	return fmt.Errorf("%w after %d attempt(s): %w", kind, len(t.errs), attemptErrors(t.errs))
}

// attemptErrors are the errors of successive attempts, on one line.
type attemptErrors []error

func (e attemptErrors) Unwrap() []error { return e }

func (e attemptErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

// sleep waits d or until ctx ends, returning ctx's error then.
func sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ready checks that a broker answers now (through a fresh connection, not
// the writer's cached metadata) and that every partition of the topic has
// a leader. It never creates the topic.
func (p *Publisher) Ready(ctx context.Context) error {
	t := &kafkago.Transport{Dial: p.cfg.Dial, DialTimeout: p.cfg.DialTimeout, ClientID: p.cfg.ClientID}
	defer t.CloseIdleConnections()
	cl := &kafkago.Client{Addr: p.addr, Transport: t, Timeout: p.cfg.WriteTimeout}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{p.cfg.Topic}})
	if err != nil {
		return fmt.Errorf("kafka metadata: %w", err)
	}
	for _, topic := range md.Topics {
		if topic.Name != p.cfg.Topic {
			continue
		}
		if topic.Error != nil {
			return fmt.Errorf("kafka topic %s: %w", p.cfg.Topic, topic.Error)
		}
		for _, part := range topic.Partitions {
			if part.Error != nil || part.Leader.Host == "" {
				return fmt.Errorf("kafka topic %s: partition %d has no leader", p.cfg.Topic, part.ID)
			}
		}
		if len(topic.Partitions) > 0 {
			return nil
		}
	}
	return fmt.Errorf("kafka topic %s: not found", p.cfg.Topic)
}

// Stats are the publisher's counters since it started: batches (one per
// round of queued records), produce requests (one per leader broker of a
// batch) and records sent (attempts, retries included).
type Stats struct {
	Batches, Requests, Records int64
}

// RecordsPerRequest is Records/Requests (0 before the first request).
func (s Stats) RecordsPerRequest() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Records) / float64(s.Requests)
}

// Stats returns the counters (the gateway's pprof listener serves them).
func (p *Publisher) Stats() Stats {
	return Stats{Batches: p.batches.Load(), Requests: p.requests.Load(), Records: p.records.Load()}
}

// Close stops taking records, sends those queued, waits for their acks and
// closes the connections.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.batch.Close()
		p.transport.CloseIdleConnections()
	})
	return nil
}

// Outcome is what a failed produce may have done to the log.
type Outcome int

const (
	// MaybeSent: the record may have been appended (the request may have
	// reached the broker and no answer said otherwise). Never release its slot.
	MaybeSent Outcome = iota
	// NotSent: the record was certainly not appended.
	NotSent
)

func (o Outcome) String() string {
	if o == NotSent {
		return "not-sent"
	}
	return "maybe-sent"
}

// Classify tells from a produce error whether the record may be in the log.
// It answers NotSent only for errors raised before the request was written
// to a connection (dial failures, no leader or topic known, partitions of
// one request with different leaders, a record given up while queued, a
// closed publisher, a record too large for the batch) and for broker error
// codes that mean the partition rejected the request without appending it;
// anything else, including timeouts, broken connections, a cancelled
// context and unrecognised errors, is MaybeSent.
func Classify(err error) Outcome {
	err = firstWriteError(err)
	var kerr kafkago.Error
	var mtl kafkago.MessageTooLargeError
	var op *net.OpError
	var route *produce.Error
	switch {
	case err == nil:
		return NotSent
	case errors.Is(err, batch.ErrNotSent):
		return NotSent // its caller gave up while it was queued
	case errors.As(err, &route):
		return NotSent // no broker to route the request to (kafka-go raises it before sending)
	case errors.As(err, &op) && op.Op == "dial":
		return NotSent // never connected (a dial timeout included)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Returned while a request may be in flight (kafka-go goes on
		// writing a batch after its caller stopped waiting).
		return MaybeSent
	case errors.As(err, &mtl):
		return NotSent // refused by the writer before batching
	case errors.As(err, &kerr):
		if notAppended[kerr] {
			return NotSent
		}
		return MaybeSent
	case errors.Is(err, io.ErrClosedPipe):
		return NotSent // the writer was closed before the call
	case errors.Is(err, protocol.ErrNoTopic), errors.Is(err, protocol.ErrNoPartition), errors.Is(err, protocol.ErrNoLeader):
		return NotSent // no broker to send it to
	case errors.Is(err, syscall.ECONNREFUSED):
		return NotSent // only connect(2) reports it
	}
	return MaybeSent
}

// notAppended are the broker error codes of a produce response that mean
// the partition did not append the records. Absent on purpose:
// RequestTimedOut (appended by the leader, replication not confirmed),
// NotEnoughReplicasAfterAppend, NetworkException, KafkaStorageError,
// NotLeaderForPartition (NOT_LEADER_OR_FOLLOWER is also the answer to an
// acks=all request the leader had appended before it lost leadership while
// waiting for its followers, and a follower may have copied the record and
// become leader: seen twice in TestBrokerStopMidLoad as a released slot
// whose record was in the topic), Unknown (-1) and any code not listed.
var notAppended = map[kafkago.Error]bool{
	kafkago.InvalidMessage:                     true, // CORRUPT_MESSAGE: CRC check failed
	kafkago.UnknownTopicOrPartition:            true,
	kafkago.InvalidMessageSize:                 true,
	kafkago.LeaderNotAvailable:                 true,
	kafkago.BrokerNotAvailable:                 true,
	kafkago.MessageSizeTooLarge:                true,
	kafkago.InvalidTopic:                       true,
	kafkago.RecordListTooLarge:                 true,
	kafkago.NotEnoughReplicas:                  true, // checked before the append
	kafkago.InvalidRequiredAcks:                true,
	kafkago.TopicAuthorizationFailed:           true,
	kafkago.ClusterAuthorizationFailed:         true,
	kafkago.InvalidTimestamp:                   true,
	kafkago.UnsupportedSASLMechanism:           true,
	kafkago.IllegalSASLState:                   true,
	kafkago.UnsupportedVersion:                 true,
	kafkago.InvalidRequest:                     true,
	kafkago.UnsupportedForMessageFormat:        true,
	kafkago.PolicyViolation:                    true,
	kafkago.TransactionalIDAuthorizationFailed: true,
	kafkago.SASLAuthenticationFailed:           true,
	kafkago.FencedLeaderEpoch:                  true,
	kafkago.UnknownLeaderEpoch:                 true,
	kafkago.UnsupportedCompressionType:         true,
	kafkago.InvalidRecord:                      true,
	kafkago.ThrottlingQuotaExceeded:            true,
	kafkago.UnknownTopicID:                     true,
}

// Retryable tells whether another attempt soon may succeed: a transient
// broker code or a connection problem; not a timeout (it spent the time),
// a cancelled context or a record the broker will always refuse.
func Retryable(err error) bool {
	err = firstWriteError(err)
	var kerr kafkago.Error
	var op *net.OpError
	var route *produce.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &op) && op.Op == "dial":
		return true
	case errors.As(err, &route) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
		return true // leaders moved under the cached metadata
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, io.ErrClosedPipe):
		return false // a timed-out attempt has spent the caller's budget
	case errors.As(err, &kerr):
		return kerr.Temporary() || kerr == kafkago.BrokerNotAvailable
	case errors.Is(err, protocol.ErrNoTopic), errors.Is(err, protocol.ErrNoPartition), errors.Is(err, protocol.ErrNoLeader):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &op):
		return true
	}
	return false
}

// firstWriteError unwraps kafka-go's WriteErrors (one entry per message;
// Publish writes one), which does not implement Unwrap.
func firstWriteError(err error) error {
	var we kafkago.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				return e
			}
		}
	}
	return err
}
