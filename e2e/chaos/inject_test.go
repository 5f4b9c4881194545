package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// TestPoisonAndDisorder publishes, in the middle of the load, straight into the cart
// topic: undecodable bytes on several partitions, an envelope without an event id, a valid
// envelope whose content is invalid, a payload kind this build does not know, verbatim
// duplicates of earlier events, and one cart's events out of version order. Poison must
// be dead-lettered by every consumer, the unknown kind skipped, duplicates and the stale
// event change nothing, and no partition may stall: the books must balance.
func TestPoisonAndDisorder(t *testing.T) {
	sc := currentScale()
	st := stack.Start(t, stack.Options{})
	before := stockOf(t, st.DBs["inventory"])
	waitCatalog(t, st, len(before))
	ctx := testkit.Context(t, 10*time.Minute)
	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: st.Brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Close(context.Background()) }()

	l, wait := runLoad(ctx, t, st, sc)
	total := int64(sc.users * sc.rounds * 4)
	testkit.Eventually(t, 2*time.Minute, "a third of the load sent", func() bool { return l.sent.Load() >= total/3 })
	inj := inject(ctx, t, st, p)
	wait()
	t.Logf("load done: %s; rejections: %v", l, l.reasons)
	if l.failed.Load() != 0 {
		t.Fatalf("load: %s", l)
	}
	checkBooks(t, st, l, before, inj)

	// The stale event (version 2, after version 3) did nothing: the cart holds the mug at
	// the quantity of version 3 and no T-shirt.
	var held []struct {
		Product  string `db:"product_id"`
		Quantity int    `db:"quantity"`
	}
	if err := st.DBs["inventory"].Select(&held, `SELECT product_id, quantity FROM reservations WHERE cart_id = $1 ORDER BY product_id`, inj.disorderCart); err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Product != "mug" || held[0].Quantity != 3 {
		t.Fatalf("disorder cart reservations = %+v, want only mug x3 (version 3; the stale version 2 skipped)", held)
	}
}

// inject publishes the poison, duplicates and disordered events and returns what the books
// must expect.
func inject(ctx context.Context, t *testing.T, st *stack.Stack, p *kafka.Producer) injected {
	t.Helper()
	topic := st.Topics[envelope.TopicCartEvents]
	inj := injected{poisonKeys: map[string]bool{}, skippedKeys: map[string]bool{}, disorderCart: uuid.NewString()}
	publish := func(m kafka.Message) {
		t.Helper()
		m.Topic = topic
		if err := p.Publish(ctx, m); err != nil {
			t.Fatalf("publish %q: %v", m.Key, err)
		}
	}
	encode := func(env envelope.Envelope) kafka.Message {
		t.Helper()
		m, err := envelope.Encode(ctx, topic, "eventshop/chaos", env)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	// Undecodable bytes, on (very likely) every partition.
	for _, k := range []string{"poison-bytes-a", "poison-bytes-b", "poison-bytes-c", "poison-bytes-d", "poison-bytes-e", "poison-bytes-f", "poison-bytes-g", "poison-bytes-h"} {
		inj.poisonKeys[k] = true
		publish(kafka.Message{Key: []byte(k), Value: []byte{0xff, 0xff, 0xff, 0x01}})
	}
	// A well-formed protobuf without an event id.
	noID, err := proto.Marshal(&cartpb.CartEvent{OccurredAt: envelope.Now(), AggregateId: "poison-noid", AggregateVersion: 1,
		Payload: &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "x", ProductId: "mug", Quantity: 1, LineQuantity: 1, UnitPriceCents: 1250}}})
	if err != nil {
		t.Fatal(err)
	}
	inj.poisonKeys["poison-noid"] = true
	publish(kafka.Message{Key: []byte("poison-noid"), Value: noID})
	// A valid envelope whose content is invalid: a checkout of negative quantities at
	// negative prices, by nobody, with a checkout id that is not a UUID.
	inj.poisonKeys["poison-invalid"] = true
	publish(encode(&cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: "poison-invalid", AggregateVersion: 1,
		Payload: &cartpb.CartEvent_CheckedOut{CheckedOut: &cartpb.CheckedOut{CheckoutId: "not-a-uuid",
			Lines: []*cartpb.CartLine{{ProductId: "", Quantity: -2, UnitPriceCents: -5, LineTotalCents: 10}}, SubtotalCents: -10}}}))
	// A payload kind from a newer producer (oneof field 99).
	unknown := protowire.AppendTag(nil, 1, protowire.BytesType)
	unknown = protowire.AppendString(unknown, envelope.NewID())
	ts, _ := proto.Marshal(envelope.Now())
	unknown = protowire.AppendTag(unknown, 2, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, ts)
	unknown = protowire.AppendTag(unknown, 3, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "skip-unknown")
	unknown = protowire.AppendTag(unknown, 99, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte{0x0a, 0x01, 'x'})
	inj.skippedKeys["skip-unknown"] = true
	publish(kafka.Message{Key: []byte("skip-unknown"), Value: unknown, Headers: []kafka.Header{{Key: envelope.HeaderType, Value: []byte("cart.gift_wrapped")}}})

	// Verbatim duplicates of the load's events so far.
	so := readAll(t, st.Brokers, topic)
	dups := 0
	for _, m := range so {
		if m.Header(envelope.HeaderID) != "" && !inj.poisonKeys[string(m.Key)] && !inj.skippedKeys[string(m.Key)] && dups < 12 {
			publish(kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers})
			dups++
		}
	}
	// One cart's events out of version order: 1, 3, then the stale 2.
	cart := inj.disorderCart
	ev := func(v int64, payload func(e *cartpb.CartEvent)) kafka.Message {
		e := &cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cart, AggregateVersion: v}
		payload(e)
		return encode(e)
	}
	publish(ev(1, func(e *cartpb.CartEvent) {
		e.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "disorder", ProductId: "mug", Quantity: 1, LineQuantity: 1, UnitPriceCents: 1250}}
	}))
	publish(ev(3, func(e *cartpb.CartEvent) {
		e.Payload = &cartpb.CartEvent_ItemQuantityChanged{ItemQuantityChanged: &cartpb.ItemQuantityChanged{UserId: "disorder", ProductId: "mug", OldQuantity: 1, NewQuantity: 3, UnitPriceCents: 1250}}
	}))
	publish(ev(2, func(e *cartpb.CartEvent) {
		e.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "disorder", ProductId: "tshirt", Quantity: 1, LineQuantity: 1, UnitPriceCents: 2000}}
	}))
	t.Logf("injected %d poison messages, 1 unknown payload kind, %d duplicates, 3 events of cart %s in version order 1,3,2",
		len(inj.poisonKeys), dups, cart)
	return inj
}
