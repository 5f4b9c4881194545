package obs

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/eventshop/eventshop/pkg/kafka"
)

// TestNamesMatchWhatIsExported: every family Names lists shows up in a scrape once each
// method has been used, and nothing eventshop_* is exported that Names does not list, so
// that dashboards and alerts can be checked against Names.
func TestNamesMatchWhatIsExported(t *testing.T) {
	m := NewMetrics("cart")
	m.Delivered("t", time.Millisecond, nil)
	m.Delivered("t", time.Millisecond, errors.New("x"))
	m.Handled("g", "t", time.Millisecond, errors.New("x"))
	m.Retrying("g", "t")
	m.DeadLettered("g", "t")
	m.Lags("g", []kafka.PartitionLag{{Topic: "t", Partition: 0, Lag: 3}})
	m.ConsumerOutcome("g", "t", "duplicate")
	m.OutboxBacklog(2, time.Second)
	m.OutboxPublished(1)
	m.ProducerPending(func() int64 { return 4 })
	m.DBStats(func() sql.DBStats { return sql.DBStats{InUse: 1, MaxOpenConnections: 5} })
	_, _ = m.UnaryServerInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x.v1.X/Y"},
		func(context.Context, any) (any, error) { return nil, nil })
	m.HTTPMiddleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))

	fams := scrape(t, m)
	var exported []string
	for name := range fams {
		if strings.HasPrefix(name, "eventshop_") {
			exported = append(exported, name)
		}
	}
	names := m.Names()
	slices.Sort(exported)
	slices.Sort(names)
	if !slices.Equal(exported, names) {
		t.Errorf("exported eventshop_* families\n  %v\nNames()\n  %v", exported, names)
	}
	if got := find(t, fams, "eventshop_kafka_producer_pending", map[string]string{"service": "cart"}).GetGauge().GetValue(); got != 4 {
		t.Errorf("producer pending = %v, want 4", got)
	}
	if got := find(t, fams, "eventshop_consumer_events_total", map[string]string{"service": "cart", "group": "g", "topic": "t", "outcome": "duplicate"}).GetCounter().GetValue(); got != 1 {
		t.Errorf("duplicates = %v, want 1", got)
	}
}

func TestLagsReplacePreviousReport(t *testing.T) {
	m := NewMetrics("order")
	m.Lags("g", []kafka.PartitionLag{{Topic: "t", Partition: 0, Lag: 5}, {Topic: "t", Partition: 1, Lag: 7}})
	m.Lags("other", []kafka.PartitionLag{{Topic: "u", Partition: 0, Lag: 1}})
	m.Lags("g", []kafka.PartitionLag{{Topic: "t", Partition: 1, Lag: 2}}) // partition 0 revoked
	fams := scrape(t, m)
	if n := len(fams["eventshop_kafka_consumer_lag"].GetMetric()); n != 2 {
		t.Fatalf("lag series = %d, want 2 (g/t/1 and other/u/0)", n)
	}
	if got := find(t, fams, "eventshop_kafka_consumer_lag", map[string]string{"service": "order", "group": "g", "topic": "t", "partition": "1"}).GetGauge().GetValue(); got != 2 {
		t.Errorf("lag g/t/1 = %v, want 2", got)
	}
}

func TestLoggerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", "cart")
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	log.With("k", "v").InfoContext(ctx, "in a span")
	log.Info("no span")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %s", len(lines), buf.String())
	}
	var first, second map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if first["trace_id"] != tid.String() || first["span_id"] != sid.String() || first["service"] != "cart" || first["k"] != "v" {
		t.Errorf("record in a span = %v, want trace_id, span_id, service and k", first)
	}
	if _, ok := second["trace_id"]; ok {
		t.Errorf("record without a span = %v, want no trace_id", second)
	}
}
