package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// TopicSpec describes a topic to create at start-up.
type TopicSpec struct {
	Name       string
	Partitions int // default 1
	// Compacted sets cleanup.policy=compact (latest value per key is kept).
	Compacted bool
	// Config holds further topic properties.
	Config map[string]string
}

// EnsureTopics creates the topics that do not exist yet; existing ones are left as they
// are. Replication factor is the broker's default.
func EnsureTopics(ctx context.Context, brokers string, specs ...TopicSpec) error {
	if len(specs) == 0 {
		return nil
	}
	ac, err := ckafka.NewAdminClient(&ckafka.ConfigMap{"bootstrap.servers": brokers})
	if err != nil {
		return fmt.Errorf("kafka: admin client: %w", err)
	}
	defer ac.Close()

	ts := make([]ckafka.TopicSpecification, len(specs))
	for i, s := range specs {
		cfg := map[string]string{}
		for k, v := range s.Config {
			cfg[k] = v
		}
		if s.Compacted {
			cfg["cleanup.policy"] = "compact"
		}
		ts[i] = ckafka.TopicSpecification{Topic: s.Name, NumPartitions: max(s.Partitions, 1), ReplicationFactor: -1, Config: cfg}
	}
	results, err := ac.CreateTopics(ctx, ts, ckafka.SetAdminOperationTimeout(adminTimeout(ctx)))
	if err != nil {
		return fmt.Errorf("kafka: create topics on %s: %w", brokers, err)
	}
	var errs []error
	for _, r := range results {
		if code := r.Error.Code(); code != ckafka.ErrNoError && code != ckafka.ErrTopicAlreadyExists {
			errs = append(errs, fmt.Errorf("kafka: create topic %s: %w", r.Topic, r.Error))
		}
	}
	return errors.Join(errs...)
}

// DeleteTopics deletes topics; missing ones are ignored. Used by tests to clean up.
func DeleteTopics(ctx context.Context, brokers string, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	ac, err := ckafka.NewAdminClient(&ckafka.ConfigMap{"bootstrap.servers": brokers})
	if err != nil {
		return fmt.Errorf("kafka: admin client: %w", err)
	}
	defer ac.Close()
	results, err := ac.DeleteTopics(ctx, names, ckafka.SetAdminOperationTimeout(adminTimeout(ctx)))
	if err != nil {
		return fmt.Errorf("kafka: delete topics: %w", err)
	}
	var errs []error
	for _, r := range results {
		if code := r.Error.Code(); code != ckafka.ErrNoError && code != ckafka.ErrUnknownTopicOrPart {
			errs = append(errs, fmt.Errorf("kafka: delete topic %s: %w", r.Topic, r.Error))
		}
	}
	return errors.Join(errs...)
}

func adminTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Second)
	}
	return 30 * time.Second
}
