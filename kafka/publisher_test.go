package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

func produceErr(err error) error {
	return kafkago.WriteErrors{fmt.Errorf("kafka.(*Client).Produce: %w", err)}
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name      string
		err       error
		want      Outcome
		retryable bool
	}{
		// Nothing was written to a connection.
		{"dial refused (produce)", produceErr(refused), NotSent, true},
		{"dial refused (metadata, before batching)", refused, NotSent, true},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, NotSent, true},
		{"no leader in cached metadata", produceErr(protocol.NewErrNoLeader("t", 3)), NotSent, true},
		{"no topic in cached metadata", produceErr(protocol.NewErrNoTopic("t")), NotSent, true},
		{"writer closed", io.ErrClosedPipe, NotSent, false},
		{"record larger than BatchBytes", kafkago.MessageTooLargeError{}, NotSent, false},
		// The broker answered: the partition did not append.
		{"LEADER_NOT_AVAILABLE", kafkago.WriteErrors{kafkago.LeaderNotAvailable}, NotSent, true},
		{"UNKNOWN_TOPIC_OR_PARTITION (metadata)", kafkago.UnknownTopicOrPartition, NotSent, true},
		{"NOT_ENOUGH_REPLICAS", kafkago.WriteErrors{kafkago.NotEnoughReplicas}, NotSent, true},
		{"MESSAGE_TOO_LARGE", kafkago.WriteErrors{kafkago.MessageSizeTooLarge}, NotSent, false},
		{"RECORD_LIST_TOO_LARGE", kafkago.WriteErrors{kafkago.RecordListTooLarge}, NotSent, false},
		{"TOPIC_AUTHORIZATION_FAILED", kafkago.WriteErrors{kafkago.TopicAuthorizationFailed}, NotSent, false},
		// It may be in the log.
		{"NOT_LEADER_OR_FOLLOWER (the leader may have appended before it moved)", kafkago.WriteErrors{kafkago.NotLeaderForPartition}, MaybeSent, true},
		{"NOT_ENOUGH_REPLICAS_AFTER_APPEND", kafkago.WriteErrors{kafkago.NotEnoughReplicasAfterAppend}, MaybeSent, true},
		{"REQUEST_TIMED_OUT (broker side)", kafkago.WriteErrors{kafkago.RequestTimedOut}, MaybeSent, true},
		{"NETWORK_EXCEPTION", kafkago.WriteErrors{kafkago.NetworkException}, MaybeSent, true},
		{"KAFKA_STORAGE_ERROR", kafkago.WriteErrors{kafkago.KafkaStorageError}, MaybeSent, true},
		{"UNKNOWN_SERVER_ERROR", kafkago.WriteErrors{kafkago.Unknown}, MaybeSent, false},
		{"read timeout waiting for the ack", produceErr(&net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), MaybeSent, false},
		{"produce context deadline", produceErr(context.DeadlineExceeded), MaybeSent, false},
		{"caller cancelled while in flight", context.Canceled, MaybeSent, false},
		{"caller deadline while in flight", context.DeadlineExceeded, MaybeSent, false},
		{"connection reset mid-request", produceErr(&net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}), MaybeSent, true},
		{"broken pipe while writing", produceErr(&net.OpError{Op: "write", Net: "tcp", Err: &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}}), MaybeSent, true},
		{"connection closed before the ack", produceErr(io.ErrUnexpectedEOF), MaybeSent, true},
		{"unrecognised error", errors.New("something odd"), MaybeSent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if got := Retryable(tt.err); got != tt.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.retryable)
			}
		})
	}
}

