package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

func cartEvent(t *testing.T, topic, cartID string, version int64) kafka.Message {
	t.Helper()
	m, err := envelope.Encode(context.Background(), topic, "eventshop/test", &cartpb.CartEvent{
		EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cartID, AggregateVersion: version,
		Payload: &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "u", ProductId: "p", Quantity: 1, LineQuantity: 1, UnitPriceCents: 100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReplayAppliesOnceAndDeduplicates: a consumer (idempotency.Handler) dead-letters an
// event while its effect is broken; after the fix, replaying it applies it exactly once,
// and replaying it again is skipped as a duplicate. list shows the decoded envelope, the
// error and the origin.
func TestReplayAppliesOnceAndDeduplicates(t *testing.T) {
	brokers := testkit.KafkaBrokers(t)
	db, _ := testkit.Database(t)
	ctx := testkit.Context(t, 3*time.Minute)
	if err := postgres.Migrate(ctx, db, idempotency.Migrations); err != nil {
		t.Fatal(err)
	}
	topic := testkit.Topic(t, brokers, 1)
	group := testkit.Name("dlq-test")
	dlqTopic := kafka.DLQTopic(topic, group)
	t.Cleanup(func() { _ = kafka.DeleteTopics(context.Background(), brokers, dlqTopic) })

	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	applied := map[string]int{}
	outcomes := map[idempotency.Outcome]int{}
	handler := idempotency.Handler(db, idempotency.HandlerConfig{
		Consumer: group,
		OnOutcome: func(_ string, o idempotency.Outcome) {
			mu.Lock()
			outcomes[o]++
			mu.Unlock()
		},
	}, func(string) (*cartpb.CartEvent, bool) { return &cartpb.CartEvent{}, true },
		func(_ context.Context, _ *sqlx.Tx, env *cartpb.CartEvent, _ kafka.Message) error {
			if env.GetAggregateId() == "cart-poison" && broken.Load() {
				return kafka.Permanent(errors.New("price rule missing"))
			}
			mu.Lock()
			applied[env.GetEventId()]++
			mu.Unlock()
			return nil
		})

	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Close(context.Background()) })
	r, err := kafka.NewRunner(kafka.ConsumerConfig{Brokers: brokers, GroupID: group, Topics: []string{topic}}, p, handler, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	})

	poison, good := cartEvent(t, topic, "cart-poison", 1), cartEvent(t, topic, "cart-good", 1)
	for _, m := range []kafka.Message{poison, good} {
		if err := p.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	count := func(id string) int { mu.Lock(); defer mu.Unlock(); return applied[id] }
	testkit.Eventually(t, 90*time.Second, "the good event applied", func() bool { return count(good.Header("ce_id")) == 1 })

	// list: the poison event is on the DLQ, decoded, with its error and origin.
	var entries []Entry
	testkit.Eventually(t, 30*time.Second, "one message on the DLQ", func() bool {
		var out bytes.Buffer
		if err := run(ctx, []string{"list", "-brokers", brokers, "-topic", dlqTopic, "-timeout", "10s"}, &out, &out); err != nil {
			t.Logf("list: %v", err)
			return false
		}
		entries = nil
		dec := json.NewDecoder(&out)
		for dec.More() {
			var e Entry
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("list output: %v", err)
			}
			entries = append(entries, e)
		}
		return len(entries) == 1
	})
	e := entries[0]
	if e.OriginTopic != topic || e.Group != group || !strings.Contains(e.Error, "price rule missing") || e.OriginOffset != "0" {
		t.Errorf("entry = %+v, want origin %s@0, group %s, the handler's error", e, topic, group)
	}
	if e.Headers["ce_id"] != poison.Header("ce_id") || !strings.Contains(string(e.Envelope), `"aggregateId":"cart-poison"`) {
		t.Errorf("entry headers %v envelope %s, want ce_id %s and the decoded envelope", e.Headers, e.Envelope, poison.Header("ce_id"))
	}
	if _, ok := e.Headers[kafka.HeaderDLQError]; ok {
		t.Errorf("headers %v should not repeat the dlq_* headers", e.Headers)
	}

	// Fix the cause, replay: applied exactly once.
	broken.Store(false)
	replayArgs := []string{"replay", "-brokers", brokers, "-topic", dlqTopic, "-offsets", fmt.Sprint(e.Offset)}
	var out bytes.Buffer
	if err := run(ctx, replayArgs, &out, &out); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	testkit.Eventually(t, 60*time.Second, "the replayed event applied", func() bool { return count(poison.Header("ce_id")) == 1 })

	// Replay again (an operator's mistake, or the event was applied after all): skipped.
	if err := run(ctx, replayArgs, &out, &out); err != nil {
		t.Fatalf("second replay: %v", err)
	}
	testkit.Eventually(t, 60*time.Second, "the second replay skipped as duplicate", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return outcomes[idempotency.Duplicate] == 1
	})
	if n := count(poison.Header("ce_id")); n != 1 {
		t.Errorf("replayed event applied %d times, want 1", n)
	}
}

func TestReplayMessageStripsDLQHeaders(t *testing.T) {
	m := kafka.Message{Topic: "x.dlq.g", Offset: 4, Key: []byte("k"), Value: []byte("v"), Headers: []kafka.Header{
		{Key: "ce_id", Value: []byte("e1")}, {Key: "traceparent", Value: []byte("00-abc")},
		{Key: kafka.HeaderDLQError, Value: []byte("boom")}, {Key: kafka.HeaderDLQTopic, Value: []byte("x")},
	}}
	got, err := replayMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != "x" || string(got.Key) != "k" || string(got.Value) != "v" || len(got.Headers) != 2 || got.Header("ce_id") != "e1" || got.Header("traceparent") != "00-abc" {
		t.Errorf("replayMessage = %+v", got)
	}
	if _, err := replayMessage(kafka.Message{Offset: 1}); err == nil {
		t.Error("a message without dlq_origin_topic must not be replayed")
	}
}
