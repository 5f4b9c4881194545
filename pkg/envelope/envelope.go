// Package envelope turns eventshop's protobuf envelopes into Kafka messages and back:
// the value is the binary envelope, the key its aggregate id, and the headers carry the
// CloudEvents binary-mode attributes and the W3C traceparent.
package envelope

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventshop/eventshop/pkg/kafka"
	eventspb "github.com/eventshop/eventshop/proto/eventshop/events/v1"
)

// Default topic names (configuration may override them) and their partition counts.
const (
	TopicCartEvents      = "cart.events.v1"
	TopicInventoryEvents = "inventory.events.v1"
	TopicProducts        = "inventory.products.v1"
	TopicDiscountEvents  = "discount.events.v1"
	TopicOrderEvents     = "order.events.v1"
)

// DefaultTopics lists every topic of the event catalog with its partitions, for creation
// at start-up. The products topic is compacted: the latest snapshot per product is kept.
func DefaultTopics() []kafka.TopicSpec {
	return []kafka.TopicSpec{
		{Name: TopicCartEvents, Partitions: 6},
		{Name: TopicInventoryEvents, Partitions: 6},
		{Name: TopicProducts, Partitions: 3, Compacted: true},
		{Name: TopicDiscountEvents, Partitions: 6},
		{Name: TopicOrderEvents, Partitions: 6},
	}
}

// CloudEvents binary-mode header names used on every message.
const (
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderSpecVersion = "ce_specversion"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"
	ContentType       = "application/protobuf"
)

// Envelope is satisfied by every eventshop envelope (CartEvent, InventoryEvent,
// ProductEvent, DiscountEvent, OrderEvent): fields 1-4 are the same in all of them.
type Envelope interface {
	proto.Message
	GetEventId() string
	GetOccurredAt() *timestamppb.Timestamp
	GetAggregateId() string
	GetAggregateVersion() int64
}

// ErrUnknownPayload means the envelope decoded but carries a payload kind this build
// does not know (a newer producer). Consumers skip such events and count them.
var ErrUnknownPayload = errors.New("envelope: unknown payload kind")

// NewID returns a new event id (a time-ordered UUIDv7).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// Now returns the current time as an envelope timestamp (UTC).
func Now() *timestamppb.Timestamp { return timestamppb.New(time.Now().UTC()) }

var traceContext = propagation.TraceContext{}

// Encode validates env and builds its Kafka message for topic. source is the CloudEvents
// source (e.g. "eventshop/cart"). The trace context of ctx, if any, becomes traceparent.
func Encode(ctx context.Context, topic, source string, env Envelope) (kafka.Message, error) {
	ceType, err := validate(env)
	if err != nil {
		return kafka.Message{}, err
	}
	value, err := proto.Marshal(env)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("envelope: marshal %s: %w", ceType, err)
	}
	hs := []kafka.Header{
		{Key: HeaderID, Value: []byte(env.GetEventId())},
		{Key: HeaderType, Value: []byte(ceType)},
		{Key: HeaderSource, Value: []byte(source)},
		{Key: HeaderSpecVersion, Value: []byte("1.0")},
		{Key: HeaderTime, Value: []byte(env.GetOccurredAt().AsTime().UTC().Format(time.RFC3339Nano))},
		{Key: HeaderSubject, Value: []byte(env.GetAggregateId())},
		{Key: HeaderContentType, Value: []byte(ContentType)},
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	for _, k := range carrier.Keys() {
		hs = append(hs, kafka.Header{Key: k, Value: []byte(carrier.Get(k))})
	}
	return kafka.Message{Topic: topic, Key: []byte(env.GetAggregateId()), Value: value, Headers: hs}, nil
}

func validate(env Envelope) (ceType string, err error) {
	switch {
	case env.GetEventId() == "":
		return "", errors.New("envelope: envelope has no event_id")
	case env.GetAggregateId() == "":
		return "", errors.New("envelope: envelope has no aggregate_id")
	case env.GetOccurredAt() == nil:
		return "", errors.New("envelope: envelope has no occurred_at")
	case env.GetAggregateVersion() < 0:
		return "", fmt.Errorf("envelope: negative aggregate_version %d", env.GetAggregateVersion())
	}
	payload, ceType := eventspb.Payload(env)
	if payload == nil {
		return "", ErrUnknownPayload
	}
	if ceType == "" {
		return "", fmt.Errorf("envelope: payload %s declares no ce_type", payload.ProtoReflect().Descriptor().FullName())
	}
	return ceType, nil
}

// Decode parses m into env (a new, empty envelope of the topic's type). Undecodable bytes
// and envelopes missing their required fields are returned as kafka.Permanent errors (the
// runner dead-letters them); an unknown payload kind returns ErrUnknownPayload.
func Decode(m kafka.Message, env Envelope) error {
	if err := proto.Unmarshal(m.Value, env); err != nil {
		return kafka.Permanent(fmt.Errorf("envelope: undecodable %s message at %s/%d@%d: %w", env.ProtoReflect().Descriptor().Name(), m.Topic, m.Partition, m.Offset, err))
	}
	if _, err := validate(env); err != nil {
		if errors.Is(err, ErrUnknownPayload) {
			return err
		}
		return kafka.Permanent(err)
	}
	return nil
}

// Context returns ctx carrying the trace context of m's traceparent header, if any, so
// that a consumer's work joins the producer's trace.
func Context(ctx context.Context, m kafka.Message) context.Context {
	carrier := propagation.MapCarrier{}
	for _, h := range m.Headers {
		carrier[h.Key] = string(h.Value)
	}
	return traceContext.Extract(ctx, carrier)
}
