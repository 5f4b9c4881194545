// Package tracing is eventshop's OpenTelemetry tracing: the process's tracer provider
// chosen by configuration, a gRPC server interceptor, and the consumer span that joins
// a Kafka message's trace (W3C traceparent header) so that one request can be followed
// through the outbox and Kafka into every consumer and the events they publish.
//
// All spans go through the global tracer provider (otel.GetTracerProvider); Setup
// installs one when an exporter is configured, and a test may install its own (for
// example with an in-memory exporter) before starting services.
package tracing

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
)

// EnvExporter selects the span exporter: "otlp" (OTLP/gRPC; the standard
// OTEL_EXPORTER_OTLP_* variables configure the endpoint), "stdout" (JSON spans on
// standard error, for development) or "none" (the default: no tracer provider is
// installed and spans cost nothing).
const EnvExporter = "OTEL_TRACES_EXPORTER"

// instrumentation names eventshop's tracer.
const instrumentation = "github.com/eventshop/eventshop"

// Tracer is the tracer every eventshop span comes from (the global provider's).
func Tracer() trace.Tracer { return otel.Tracer(instrumentation) }

// Setup installs the global tracer provider for service according to
// OTEL_TRACES_EXPORTER and returns the function that flushes and stops it at shutdown.
// With "none" or nothing set it installs nothing and returns a no-op.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	var exp sdktrace.SpanExporter
	switch v := strings.ToLower(strings.TrimSpace(os.Getenv(EnvExporter))); v {
	case "", "none":
		return noop, nil
	case "otlp":
		exp, err = otlptracegrpc.New(ctx)
	case "stdout":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(io.Writer(os.Stderr)))
	default:
		return nil, fmt.Errorf("tracing: %s %q: want otlp, stdout or none", EnvExporter, v)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: %s exporter: %w", os.Getenv(EnvExporter), err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service))),
	)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

var traceContext = propagation.TraceContext{}

// UnaryServerInterceptor starts a server span per unary call, named after the full
// method, as a child of the caller's traceparent metadata when there is one.
func UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			ctx = traceContext.Extract(ctx, metadataCarrier(md))
		}
		ctx, span := Tracer().Start(ctx, info.FullMethod, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.method", info.FullMethod)))
		defer span.End()
		resp, err := handler(ctx, req)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.SetAttributes(attribute.String("rpc.grpc.status_code", status.Code(err).String()))
		return resp, err
	}
}

type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }
func (c metadataCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Consume wraps a consumer handler: each message is handled in a consumer span that is
// a child of the message's traceparent (the producing request), so the handler's logs
// and the events it publishes (envelope.Encode captures the span) belong to that trace.
func Consume(group string, next kafka.Handler) kafka.Handler {
	return func(ctx context.Context, m kafka.Message) error {
		ctx = envelope.Context(ctx, m)
		ctx, span := Tracer().Start(ctx, "consume "+m.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.destination.name", m.Topic),
				attribute.String("messaging.consumer.group.name", group),
				attribute.String("messaging.destination.partition.id", strconv.Itoa(int(m.Partition))),
				attribute.Int64("messaging.kafka.offset", m.Offset),
				attribute.String("messaging.message.id", m.Header(envelope.HeaderID)),
				attribute.String("cloudevents.event_type", m.Header(envelope.HeaderType)),
			))
		err := next(ctx, m)
		End(span, err)
		return err
	}
}

// End ends span, marking it failed when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
