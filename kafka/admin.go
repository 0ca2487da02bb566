// Package kafka is the Kafka side of the system: topic administration and
// the publisher of admitted requests (segmentio/kafka-go).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	Configs           map[string]string
}

// AdmittedTopic returns the spec of the admitted-request topic: records are
// kept forever (retention.ms and retention.bytes -1) so the topic can always
// rebuild the issued table.
func AdmittedTopic(name string, partitions, replicationFactor int) TopicSpec {
	return TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: replicationFactor, Configs: map[string]string{
		"retention.ms":    "-1",
		"retention.bytes": "-1",
		"cleanup.policy":  "delete",
	}}
}

// DeadLetterTopic returns the spec of the dead-letter topic (kept forever
// too: every poison record must stay inspectable).
func DeadLetterTopic(name string, partitions, replicationFactor int) TopicSpec {
	return AdmittedTopic(name, partitions, replicationFactor)
}

// EnsureTopic creates the topic unless it exists (an existing topic is left
// as it is, whatever its settings) and waits until every partition has a
// leader. It returns created=false when the topic was already there.
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions, replicationFactor int, configs map[string]string) (created bool, err error) {
	if len(brokers) == 0 {
		return false, errors.New("ensure topic: no broker address")
	}
	if topic == "" || partitions < 1 || replicationFactor < 1 {
		return false, fmt.Errorf("ensure topic %q: need a name, partitions >= 1 and replication factor >= 1", topic)
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 30 * time.Second}
	entries := make([]kafkago.ConfigEntry, 0, len(configs))
	for k, v := range configs {
		entries = append(entries, kafkago.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	res, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: replicationFactor, ConfigEntries: entries,
	}}})
	if err != nil {
		return false, fmt.Errorf("create topic %s: %w", topic, err)
	}
	created = true
	if terr := res.Errors[topic]; terr != nil {
		if !errors.Is(terr, kafkago.TopicAlreadyExists) {
			return false, fmt.Errorf("create topic %s: %w", topic, terr)
		}
		created = false
	}
	if err := WaitTopic(ctx, brokers, topic); err != nil {
		return created, err
	}
	return created, nil
}

// Ensure is EnsureTopic for a spec.
func Ensure(ctx context.Context, brokers []string, t TopicSpec) (bool, error) {
	return EnsureTopic(ctx, brokers, t.Name, t.Partitions, t.ReplicationFactor, t.Configs)
}

// BrokerCount is the number of brokers in the cluster's metadata.
func BrokerCount(ctx context.Context, brokers []string) (int, error) {
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		return 0, fmt.Errorf("kafka metadata from %s: %w", strings.Join(brokers, ","), err)
	}
	return len(md.Brokers), nil
}

// WaitTopic waits until the topic exists and every partition has a leader.
func WaitTopic(ctx context.Context, brokers []string, topic string) error {
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 5 * time.Second}
	var last error
	for delay := 20 * time.Millisecond; ; {
		md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
		last = err
		if err == nil {
			last = topicReady(md, topic)
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topic %s: %v (%w)", topic, last, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

func topicReady(md *kafkago.MetadataResponse, topic string) error {
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return t.Error
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("topic %s has no partitions yet", topic)
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return fmt.Errorf("topic %s partition %d has no leader yet", topic, p.ID)
			}
		}
		return nil
	}
	return fmt.Errorf("topic %s not in metadata yet", topic)
}

// Partitions returns the partition count of a topic.
func Partitions(ctx context.Context, brokers []string, topic string) (int, error) {
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if err := topicReady(md, topic); err != nil {
		return 0, err
	}
	for _, t := range md.Topics {
		if t.Name == topic {
			return len(t.Partitions), nil
		}
	}
	return 0, fmt.Errorf("topic %s not found", topic)
}

// TopicConfig returns the value of one config of a topic ("" when unset).
func TopicConfig(ctx context.Context, brokers []string, topic, name string) (string, error) {
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := cl.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{{
		ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{name},
	}}})
	if err != nil {
		return "", fmt.Errorf("describe configs of %s: %w", topic, err)
	}
	for _, r := range res.Resources {
		if r.Error != nil {
			return "", fmt.Errorf("describe configs of %s: %w", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == name {
				return e.ConfigValue, nil
			}
		}
	}
	return "", nil
}
