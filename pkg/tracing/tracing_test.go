package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/tracing"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// TestConsumeContinuesTheProducersTrace: a message encoded inside a span is handled in a
// consumer span that is its child, and an event the handler encodes carries the consumer
// span as its parent, so the next consumer continues the same trace.
func TestConsumeContinuesTheProducersTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	encode := func(ctx context.Context, topic string) kafka.Message {
		m, err := envelope.Encode(ctx, topic, "eventshop/test", &cartpb.CartEvent{
			EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: "c1", AggregateVersion: 1,
			Payload: &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "u", ProductId: "p", Quantity: 1, LineQuantity: 1, UnitPriceCents: 1}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ctx, request := tracing.Tracer().Start(context.Background(), "request")
	first := encode(ctx, "first")
	request.End()

	var second kafka.Message
	handle := tracing.Consume("g1", func(ctx context.Context, _ kafka.Message) error {
		second = encode(ctx, "second")
		return nil
	})
	if err := handle(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if err := tracing.Consume("g2", func(context.Context, kafka.Message) error { return nil })(context.Background(), second); err != nil {
		t.Fatal(err)
	}

	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	req, c1, c2 := byName["request"], byName["consume first"], byName["consume second"]
	if len(spans) != 3 || !c1.SpanContext.IsValid() || !c2.SpanContext.IsValid() {
		t.Fatalf("spans = %v, want request, consume first, consume second", spans)
	}
	for _, s := range []tracetest.SpanStub{c1, c2} {
		if s.SpanContext.TraceID() != req.SpanContext.TraceID() {
			t.Errorf("%s trace %s, want the request's %s", s.Name, s.SpanContext.TraceID(), req.SpanContext.TraceID())
		}
		if s.SpanKind != trace.SpanKindConsumer {
			t.Errorf("%s kind %v, want consumer", s.Name, s.SpanKind)
		}
	}
	if c1.Parent.SpanID() != req.SpanContext.SpanID() {
		t.Errorf("consume first parent %s, want the request span %s", c1.Parent.SpanID(), req.SpanContext.SpanID())
	}
	if c2.Parent.SpanID() != c1.SpanContext.SpanID() {
		t.Errorf("consume second parent %s, want the first consumer span %s", c2.Parent.SpanID(), c1.SpanContext.SpanID())
	}
}

func TestSetupRejectsUnknownExporter(t *testing.T) {
	t.Setenv(tracing.EnvExporter, "zipkin")
	if _, err := tracing.Setup(context.Background(), "x"); err == nil {
		t.Error("Setup with OTEL_TRACES_EXPORTER=zipkin: want an error")
	}
	t.Setenv(tracing.EnvExporter, "none")
	shutdown, err := tracing.Setup(context.Background(), "x")
	if err != nil || shutdown(context.Background()) != nil {
		t.Errorf("Setup none: %v", err)
	}
}
