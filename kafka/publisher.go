package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/cli"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

var _ coupon.Publisher = (*Publisher)(nil)

// Config configures the Publisher. Start from DefaultConfig.
type Config struct {
	Brokers []string // bootstrap addresses (required)
	Topic   string

	// BatchTimeout is how long a partition's batch waits for more records
	// before it is sent; kafka-go's default (1s) would add a second to
	// every answer.
	BatchTimeout time.Duration
	BatchSize    int   // records per produce request at most
	BatchBytes   int64 // bytes per produce request at most

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
		BatchSize:    256,
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
	fs.DurationVar(&c.BatchTimeout, "kafka-batch-timeout", "COUPON_KAFKA_BATCH_TIMEOUT", c.BatchTimeout, "how long a produce batch waits for more records")
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
	add(c.BatchTimeout <= 0, "batch timeout must be positive (COUPON_KAFKA_BATCH_TIMEOUT), not %s", c.BatchTimeout)
	add(c.BatchSize < 1 || c.BatchBytes < 1, "batch size and bytes must be positive")
	add(c.WriteTimeout <= 0 || c.DialTimeout <= 0 || c.MetadataTTL <= 0, "write and dial timeouts and the metadata TTL must be positive")
	add(c.RetryBackoff < 0, "retry backoff must not be negative")
	add(c.ClientID == "", "client ID is required")
	return errors.Join(errs...)
}

// Publisher writes admissions to the admitted-request topic through one
// shared kafka-go Writer: acks from all in-sync replicas, Murmur2 key
// hashing (the Java client's partitioner), key = coupon ID. Concurrent
// Publish calls share produce requests.
type Publisher struct {
	w         *kafkago.Writer
	transport *kafkago.Transport
	cfg       Config
	logger    *slog.Logger
}

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
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     balancer,
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    cfg.BatchSize,
		BatchBytes:   cfg.BatchBytes,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		// One attempt per WriteMessages: kafka-go's own retries would hide
		// an earlier attempt that may have landed behind a final error that
		// looks certain. Publish retries and remembers instead.
		MaxAttempts: 1,
		Transport:   transport,
		ErrorLogger: kafkago.LoggerFunc(func(msg string, args ...any) {
			logger.Debug("kafka writer: " + fmt.Sprintf(msg, args...))
		}),
	}
	logger.Info("kafka publisher ready", "brokers", cfg.Brokers, "topic", cfg.Topic,
		"batch_timeout", cfg.BatchTimeout, "batch_size", cfg.BatchSize, "write_timeout", cfg.WriteTimeout)
	return &Publisher{w: w, transport: transport, cfg: cfg, logger: logger}, nil
}

// Publish writes a to the topic and returns once all in-sync replicas
// acknowledged it. Errors wrap coupon.ErrPublishFailed when no attempt can
// have reached the log, coupon.ErrPublishUnknown when one may have.
func (p *Publisher) Publish(ctx context.Context, a coupon.Admission) error {
	value, err := coupon.MarshalAdmission(a)
	if err != nil {
		return fmt.Errorf("publish admission of user %d to coupon %d: %w: %w", a.UserID, a.CouponID, coupon.ErrPublishFailed, err)
	}
	msg := kafkago.Message{Key: coupon.EventKey(a.CouponID), Value: value}
	err = publishWithRetry(ctx, p.cfg.MaxAttempts, p.cfg.RetryBackoff, func(ctx context.Context) error {
		return p.w.WriteMessages(ctx, msg)
	})
	if err != nil {
		return fmt.Errorf("publish admission of user %d to coupon %d: %w", a.UserID, a.CouponID, err)
	}
	return nil
}

// publishWithRetry calls write up to attempts times while the error is
// transient. The result wraps ErrPublishUnknown if any attempt may have
// reached the log, ErrPublishFailed if none did; a later certain failure
// never clears an earlier unknown.
func publishWithRetry(ctx context.Context, attempts int, backoff time.Duration, write func(context.Context) error) error {
	maybeSent := false
	var errs []error
	for attempt := 1; ; attempt++ {
		err := write(ctx)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if Classify(err) == MaybeSent {
			maybeSent = true
		}
		if attempt >= attempts || !Retryable(err) {
			break
		}
		if err := sleep(ctx, time.Duration(attempt)*backoff); err != nil {
			errs = append(errs, err)
			break
		}
	}
	kind := coupon.ErrPublishFailed
	if maybeSent {
		kind = coupon.ErrPublishUnknown
	}
	return fmt.Errorf("%w after %d attempt(s): %w", kind, len(errs), attemptErrors(errs))
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
	cl := &kafkago.Client{Addr: p.w.Addr, Transport: t, Timeout: p.cfg.WriteTimeout}
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

// Stats returns the writer's counters since the previous call (kafka-go
// resets them on every read): produce requests, records, batch sizes and
// times. For profiling a run (the gateway's pprof listener serves it).
func (p *Publisher) Stats() kafkago.WriterStats { return p.w.Stats() }

// Close flushes pending records, waits for their acks and closes the
// connections.
func (p *Publisher) Close() error {
	err := p.w.Close()
	p.transport.CloseIdleConnections()
	return err
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

// Classify tells from a kafka-go write error whether the record may be in
// the log. It answers NotSent only for errors raised before the request
// was written to a connection (dial failures, no leader or topic known,
// a closed writer, a record too large for the batch) and for broker error
// codes that mean the partition rejected the request without appending it;
// anything else, including timeouts, broken connections, a cancelled
// context and unrecognised errors, is MaybeSent.
func Classify(err error) Outcome {
	err = firstWriteError(err)
	var kerr kafkago.Error
	var mtl kafkago.MessageTooLargeError
	var op *net.OpError
	switch {
	case err == nil:
		return NotSent
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
	switch {
	case err == nil:
		return false
	case errors.As(err, &op) && op.Op == "dial":
		return true
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
