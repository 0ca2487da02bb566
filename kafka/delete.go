package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// DeleteTopics deletes the topics (a missing one is not an error); used by
// `couponctl bench` to remove its per-run topics.
func DeleteTopics(ctx context.Context, brokers []string, topics ...string) error {
	if len(brokers) == 0 {
		return errors.New("delete topics: no broker address")
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 30 * time.Second}
	res, err := cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	for t, terr := range res.Errors {
		if terr != nil && !errors.Is(terr, kafkago.UnknownTopicOrPartition) {
			return fmt.Errorf("delete topic %s: %w", t, terr)
		}
	}
	return nil
}
