package e2e

import (
	"bufio"
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/eventshop/eventshop/e2e/demo"
	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/obs"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// collector is a minimal OTLP/gRPC trace receiver: the services export to it.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []span
}

type span struct {
	service, name           string
	traceID, spanID, parent string
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, span{service: service, name: s.GetName(),
					traceID: hex.EncodeToString(s.GetTraceId()), spanID: hex.EncodeToString(s.GetSpanId()), parent: hex.EncodeToString(s.GetParentSpanId())})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) trace(id string) []span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []span
	for _, s := range c.spans {
		if s.traceID == id {
			out = append(out, s)
		}
	}
	return out
}

var _ tracepb.Span // the exported spans' type, decoded above

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return c, ln.Addr().String()
}

// TestObservability runs the four services as processes exporting spans over OTLP to an
// in-test collector, plays the demo, then:
//   - one gRPC AddItem (with a caller traceparent) yields one connected trace: the cart's
//     server span, the consumer spans of inventory, discount and order on the cart event,
//     and the consumers of inventory's resulting event as children of inventory's span;
//   - every service's /metrics shows non-zero request, producer, consumer, idempotency
//     and outbox series.
func TestObservability(t *testing.T) {
	col, addr := startCollector(t)
	st := stack.Start(t, stack.Options{Env: []string{
		"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=http://" + addr,
		"OTEL_EXPORTER_OTLP_INSECURE=true", "OTEL_BSP_SCHEDULE_DELAY=200",
	}})
	ctx := testkit.Context(t, 5*time.Minute)

	if _, err := demo.Run(ctx, st.Endpoints(), st.Auth, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}

	conn, err := grpc.NewClient(st.Services["cart"].GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	tok, err := auth.Mint(st.Auth, "trace-user", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	traceID, callerSpan := testkit.RandomSuffix(16), testkit.RandomSuffix(8)
	gctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok,
		"traceparent", "00-"+traceID+"-"+callerSpan+"-01")
	if _, err := cartpb.NewCartServiceClient(conn).AddItem(gctx, &cartpb.AddItemRequest{ProductId: "hoodie", Quantity: 1}); err != nil {
		t.Fatalf("AddItem: %v", err)
	}

	cartTopic, invTopic := st.Topics[envelope.TopicCartEvents], st.Topics[envelope.TopicInventoryEvents]
	has := func(spans []span, service, name string) *span {
		for i, s := range spans {
			if s.service == service && s.name == name {
				return &spans[i]
			}
		}
		return nil
	}
	var spans []span
	testkit.Eventually(t, 60*time.Second, "the AddItem trace in all four services", func() bool {
		spans = col.trace(traceID)
		inv := has(spans, "inventory", "consume "+cartTopic)
		return has(spans, "cart", "/eventshop.cart.v1.CartService/AddItem") != nil && inv != nil &&
			has(spans, "discount", "consume "+cartTopic) != nil && has(spans, "order", "consume "+cartTopic) != nil &&
			has(spans, "order", "consume "+invTopic) != nil && has(spans, "cart", "consume "+invTopic) != nil
	})
	ids := map[string]span{}
	for _, s := range spans {
		ids[s.spanID] = s
	}
	for _, s := range spans {
		if _, ok := ids[s.parent]; !ok && s.parent != callerSpan {
			t.Errorf("span %s/%q has parent %s, which is not in the trace: the trace is broken", s.service, s.name, s.parent)
		}
	}
	server := has(spans, "cart", "/eventshop.cart.v1.CartService/AddItem")
	if server.parent != callerSpan {
		t.Errorf("cart server span parent = %s, want the caller's %s", server.parent, callerSpan)
	}
	for _, svc := range []string{"inventory", "discount", "order"} {
		if c := has(spans, svc, "consume "+cartTopic); ids[c.parent].service != "cart" {
			t.Errorf("%s's consumer span has parent %+v, want a cart span", svc, ids[c.parent])
		}
	}
	for _, svc := range []string{"order", "cart"} {
		if c := has(spans, svc, "consume "+invTopic); ids[c.parent].service != "inventory" || ids[c.parent].name != "consume "+cartTopic {
			t.Errorf("%s's consumer span of the inventory event has parent %+v, want inventory's consumer span", svc, ids[c.parent])
		}
	}
	t.Logf("trace %s: %d spans", traceID, len(spans))
	for _, s := range spans {
		t.Logf("  %-9s %-55s span %s parent %s", s.service, s.name, s.spanID, s.parent)
	}

	// Metrics after the demo: the series an operator's dashboard needs are alive.
	want := map[string][]string{
		"cart":      {"eventshop_grpc_requests_total", "eventshop_http_requests_total", "eventshop_kafka_producer_delivery_seconds_count", "eventshop_outbox_published_total", "eventshop_kafka_consumer_handle_seconds_count", "eventshop_consumer_events_total", "eventshop_db_connections_max_open"},
		"inventory": {"eventshop_kafka_producer_delivery_seconds_count", "eventshop_outbox_published_total", "eventshop_kafka_consumer_handle_seconds_count", "eventshop_consumer_events_total", "eventshop_db_connections_max_open"},
		"discount":  {"eventshop_kafka_producer_delivery_seconds_count", "eventshop_outbox_published_total", "eventshop_kafka_consumer_handle_seconds_count", "eventshop_consumer_events_total"},
		"order":     {"eventshop_kafka_producer_delivery_seconds_count", "eventshop_outbox_published_total", "eventshop_kafka_consumer_handle_seconds_count", "eventshop_consumer_events_total", "eventshop_http_requests_total"},
	}
	for _, name := range []string{"cart", "inventory", "discount", "order"} {
		var sums map[string]float64
		var excerpt []string
		testkit.Eventually(t, 60*time.Second, name+" metrics non-zero (lag reported)", func() bool {
			sums, excerpt = scrapeMetrics(t, st.Services[name].HTTPAddr)
			for _, m := range want[name] {
				if sums[m] <= 0 {
					return false
				}
			}
			_, lag := sums["eventshop_kafka_consumer_lag"]
			return lag
		})
		t.Logf("--- %s /metrics (excerpt):\n%s", name, strings.Join(excerpt, "\n"))
	}
}

// scrapeMetrics returns, per family (and _count/_sum series), the sum of its values, and
// the eventshop_* lines without histogram buckets.
func scrapeMetrics(t *testing.T, httpAddr string) (map[string]float64, []string) {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics") //nolint:noctx // test client
	if err != nil {
		return nil, nil
	}
	defer func() { _ = resp.Body.Close() }()
	sums := map[string]float64{}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "eventshop_") || strings.Contains(line, "_bucket{") {
			continue
		}
		lines = append(lines, line)
		name := line[:strings.IndexAny(line, "{ ")]
		v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err == nil {
			sums[name] += v
		}
	}
	return sums, lines
}

var metricName = regexp.MustCompile(`eventshop_[a-z0-9_]+`)

// TestDashboardsAndAlertsUseExportedMetrics: every eventshop_* name in the Grafana
// dashboards and the Prometheus alert rules is a family the services export (obs.Metrics,
// which every service's host uses; pkg/obs tests that Names equals what is exported).
func TestDashboardsAndAlertsUseExportedMetrics(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "deploy", "grafana", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if len(files) < 2 {
		t.Fatalf("no dashboards found under deploy/grafana/dashboards")
	}
	exported := obs.NewMetrics("x").Names()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		used := metricName.FindAllString(string(b), -1)
		if len(used) == 0 {
			t.Errorf("%s names no eventshop_ metric", f)
		}
		for _, name := range used {
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if trimmed, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(exported, trimmed) {
					base = trimmed
				}
			}
			if !slices.Contains(exported, base) {
				t.Errorf("%s uses %s, which no service exports (exported: %v)", filepath.Base(f), name, exported)
			}
		}
	}
}
