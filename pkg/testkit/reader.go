package testkit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/kafka"
)

// TopicReader collects every message of its topics from the beginning, in arrival order,
// as a member of a consumer group of its own. Tests read what services published with it.
type TopicReader struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

// ReadTopics starts a reader of topics; it stops, and its dead-letter topics are deleted,
// when the test ends. p is the producer the runner requires (a reader never dead-letters).
func ReadTopics(t testing.TB, brokers string, p *kafka.Producer, topics ...string) *TopicReader {
	t.Helper()
	tr := &TopicReader{}
	r, err := kafka.NewRunner(kafka.ConsumerConfig{Brokers: brokers, GroupID: Name("reader"), Topics: topics}, p,
		func(_ context.Context, m kafka.Message) error {
			tr.mu.Lock()
			tr.msgs = append(tr.msgs, m)
			tr.mu.Unlock()
			return nil
		}, nil)
	if err != nil {
		t.Fatalf("testkit: reader: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		_ = kafka.DeleteTopics(dctx, brokers, r.DLQTopics()...)
	})
	return tr
}

// Messages returns a copy of everything read so far.
func (tr *TopicReader) Messages() []kafka.Message {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]kafka.Message(nil), tr.msgs...)
}

// Len is the number of messages read so far.
func (tr *TopicReader) Len() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.msgs)
}

// ForKey returns the messages read so far whose key is key, in arrival order.
func (tr *TopicReader) ForKey(key string) []kafka.Message {
	var out []kafka.Message
	for _, m := range tr.Messages() {
		if string(m.Key) == key {
			out = append(out, m)
		}
	}
	return out
}
