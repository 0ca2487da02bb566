package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Lag tells how far a consumer group (the sinkers) is behind the topic, per
// partition: the partition's end offset (high watermark) minus the group's
// committed offset. One round of broker calls (metadata, ListOffsets and
// OffsetFetch for every partition) answers all partitions and is reused for
// MaxAge, however many callers ask; one round runs at a time. Safe for
// concurrent use.
type Lag struct {
	client *kafkago.Client
	topic  string
	group  string
	maxAge time.Duration

	mu     sync.Mutex
	at     time.Time
	lags   []int64
	err    error
	rounds int
}

// NewLag returns the lag of group on topic, refreshed at most once per
// maxAge (one second when zero).
func NewLag(brokers []string, topic, group string, maxAge time.Duration) *Lag {
	if maxAge <= 0 {
		maxAge = time.Second
	}
	return &Lag{
		client: &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 2 * time.Second},
		topic:  topic, group: group, maxAge: maxAge,
	}
}

// Coupon returns the partition of the coupon's records and how many records
// of that partition the group has not committed yet.
func (l *Lag) Coupon(ctx context.Context, couponID int64) (partition int, lag int64, err error) {
	lags, err := l.partitions(ctx)
	if err != nil {
		return -1, 0, err
	}
	p := PartitionOf(couponID, len(lags))
	return p, lags[p], nil
}

// Rounds returns how many rounds of broker calls ran (for tests).
func (l *Lag) Rounds() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rounds
}

// partitions returns every partition's lag, from the last round when it is
// younger than maxAge (a failed round is reused as long).
func (l *Lag) partitions(ctx context.Context) ([]int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rounds > 0 && time.Since(l.at) < l.maxAge {
		return l.lags, l.err
	}
	l.lags, l.err = l.round(ctx)
	l.at = time.Now()
	l.rounds++
	return l.lags, l.err
}

func (l *Lag) round(ctx context.Context) ([]int64, error) {
	md, err := l.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{l.topic}})
	if err != nil {
		return nil, fmt.Errorf("lag of group %s: metadata of %s: %w", l.group, l.topic, err)
	}
	if err := topicReady(md, l.topic); err != nil {
		return nil, fmt.Errorf("lag of group %s: %w", l.group, err)
	}
	n := 0
	for _, t := range md.Topics {
		if t.Name == l.topic {
			n = len(t.Partitions)
		}
	}
	ids := make([]int, n)
	reqs := make([]kafkago.OffsetRequest, 0, 2*n)
	for p := range n {
		ids[p] = p
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	offs, err := l.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{l.topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("lag of group %s: offsets of %s: %w", l.group, l.topic, err)
	}
	committed, err := l.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: l.group, Topics: map[string][]int{l.topic: ids}})
	if err != nil {
		return nil, fmt.Errorf("lag of group %s: committed offsets: %w", l.group, err)
	}
	if committed.Error != nil {
		return nil, fmt.Errorf("lag of group %s: committed offsets: %w", l.group, committed.Error)
	}
	first, end := make([]int64, n), make([]int64, n)
	seen := 0
	for _, p := range offs.Topics[l.topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("lag of group %s: offsets of %s/%d: %w", l.group, l.topic, p.Partition, p.Error)
		}
		if p.Partition >= 0 && p.Partition < n {
			first[p.Partition], end[p.Partition] = p.FirstOffset, p.LastOffset
			seen++
		}
	}
	if seen != n {
		return nil, fmt.Errorf("lag of group %s: %d of %d partitions of %s answered", l.group, seen, n, l.topic)
	}
	lags := make([]int64, n)
	copy(lags, end)
	for p := range lags {
		lags[p] -= first[p] // nothing committed: everything kept is unread
	}
	for _, p := range committed.Topics[l.topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("lag of group %s: committed offset of %s/%d: %w", l.group, l.topic, p.Partition, p.Error)
		}
		if p.Partition >= 0 && p.Partition < n && p.CommittedOffset >= 0 {
			lags[p.Partition] = max(0, end[p.Partition]-max(p.CommittedOffset, first[p.Partition]))
		}
	}
	return lags, nil
}
