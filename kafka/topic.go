package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Topic reads a topic by partition and offset, without joining a consumer
// group: it never moves the sinker group's offsets. The operator procedures
// (replay, rebuild-gate, reconcile) read the admitted-request topic with it.
type Topic struct {
	Name    string
	brokers []string
	client  *kafkago.Client
	dialer  *kafkago.Dialer
}

// NewTopic returns a reader of topic on the given brokers.
func NewTopic(brokers []string, name string) *Topic {
	return &Topic{
		Name:    name,
		brokers: brokers,
		// Metadata (partition leaders) is refreshed every second, not every
		// 6 s: a retried call after a leader move reaches the new leader.
		client: &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 15 * time.Second, Transport: &kafkago.Transport{MetadataTTL: time.Second}},
		dialer: &kafkago.Dialer{Timeout: 10 * time.Second, DualStack: true},
	}
}

// Partitions returns the topic's partition count.
func (t *Topic) Partitions(ctx context.Context) (int, error) {
	md, err := t.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{t.Name}})
	if err != nil {
		return 0, fmt.Errorf("topic %s metadata: %w", t.Name, err)
	}
	if len(md.Topics) != 1 {
		return 0, fmt.Errorf("topic %s metadata: %d topics in the answer", t.Name, len(md.Topics))
	}
	if err := md.Topics[0].Error; err != nil {
		return 0, fmt.Errorf("topic %s: %w", t.Name, err)
	}
	return len(md.Topics[0].Partitions), nil
}

// Offsets returns each partition's first and end offsets (end = the offset
// the next record will get). A broker answer that may pass (a partition
// whose leader is moving, not yet elected or unreachable) is retried for
// about nine seconds, past a metadata refresh.
func (t *Topic) Offsets(ctx context.Context, partitions int) (first, end []int64, err error) {
	for attempt := 1; ; attempt++ {
		first, end, err = t.offsets(ctx, partitions)
		if err == nil || attempt == 10 || !transient(err) {
			return first, end, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// transient tells a Kafka error another attempt may not meet: a retriable
// broker code, an unknown one (a leader gone away answers -1) or a
// connection problem.
func transient(err error) bool {
	var kerr kafkago.Error
	var nerr net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &kerr):
		return kerr.Temporary() || kerr == kafkago.Unknown
	case errors.As(err, &nerr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}

func (t *Topic) offsets(ctx context.Context, partitions int) (first, end []int64, err error) {
	reqs := make([]kafkago.OffsetRequest, 0, 2*partitions)
	for p := range partitions {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	res, err := t.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{t.Name: reqs}})
	if err != nil {
		return nil, nil, fmt.Errorf("topic %s offsets: %w", t.Name, err)
	}
	first, end = make([]int64, partitions), make([]int64, partitions)
	seen := 0
	for _, p := range res.Topics[t.Name] {
		if p.Error != nil {
			return nil, nil, fmt.Errorf("topic %s partition %d offsets: %w", t.Name, p.Partition, p.Error)
		}
		if p.Partition < 0 || p.Partition >= partitions {
			continue
		}
		first[p.Partition], end[p.Partition] = p.FirstOffset, p.LastOffset
		seen++
	}
	if seen != partitions {
		return nil, nil, fmt.Errorf("topic %s offsets: %d of %d partitions answered", t.Name, seen, partitions)
	}
	return first, end, nil
}

// Committed returns the group's committed offset of each partition, -1
// where it has committed none.
func (t *Topic) Committed(ctx context.Context, group string, partitions int) ([]int64, error) {
	ps := make([]int, partitions)
	for p := range ps {
		ps[p] = p
	}
	res, err := t.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{t.Name: ps}})
	if err != nil {
		return nil, fmt.Errorf("group %s offsets: %w", group, err)
	}
	if res.Error != nil {
		return nil, fmt.Errorf("group %s offsets: %w", group, res.Error)
	}
	out := make([]int64, partitions)
	for p := range out {
		out[p] = -1
	}
	for _, p := range res.Topics[t.Name] {
		if p.Error != nil {
			return nil, fmt.Errorf("group %s partition %d offset: %w", group, p.Partition, p.Error)
		}
		if p.Partition >= 0 && p.Partition < partitions {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// WaitCaughtUp waits until the group has committed every partition up to
// end (a partition with nothing to read needs no commit), polling; behind,
// when set, is told after each poll how many records the group still has
// to commit (0 at the end).
func (t *Topic) WaitCaughtUp(ctx context.Context, group string, first, end []int64, behind func(records int64)) error {
	if behind == nil {
		behind = func(int64) {}
	}
	empty := true
	for p := range end {
		empty = empty && end[p] <= first[p]
	}
	if empty {
		return nil // nothing to have read
	}
	for {
		committed, err := t.Committed(ctx, group, len(end))
		if err != nil && !transient(err) {
			return err
		}
		if err != nil { // a coordinator moving or still loading: ask again
			committed = make([]int64, len(end))
			for p := range committed {
				committed[p] = -1
			}
		}
		left := int64(0)
		for p := range end {
			if end[p] > first[p] && committed[p] < end[p] {
				left += end[p] - max(committed[p], first[p])
			}
		}
		behind(left)
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("group %s is still %d records behind: %w", group, left, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// errStopRead ends a Read early without error.
var errStopRead = errors.New("stop reading")

// Read calls fn for each record of partition with from <= offset < to, in
// offset order, reading directly from the partition leader.
func (t *Topic) Read(ctx context.Context, partition int, from, to int64, fn func(kafkago.Message) error) error {
	if from >= to {
		return nil
	}
	var conn *kafkago.Conn
	var err error
	for _, b := range t.brokers {
		if conn, err = t.dialer.DialLeader(ctx, "tcp", b, t.Name, partition); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("read %s/%d: dial leader: %w", t.Name, partition, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Seek(from, kafkago.SeekAbsolute); err != nil {
		return fmt.Errorf("read %s/%d: seek %d: %w", t.Name, partition, from, err)
	}
	next := from
	for next < to {
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		batch := conn.ReadBatchWith(kafkago.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 2 * time.Second})
		var ferr error
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if m.Offset >= to {
				ferr = errStopRead
				break
			}
			next = m.Offset + 1
			if ferr = fn(m); ferr != nil {
				break
			}
		}
		err := batch.Close()
		if ferr == errStopRead {
			return nil
		}
		if ferr != nil {
			return ferr
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s/%d at offset %d: %w", t.Name, partition, next, err)
		}
		// Offsets may skip (compaction, transaction markers).
		if o := batch.Offset(); o > next {
			next = o
		}
	}
	return nil
}
