package obs

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// scrape GETs m.Handler() and parses the exposition.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return fams
}

// find returns the series of family name whose labels are exactly want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s not exported", name)
	}
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if equalLabels(got, want) {
			return m
		}
	}
	t.Fatalf("metric %s has no series with labels %v; series: %v", name, want, fam.GetMetric())
	return nil
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestUnaryServerInterceptorExportsMetrics(t *testing.T) {
	m := NewMetrics("cart")
	h := NewHealth(discardLogger())
	h.GRPCServer().SetServingStatus("", healthpb.HealthCheckResponse_SERVING)

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(m.UnaryServerInterceptor()))
	healthpb.RegisterHealthServer(srv, h.GRPCServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	ctx := context.Background()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check(\"\"): %v", err)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check(unknown) = %v, want NotFound", err)
	}

	const method = "/grpc.health.v1.Health/Check"
	fams := scrape(t, m)
	for _, tt := range []struct{ code string }{{"OK"}, {"NotFound"}} {
		c := find(t, fams, "eventshop_grpc_requests_total", map[string]string{"service": "cart", "method": method, "code": tt.code})
		if got := c.GetCounter().GetValue(); got != 1 {
			t.Errorf("eventshop_grpc_requests_total{code=%q} = %v, want 1", tt.code, got)
		}
	}
	hist := find(t, fams, "eventshop_grpc_request_duration_seconds", map[string]string{"service": "cart", "method": method}).GetHistogram()
	if got := hist.GetSampleCount(); got != 2 {
		t.Errorf("eventshop_grpc_request_duration_seconds count = %d, want 2", got)
	}
	var bounds []float64
	for _, b := range hist.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), +1) {
			bounds = append(bounds, b.GetUpperBound())
		}
	}
	if len(bounds) == 0 || bounds[0] != 0.001 || bounds[len(bounds)-1] != 5 {
		t.Errorf("duration bucket bounds = %v, want 0.001 .. 5", bounds)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("collector metric %s not exported", name)
		}
	}
}

func TestHTTPMiddlewareLabels(t *testing.T) {
	m := NewMetrics("order")
	handler := m.HTTPMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/created":
			w.WriteHeader(http.StatusCreated)
		case "/missing":
			http.NotFound(w, r)
		case "/body":
			_, _ = w.Write([]byte("hello")) // implicit 200
		default:
			// writes nothing: net/http sends 200
		}
	}))

	requests := []struct{ method, path string }{
		{http.MethodGet, "/orders/1"},
		{http.MethodGet, "/orders/2"}, // another path, same series
		{http.MethodGet, "/body"},
		{http.MethodPost, "/created"},
		{http.MethodDelete, "/missing"},
		{"BREW", "/coffee"}, // nonstandard method collapses to OTHER
	}
	for _, r := range requests {
		handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.path, nil))
	}

	fams := scrape(t, m)
	tests := []struct {
		method, code string
		want         float64
	}{
		{"GET", "200", 3},
		{"POST", "201", 1},
		{"DELETE", "404", 1},
		{"OTHER", "200", 1},
	}
	for _, tt := range tests {
		c := find(t, fams, "eventshop_http_requests_total", map[string]string{"service": "order", "method": tt.method, "code": tt.code})
		if got := c.GetCounter().GetValue(); got != tt.want {
			t.Errorf("eventshop_http_requests_total{method=%q,code=%q} = %v, want %v", tt.method, tt.code, got, tt.want)
		}
	}
	if got := len(fams["eventshop_http_requests_total"].GetMetric()); got != len(tests) {
		t.Errorf("eventshop_http_requests_total has %d series, want %d (no path labels)", got, len(tests))
	}
	if got := find(t, fams, "eventshop_http_request_duration_seconds", map[string]string{"service": "order", "method": "GET"}).GetHistogram().GetSampleCount(); got != 3 {
		t.Errorf("eventshop_http_request_duration_seconds{method=GET} count = %d, want 3", got)
	}
}

func TestMetricsRegistriesAreIndependent(t *testing.T) {
	// Two Metrics in one process must not collide (no global registry).
	a, b := NewMetrics("cart"), NewMetrics("cart")
	a.HTTPMiddleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if fams := scrape(t, b); len(fams["eventshop_http_requests_total"].GetMetric()) != 0 {
		t.Errorf("request through a shows up in b's registry")
	}
}
