package kafka

import (
	"encoding/json"
	"strconv"
	"time"
)

// DefaultStatsInterval is how often librdkafka reports statistics (consumer lag) to a
// ConsumerObserver, unless Extra sets "statistics.interval.ms".
const DefaultStatsInterval = 5 * time.Second

// ProducerObserver receives the producer's delivery results, for metrics. It is called
// from the delivery goroutine and must return quickly.
type ProducerObserver interface {
	// Delivered reports one delivery report: the time from Publish to the broker's
	// acknowledgement (or failure) and the delivery error, nil on success.
	Delivered(topic string, latency time.Duration, err error)
}

// PartitionLag is the consumer lag of one assigned partition: how many messages lie
// between the group's committed offset and the partition's high watermark.
type PartitionLag struct {
	Topic     string
	Partition int32
	Lag       int64
}

// ConsumerObserver receives what a Runner does with its messages, for metrics. It is
// called from the runner's goroutine and must return quickly.
type ConsumerObserver interface {
	// Handled reports one handler attempt, its duration and its error (nil on success).
	Handled(group, topic string, d time.Duration, err error)
	// Retrying reports that a failed message will be attempted again.
	Retrying(group, topic string)
	// DeadLettered reports a message written to the dead-letter topic.
	DeadLettered(group, topic string)
	// Lags reports the lag of every partition this member owns (from librdkafka
	// statistics, every DefaultStatsInterval); it replaces the previous report.
	Lags(group string, lags []PartitionLag)
}

// statsLags extracts the per-partition consumer lag from a librdkafka statistics JSON
// document. Partitions without a known lag (not assigned, no committed offset yet) are
// left out.
func statsLags(doc string) ([]PartitionLag, error) {
	var stats struct {
		Topics map[string]struct {
			Partitions map[string]struct {
				ConsumerLag int64  `json:"consumer_lag"`
				FetchState  string `json:"fetch_state"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal([]byte(doc), &stats); err != nil {
		return nil, err
	}
	var out []PartitionLag
	for topic, t := range stats.Topics {
		for p, ps := range t.Partitions {
			id, err := strconv.ParseInt(p, 10, 32)
			if err != nil || id < 0 || ps.ConsumerLag < 0 || ps.FetchState == "none" {
				continue // -1 is librdkafka's internal UA partition; negative lag means unknown
			}
			out = append(out, PartitionLag{Topic: topic, Partition: int32(id), Lag: ps.ConsumerLag})
		}
	}
	return out, nil
}