func TestPublishWithRetry(t *testing.T) {
	refused := produceErr(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED})
	reset := produceErr(&net.OpError{Op: "read", Err: syscall.ECONNRESET})
	tests := []struct {
		name     string
		results  []error // one per attempt; past the end, success
		attempts int
		want     error // nil, ErrPublishFailed or ErrPublishUnknown
		calls    int
	}{
		{"first attempt succeeds", nil, 3, nil, 1},
		{"transient failures then success", []error{refused, refused}, 3, nil, 3},
		{"certain failures exhaust the attempts", []error{refused, refused, refused}, 3, coupon.ErrPublishFailed, 3},
		{"an unknown attempt stays unknown after certain failures", []error{reset, refused, refused}, 3, coupon.ErrPublishUnknown, 3},
		{"an unknown attempt then success is success", []error{reset}, 3, nil, 2},
		{"permanent refusal is not retried", []error{kafkago.WriteErrors{kafkago.MessageSizeTooLarge}}, 3, coupon.ErrPublishFailed, 1},
		{"a timed-out attempt is not retried", []error{context.DeadlineExceeded}, 3, coupon.ErrPublishUnknown, 1},
		{"one attempt only", []error{refused}, 1, coupon.ErrPublishFailed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := publishWithRetry(context.Background(), tt.attempts, time.Microsecond, func(context.Context) error {
				calls++
				if calls <= len(tt.results) {
					return tt.results[calls-1]
				}
				return nil
			})
			if calls != tt.calls {
				t.Errorf("%d attempts, want %d", calls, tt.calls)
			}
			switch tt.want {
			case nil:
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
			case coupon.ErrPublishFailed:
				if !errors.Is(err, coupon.ErrPublishFailed) || errors.Is(err, coupon.ErrPublishUnknown) {
					t.Errorf("err = %v, want only ErrPublishFailed", err)
				}
			case coupon.ErrPublishUnknown:
				if !errors.Is(err, coupon.ErrPublishUnknown) || errors.Is(err, coupon.ErrPublishFailed) {
					t.Errorf("err = %v, want only ErrPublishUnknown", err)
				}
			}
		})
	}

	t.Run("cancelled during the backoff", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := publishWithRetry(ctx, 3, time.Hour, func(context.Context) error {
			calls++
			cancel()
			return refused
		})
		if calls != 1 || !errors.Is(err, coupon.ErrPublishFailed) || !errors.Is(err, context.Canceled) {
			t.Errorf("calls %d, err %v; want 1 call, failed (nothing sent) and context.Canceled", calls, err)
		}
	})
}

// javaMurmur2 are Kafka's own murmur2 vectors (clients' UtilsTest.testMurmur2):
// the Java producer puts key k in partition (murmur2(k) & 0x7fffffff) % n.
var javaMurmur2 = map[string]int32{
	"21":                         -973932308,
	"foobar":                     -790332482,
	"a-little-bit-long-string":   -985981536,
	"a-little-bit-longer-string": -1486304829,
	"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
	"abc": 479470107,
}

func javaPartition(key string, n int) int {
	return int(uint32(javaMurmur2[key])&0x7fffffff) % n
}

func TestBalancerMatchesJava(t *testing.T) {
	b := &kafkago.Murmur2Balancer{}
	for key := range javaMurmur2 {
		for _, n := range []int{1, 2, 3, 7, 8, 12, 64, 1000, 65521} {
			parts := make([]int, n)
			for i := range parts {
				parts[i] = i
			}
			if got, want := b.Balance(kafkago.Message{Key: []byte(key)}, parts...), javaPartition(key, n); got != want {
				t.Errorf("key %q over %d partitions: kafka-go %d, Java %d", key, n, got, want)
			}
		}
	}
}

