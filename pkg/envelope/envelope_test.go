package envelope_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

func itemAdded() *cartpb.CartEvent {
	return &cartpb.CartEvent{
		EventId:          envelope.NewID(),
		OccurredAt:       envelope.Now(),
		AggregateId:      "cart-1",
		AggregateVersion: 3,
		Payload: &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{
			UserId: "u1", ProductId: "p1", Quantity: 2, LineQuantity: 2, UnitPriceCents: 1999,
		}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))

	env := itemAdded()
	m, err := envelope.Encode(ctx, envelope.TopicCartEvents, "eventshop/cart", env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ce_id":          env.GetEventId(),
		"ce_type":        "cart.item.added",
		"ce_source":      "eventshop/cart",
		"ce_specversion": "1.0",
		"ce_subject":     "cart-1",
		"content-type":   "application/protobuf",
		"traceparent":    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	for k, v := range want {
		if got := m.Header(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if m.Header("ce_time") == "" || string(m.Key) != "cart-1" || m.Topic != envelope.TopicCartEvents {
		t.Errorf("message key/topic/time wrong: %q %q %q", m.Key, m.Topic, m.Header("ce_time"))
	}

	var got cartpb.CartEvent
	if err := envelope.Decode(m, &got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&got, env) {
		t.Fatalf("round trip changed the envelope:\n got %v\nwant %v", &got, env)
	}
	if sc := trace.SpanContextFromContext(envelope.Context(context.Background(), m)); sc.TraceID() != tid {
		t.Fatalf("consumer context trace id = %s, want %s", sc.TraceID(), tid)
	}
}

func TestEncodeRejectsIncompleteEnvelopes(t *testing.T) {
	tests := []struct {
		name string
		mut  func(e *cartpb.CartEvent)
	}{
		{"no event id", func(e *cartpb.CartEvent) { e.EventId = "" }},
		{"no aggregate id", func(e *cartpb.CartEvent) { e.AggregateId = "" }},
		{"no time", func(e *cartpb.CartEvent) { e.OccurredAt = nil }},
		{"negative version", func(e *cartpb.CartEvent) { e.AggregateVersion = -1 }},
		{"no payload", func(e *cartpb.CartEvent) { e.Payload = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := itemAdded()
			tt.mut(e)
			if _, err := envelope.Encode(context.Background(), "t", "s", e); err == nil {
				t.Fatal("Encode accepted an incomplete envelope")
			}
		})
	}
}

func TestDecodeClassifiesBadInput(t *testing.T) {
	valid, err := proto.Marshal(itemAdded())
	if err != nil {
		t.Fatal(err)
	}
	// A newer producer's payload kind: field 99 is not in this build's oneof.
	unknownKind := protowire.AppendTag(nil, 1, protowire.BytesType)
	unknownKind = protowire.AppendString(unknownKind, "evt-9")
	unknownKind = protowire.AppendTag(unknownKind, 3, protowire.BytesType)
	unknownKind = protowire.AppendString(unknownKind, "cart-9")
	ts, _ := proto.Marshal(envelope.Now())
	unknownKind = protowire.AppendTag(unknownKind, 2, protowire.BytesType)
	unknownKind = protowire.AppendBytes(unknownKind, ts)
	unknownKind = protowire.AppendTag(unknownKind, 99, protowire.BytesType)
	unknownKind = protowire.AppendBytes(unknownKind, []byte{0x0a, 0x01, 'x'})

	noID := itemAdded()
	noID.EventId = ""
	noIDBytes, _ := proto.Marshal(noID)

	tests := []struct {
		name      string
		value     []byte
		permanent bool
		unknown   bool
	}{
		{"valid", valid, false, false},
		{"garbage bytes", []byte{0xff, 0xff, 0xff, 0x01}, true, false},
		{"missing event id", noIDBytes, true, false},
		{"unknown payload kind", unknownKind, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e cartpb.CartEvent
			err := envelope.Decode(kafka.Message{Value: tt.value}, &e)
			if got := kafka.IsPermanent(err); got != tt.permanent {
				t.Fatalf("permanent = %v (err %v), want %v", got, err, tt.permanent)
			}
			if got := errors.Is(err, envelope.ErrUnknownPayload); got != tt.unknown {
				t.Fatalf("unknown = %v (err %v), want %v", got, err, tt.unknown)
			}
			if !tt.permanent && !tt.unknown && err != nil {
				t.Fatalf("valid message: %v", err)
			}
		})
	}
}

func TestDefaultTopicsMatchCatalog(t *testing.T) {
	got := map[string]kafka.TopicSpec{}
	for _, s := range envelope.DefaultTopics() {
		got[s.Name] = s
	}
	if got["cart.events.v1"].Partitions != 6 || !got["inventory.products.v1"].Compacted || len(got) != 5 {
		t.Fatalf("topics = %+v", got)
	}
}

func BenchmarkEncode(b *testing.B) {
	env := itemAdded()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := envelope.Encode(ctx, envelope.TopicCartEvents, "eventshop/cart", env); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	m, err := envelope.Encode(context.Background(), envelope.TopicCartEvents, "eventshop/cart", itemAdded())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var e cartpb.CartEvent
		if err := envelope.Decode(m, &e); err != nil {
			b.Fatal(err)
		}
	}
}
