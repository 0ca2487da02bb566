package sinker

import "github.com/segmentio/kafka-go"

// ReaderStats is the Kafka reader's statistics since the last call.
func (s *Sinker) ReaderStats() kafka.ReaderStats { return s.reader.Stats() }