func mustNewPublisher(tb testing.TB, cfg Config) *Publisher {
	tb.Helper()
	p, err := New(cfg, testenv.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

func brokers() []string { return testenv.KafkaBrokers }

// testConfig is DefaultConfig on the test Kafka and topic.
func testConfig(topic string) Config {
	c := DefaultConfig()
	c.Brokers, c.Topic = brokers(), topic
	return c
}

func TestPublishReadBack(t *testing.T) {
	const partitions = 8
	topic := testenv.MustCreateTopic(t, partitions)
	p := mustNewPublisher(t, testConfig(topic))
	ctx := context.Background()
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	coupons := []int64{21, 1001, 1002, 1003, 987654321}
	const perCoupon = 200
	now := time.Now().UTC().Truncate(time.Millisecond)
	var wg sync.WaitGroup
	for _, c := range coupons {
		for u := int64(1); u <= perCoupon; u++ {
			wg.Go(func() {
				a := coupon.Admission{CouponID: c, UserID: u, Rank: u, AdmittedAt: now, RequestID: "r-" + strconv.FormatInt(u, 10)}
				if err := p.Publish(ctx, a); err != nil {
					t.Errorf("publish %+v: %v", a, err)
				}
			})
		}
	}
	wg.Wait()

	got := readAll(t, topic, partitions, len(coupons)*perCoupon)
	partitionOf := map[int64]int{}
	seen := map[[2]int64]bool{}
	for _, m := range got {
		a, err := coupon.UnmarshalAdmission(m.Value)
		if err != nil {
			t.Fatalf("record at %d/%d: %v", m.Partition, m.Offset, err)
		}
		if string(m.Key) != strconv.FormatInt(a.CouponID, 10) {
			t.Errorf("record key %q for coupon %d", m.Key, a.CouponID)
		}
		if prev, ok := partitionOf[a.CouponID]; ok && prev != m.Partition {
			t.Errorf("coupon %d in partitions %d and %d", a.CouponID, prev, m.Partition)
		}
		partitionOf[a.CouponID] = m.Partition
		if a.Rank != a.UserID || !a.AdmittedAt.Equal(now) || a.RequestID != "r-"+strconv.FormatInt(a.UserID, 10) {
			t.Errorf("record does not round-trip: %+v", a)
		}
		seen[[2]int64{a.CouponID, a.UserID}] = true
	}
	if len(seen) != len(coupons)*perCoupon || len(got) != len(seen) {
		t.Errorf("%d records, %d distinct admissions; want %d of each", len(got), len(seen), len(coupons)*perCoupon)
	}
	// Kafka's vector: murmur2("21") = -973932308, so a Java producer puts
	// coupon 21 in partition (-973932308 & 0x7fffffff) % 8 = 4.
	if partitionOf[21] != 4 || javaPartition("21", partitions) != 4 {
		t.Errorf("coupon 21 is in partition %d; the Java client would use 4", partitionOf[21])
	}
}

// readAll reads every record of topic's partitions until want have come.
func readAll(tb testing.TB, topic string, partitions, want int) []kafkago.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafkago.Message
	for part := range partitions {
		conn, err := kafkago.DialLeader(ctx, "tcp", brokers()[0], topic, part)
		if err != nil {
			tb.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		if err != nil {
			tb.Fatal(err)
		}
		for off := int64(0); off < last; {
			if _, err := conn.Seek(off, kafkago.SeekAbsolute); err != nil {
				tb.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			batch := conn.ReadBatch(1, 10<<20)
			for {
				m, err := batch.ReadMessage()
				if err != nil {
					break
				}
				out = append(out, m)
				off = m.Offset + 1
			}
			if err := batch.Close(); err != nil && !errors.Is(err, io.EOF) {
				tb.Fatal(err)
			}
		}
		_ = conn.Close()
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Partition < out[j].Partition || out[i].Partition == out[j].Partition && out[i].Offset < out[j].Offset
	})
	if len(out) < want {
		tb.Fatalf("read %d records, want at least %d", len(out), want)
	}
	return out
}

func TestPublishClosedPortFails(t *testing.T) {
	testenv.Integration(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := testConfig("nowhere")
	cfg.Brokers, cfg.WriteTimeout = []string{addr}, 2*time.Second
	p := mustNewPublisher(t, cfg)
	start := time.Now()
	err := p.Publish(context.Background(), coupon.Admission{CouponID: 1, UserID: 2, Rank: 1, AdmittedAt: time.Now()})
	elapsed := time.Since(start)
	if !errors.Is(err, coupon.ErrPublishFailed) || errors.Is(err, coupon.ErrPublishUnknown) {
		t.Fatalf("publish to a closed port: %v; want ErrPublishFailed", err)
	}
	t.Logf("closed port: %v after %s", err, elapsed)
	if elapsed > cfg.WriteTimeout {
		t.Errorf("publish to a closed port took %s, more than the write timeout %s", elapsed, cfg.WriteTimeout)
	}
	if err := p.Ready(context.Background()); err == nil {
		t.Error("Ready with no broker: want an error")
	}
}

func TestReady(t *testing.T) {
	topic := testenv.MustCreateTopic(t, 2)
	ctx := context.Background()
	if err := mustNewPublisher(t, testConfig(topic)).Ready(ctx); err != nil {
		t.Errorf("Ready on an existing topic: %v", err)
	}
	missing := "test-missing-" + testenv.RandomID()
	if err := mustNewPublisher(t, testConfig(missing)).Ready(ctx); err == nil {
		t.Errorf("Ready on a missing topic: want an error")
	}
	if n, err := Partitions(ctx, brokers(), missing); err == nil {
		_ = DeleteTopics(ctx, brokers(), missing)
		t.Errorf("Ready created the missing topic (%d partitions)", n)
	}
}

func TestPublishRefusedRecordFails(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	topic := "test-" + testenv.RandomID()
	// The broker refuses record batches over 64 bytes: MESSAGE_TOO_LARGE.
	if _, err := EnsureTopic(ctx, brokers(), topic, 1, 1, map[string]string{"max.message.bytes": "64"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteTopics(context.Background(), brokers(), topic) })
	p := mustNewPublisher(t, testConfig(topic))
	err := p.Publish(ctx, coupon.Admission{CouponID: 7, UserID: 8, Rank: 1, AdmittedAt: time.Now()})
	if !errors.Is(err, coupon.ErrPublishFailed) || errors.Is(err, coupon.ErrPublishUnknown) {
		t.Fatalf("publish of a record the broker refuses: %v; want ErrPublishFailed", err)
	}
	t.Logf("refused: %v", err)
	if n := countRecords(t, topic, 0); n != 0 {
		t.Errorf("refused record is in the topic (%d records)", n)
	}
}

func countRecords(tb testing.TB, topic string, partition int) int64 {
	tb.Helper()
	conn, err := kafkago.DialLeader(context.Background(), "tcp", brokers()[0], topic, partition)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		tb.Fatal(err)
	}
	return last - first
}

// TestPublishUnknownWhenAckLost puts a proxy between publisher and broker
// that, once told to, forwards requests but drops every reply: the broker
// appends the record, the publisher never hears so. The answer must be
// ErrPublishUnknown, and the record is indeed in the topic.
func TestPublishUnknownWhenAckLost(t *testing.T) {
	if n := testenv.KafkaBrokerCount(t); n > 1 {
		t.Skipf("the proxy stands in for the only broker; the test Kafka has %d (COUPON_STACK_KAFKA_NODES=3)", n)
	}
	topic := testenv.MustCreateTopic(t, 1)
	p, px := mustNewProxiedPublisher(t, topic)
	ctx := context.Background()
	warm := coupon.Admission{CouponID: 5, UserID: 1, Rank: 1, AdmittedAt: time.Now()}
	if err := p.Publish(ctx, warm); err != nil {
		t.Fatalf("publish through the proxy: %v", err)
	}
	px.DropReplies.Store(true)
	lost := coupon.Admission{CouponID: 5, UserID: 2, Rank: 2, AdmittedAt: time.Now()}
	err := p.Publish(ctx, lost)
	if !errors.Is(err, coupon.ErrPublishUnknown) || errors.Is(err, coupon.ErrPublishFailed) {
		t.Fatalf("publish whose ack was lost: %v; want ErrPublishUnknown", err)
	}
	found := false
	for _, m := range readAll(t, topic, 1, 2) {
		if a, err := coupon.UnmarshalAdmission(m.Value); err == nil && a.UserID == lost.UserID {
			found = true
		}
	}
	if !found {
		t.Error("the record whose ack was lost is not in the topic: this test no longer shows why the outcome is unknown")
	}
}

// mustNewProxiedPublisher returns a publisher on topic whose connections
// go through a proxy to the only broker, with a one-second write timeout.
func mustNewProxiedPublisher(t *testing.T, topic string) (*Publisher, *testenv.Proxy) {
	t.Helper()
	px := testenv.StartProxy(t, brokers()[0])
	cfg := testConfig(topic)
	cfg.WriteTimeout = time.Second
	cfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, px.Addr())
	}
	return mustNewPublisher(t, cfg), px
}
