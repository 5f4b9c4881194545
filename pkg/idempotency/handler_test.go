package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

func cartMsg(t testing.TB, id string, version int64) kafka.Message {
	t.Helper()
	e := &cartpb.CartEvent{EventId: id, OccurredAt: envelope.Now(), AggregateId: "cart-1", AggregateVersion: version,
		Payload: &cartpb.CartEvent_CouponApplied{CouponApplied: &cartpb.CouponApplied{UserId: "u", CouponCode: "X"}}}
	m, err := envelope.Encode(context.Background(), "cart.events.v1", "test", e)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHandlerAppliesOnceSkipsStaleUnknownAndRejectsPoison(t *testing.T) {
	db := setup(t)
	ctx := context.Background()
	outcomes := map[idempotency.Outcome]int{}
	var applied []int64
	h := idempotency.Handler(db, idempotency.HandlerConfig{Consumer: "inventory", OnOutcome: func(_ string, o idempotency.Outcome) { outcomes[o]++ }},
		func(string) (*cartpb.CartEvent, bool) { return &cartpb.CartEvent{}, true },
		func(ctx context.Context, tx *sqlx.Tx, e *cartpb.CartEvent, _ kafka.Message) error {
			applied = append(applied, e.GetAggregateVersion())
			return increment(ctx)(tx)
		})

	steps := []kafka.Message{
		cartMsg(t, "e1", 1),
		cartMsg(t, "e2", 2),
		cartMsg(t, "e2", 2),  // duplicate
		cartMsg(t, "e1b", 1), // stale: older version, new id
		cartMsg(t, "e4", 4),  // gap is applied
	}
	for i, m := range steps {
		if err := h(ctx, m); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	unknown := protowire.AppendTag(nil, 1, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "e5")
	unknown = protowire.AppendTag(unknown, 3, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "cart-1")
	ts, _ := protoMarshalNow()
	unknown = protowire.AppendTag(unknown, 2, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, ts)
	unknown = protowire.AppendTag(unknown, 77, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, nil)
	if err := h(ctx, kafka.Message{Topic: "cart.events.v1", Value: unknown}); err != nil {
		t.Fatalf("unknown payload: %v", err)
	}
	if err := h(ctx, kafka.Message{Topic: "cart.events.v1", Value: []byte{0xff, 0x01}}); !kafka.IsPermanent(err) {
		t.Fatalf("undecodable message: %v, want a permanent error", err)
	}
	if n := counter(t, db); n != 3 {
		t.Fatalf("counter %d, want 3 (versions 1, 2, 4)", n)
	}
	want := map[idempotency.Outcome]int{idempotency.Applied: 3, idempotency.Duplicate: 1, idempotency.Stale: 1, idempotency.Unknown: 1}
	for o, n := range want {
		if outcomes[o] != n {
			t.Fatalf("outcomes %v, want %v", outcomes, want)
		}
	}
}

func protoMarshalNow() ([]byte, error) { return proto.Marshal(envelope.Now()) }

// A data exception from the effect (here a cart id that is no UUID) is the event's fault:
// retrying can never succeed, so the handler must report it permanent (dead-letter it)
// rather than stall the partition. Found by e2e/chaos: the cart's feedback consumer
// retried an inventory event for a non-UUID cart forever.
func TestHandlerDeadLettersDataExceptions(t *testing.T) {
	db := setup(t)
	h := idempotency.Handler(db, idempotency.HandlerConfig{Consumer: "cart"},
		func(string) (*cartpb.CartEvent, bool) { return &cartpb.CartEvent{}, true },
		func(ctx context.Context, tx *sqlx.Tx, e *cartpb.CartEvent, _ kafka.Message) error {
			_, err := tx.ExecContext(ctx, `SELECT $1::uuid`, e.GetAggregateId()) // "cart-1"
			return err
		})
	err := h(context.Background(), cartMsg(t, "e-data", 1))
	if !kafka.IsPermanent(err) {
		t.Fatalf("effect failing with invalid input syntax for uuid: %v, want a permanent error", err)
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM processed_events WHERE event_id = 'e-data'`); err != nil || n != 0 {
		t.Fatalf("processed_events holds the failed event %d times (%v), want 0: the transaction must roll back", n, err)
	}
}

// TestBatchSharesOneTransaction runs Handler calls inside Batch: a batch with duplicates
// and a stale event applies each event once and reports outcomes only after the commit;
// a batch with one failing event changes nothing, so that the runner can redo its events
// one at a time.
func TestBatchSharesOneTransaction(t *testing.T) {
	db := setup(t)
	ctx := context.Background()
	outcomes := map[idempotency.Outcome]int{}
	failOn := ""
	h := idempotency.Handler(db, idempotency.HandlerConfig{Consumer: "inventory", OnOutcome: func(_ string, o idempotency.Outcome) { outcomes[o]++ }},
		func(string) (*cartpb.CartEvent, bool) { return &cartpb.CartEvent{}, true },
		func(ctx context.Context, tx *sqlx.Tx, e *cartpb.CartEvent, _ kafka.Message) error {
			if e.GetEventId() == failOn {
				return errors.New("effect failed")
			}
			return increment(ctx)(tx)
		})
	batch := idempotency.Batch(db)
	run := func(ms ...kafka.Message) error {
		return batch(ctx, func(ctx context.Context) error {
			for _, m := range ms {
				if err := h(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
	}

	if err := run(cartMsg(t, "b1", 1), cartMsg(t, "b2", 2), cartMsg(t, "b2", 2), cartMsg(t, "b0", 1), cartMsg(t, "b3", 3)); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, db); n != 3 {
		t.Fatalf("counter %d after the first batch, want 3 (b1, b2, b3)", n)
	}
	want := map[idempotency.Outcome]int{idempotency.Applied: 3, idempotency.Duplicate: 1, idempotency.Stale: 1}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}

	clear(outcomes)
	failOn = "b6"
	if err := run(cartMsg(t, "b4", 4), cartMsg(t, "b5", 5), cartMsg(t, "b6", 6)); err == nil {
		t.Fatal("a batch with a failing effect succeeded")
	}
	if n := counter(t, db); n != 3 {
		t.Fatalf("counter %d after the failed batch, want 3: a failed batch must change nothing", n)
	}
	if len(outcomes) != 0 {
		t.Fatalf("outcomes %v reported for a rolled-back batch", outcomes)
	}
	// The runner's fallback: each alone. b4 and b5 apply; b6 fails alone.
	for _, m := range []kafka.Message{cartMsg(t, "b4", 4), cartMsg(t, "b5", 5)} {
		if err := h(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if n := counter(t, db); n != 5 {
		t.Fatalf("counter %d, want 5", n)
	}
}

// BenchmarkHandler measures events through Handler into PostgreSQL (record the event id,
// advance the aggregate version, one UPDATE as the effect): each in its own transaction,
// and 100 to a transaction as the runner's batches do.
func BenchmarkHandler(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			db := setup(b)
			ctx := context.Background()
			h := idempotency.Handler(db, idempotency.HandlerConfig{Consumer: "bench"},
				func(string) (*cartpb.CartEvent, bool) { return &cartpb.CartEvent{}, true },
				func(ctx context.Context, tx *sqlx.Tx, _ *cartpb.CartEvent, _ kafka.Message) error {
					return increment(ctx)(tx)
				})
			batch := idempotency.Batch(db)
			msgs := make([]kafka.Message, size)
			n := 0
			for b.Loop() {
				for i := range msgs {
					n++
					msgs[i] = cartMsg(b, fmt.Sprintf("ev-%d", n), int64(n))
				}
				if size == 1 {
					if err := h(ctx, msgs[0]); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if err := batch(ctx, func(ctx context.Context) error {
					for _, m := range msgs {
						if err := h(ctx, m); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			if got := counter(b, db); got != n {
				b.Fatalf("counter %d, want %d", got, n)
			}
		})
	}
}

// unknownMsg is a cart event whose payload kind (field 77) this build does not know.
func unknownMsg(t testing.TB, id string) kafka.Message {
	t.Helper()
	ts, err := protoMarshalNow()
	if err != nil {
		t.Fatal(err)
	}
	v := protowire.AppendTag(nil, 1, protowire.BytesType)
	v = protowire.AppendString(v, id)
	v = protowire.AppendTag(v, 3, protowire.BytesType)
	v = protowire.AppendString(v, "cart-1")
	v = protowire.AppendTag(v, 2, protowire.BytesType)
	v = protowire.AppendBytes(v, ts)
	v = protowire.AppendTag(v, 77, protowire.BytesType)
	v = protowire.AppendBytes(v, nil)
	return kafka.Message{Topic: "cart.events.v1", Value: v}
}

// TestBatchReportsUnknownOnlyOnceCommitted: an unknown payload kind inside a batch that
// then fails (here a poison event after it) is handled again alone by the runner's
// fallback; it must be counted once, like every other outcome, i.e. only once the
// transaction it ran in committed.
func TestBatchReportsUnknownOnlyOnceCommitted(t *testing.T) {
	db := setup(t)
	ctx := context.Background()
	outcomes := map[idempotency.Outcome]int{}
	h := idempotency.Handler(db, idempotency.HandlerConfig{Consumer: "inventory", OnOutcome: func(_ string, o idempotency.Outcome) { outcomes[o]++ }},
		func(string) (*cartpb.CartEvent, bool) { return &cartpb.CartEvent{}, true },
		func(ctx context.Context, tx *sqlx.Tx, e *cartpb.CartEvent, _ kafka.Message) error {
			if e.GetEventId() == "poison" {
				return kafka.Permanent(errors.New("invalid"))
			}
			return increment(ctx)(tx)
		})
	batch := idempotency.Batch(db)
	ms := []kafka.Message{cartMsg(t, "u1", 1), unknownMsg(t, "u2"), cartMsg(t, "poison", 3)}
	err := batch(ctx, func(ctx context.Context) error {
		for _, m := range ms {
			if err := h(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		t.Fatal("a batch with a poison event succeeded")
	}
	if len(outcomes) != 0 {
		t.Fatalf("outcomes %v reported for a rolled-back batch, want none", outcomes)
	}
	// The runner's fallback: one at a time.
	for _, m := range ms {
		_ = h(ctx, m)
	}
	want := map[idempotency.Outcome]int{idempotency.Applied: 1, idempotency.Unknown: 1}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
}

// TestConcurrentBatchesDeadlockRetried: two batches that record the same events in
// opposite orders (two members during a rebalance) deadlock on processed_events; the
// victim is retried whole, so both succeed, each event applies once, and the outcomes
// of the aborted attempt are not counted.
func TestConcurrentBatchesDeadlockRetried(t *testing.T) {
	db := setup(t)
	ctx := testkit.Context(t, 30*time.Second)
	var mu sync.Mutex
	outcomes := map[idempotency.Outcome]int{}
	h := idempotency.Handler(db, idempotency.HandlerConfig{Consumer: "inventory", OnOutcome: func(_ string, o idempotency.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		outcomes[o]++
	}},
		func(string) (*cartpb.CartEvent, bool) { return &cartpb.CartEvent{}, true },
		func(ctx context.Context, tx *sqlx.Tx, _ *cartpb.CartEvent, _ kafka.Message) error {
			return increment(ctx)(tx)
		})
	batch := idempotency.Batch(db)
	msg := func(id, cart string) kafka.Message { // two aggregates, so neither event is stale
		e := &cartpb.CartEvent{EventId: id, OccurredAt: envelope.Now(), AggregateId: cart, AggregateVersion: 1,
			Payload: &cartpb.CartEvent_CouponApplied{CouponApplied: &cartpb.CouponApplied{UserId: "u", CouponCode: "X"}}}
		m, err := envelope.Encode(context.Background(), "cart.events.v1", "test", e)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	e1, e2 := msg("d1", "cart-1"), msg("d2", "cart-2")
	var attempts atomic.Int32
	run := func(ms ...kafka.Message) error {
		return batch(ctx, func(ctx context.Context) error {
			attempts.Add(1)
			for i, m := range ms {
				if i > 0 {
					time.Sleep(300 * time.Millisecond) // let the other batch take its first event
				}
				if err := h(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var g errgroup.Group
	g.Go(func() error { return run(e1, e2) })
	g.Go(func() error { return run(e2, e1) })
	if err := g.Wait(); err != nil {
		t.Fatalf("a batch failed: %v", err)
	}
	if n := counter(t, db); n != 2 {
		t.Fatalf("counter %d, want 2: each event applies once", n)
	}
	want := map[idempotency.Outcome]int{idempotency.Applied: 2, idempotency.Duplicate: 2}
	if fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", outcomes, want)
	}
	t.Logf("%d batch attempts", attempts.Load())
}
