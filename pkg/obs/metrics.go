package obs

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/pkg/kafka"
)

// latencyBuckets span 1ms to 5s, the range of eventshop request latencies.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Metrics holds the process's Prometheus registry and the request metrics
// shared by every service. Register service-specific collectors on Registry.
//
// The eventshop_* series carry a constant label service=<name>.
type Metrics struct {
	// Registry is this process's registry; the global default registry is
	// never used.
	Registry *prometheus.Registry

	grpcRequests *prometheus.CounterVec
	grpcDuration *prometheus.HistogramVec
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	events       *eventMetrics
	constLabels  prometheus.Labels
}

var _ kafka.ProducerObserver = (*Metrics)(nil)
var _ kafka.ConsumerObserver = (*Metrics)(nil)

// NewMetrics returns Metrics on a fresh registry holding the Go runtime and
// process collectors, the eventshop gRPC and HTTP request metrics and the event
// metrics (Kafka producer and consumer, idempotency outcomes, outbox). Metrics is a
// kafka.ProducerObserver and kafka.ConsumerObserver; ProducerPending and DBStats add
// the gauges read from a producer and a pool.
func NewMetrics(service string) *Metrics {
	reg := prometheus.NewRegistry()
	constLabels := prometheus.Labels{"service": service}
	m := &Metrics{
		Registry:    reg,
		events:      newEventMetrics(constLabels),
		constLabels: constLabels,
		grpcRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "eventshop_grpc_requests_total",
			Help:        "gRPC unary requests handled, by full method and status code.",
			ConstLabels: constLabels,
		}, []string{"method", "code"}),
		grpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "eventshop_grpc_request_duration_seconds",
			Help:        "Time to handle a gRPC unary request, by full method.",
			ConstLabels: constLabels,
			Buckets:     latencyBuckets,
		}, []string{"method"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "eventshop_http_requests_total",
			Help:        "HTTP requests handled, by method and status code.",
			ConstLabels: constLabels,
		}, []string{"method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "eventshop_http_request_duration_seconds",
			Help:        "Time to handle an HTTP request, by method.",
			ConstLabels: constLabels,
			Buckets:     latencyBuckets,
		}, []string{"method"}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpcRequests, m.grpcDuration, m.httpRequests, m.httpDuration,
	)
	reg.MustRegister(m.events.collectors()...)
	return m
}

// Handler serves the registry in the Prometheus exposition format, for
// /metrics. Scrape counts and errors are themselves recorded on the registry.
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.Registry,
		promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
}

// UnaryServerInterceptor records eventshop_grpc_requests_total{method,code}
// and eventshop_grpc_request_duration_seconds{method} for every unary call.
// method is the full gRPC method name (bounded by the registered services;
// gRPC rejects unknown methods before interceptors run).
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.grpcDuration.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
		m.grpcRequests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
		return resp, err
	}
}

// HTTPMiddleware records eventshop_http_requests_total{method,code} and
// eventshop_http_request_duration_seconds{method} for every request through
// next. Labels are the HTTP method (standard methods only; anything else is
// "OTHER") and the status code, never the path, so cardinality stays bounded.
func (m *Metrics) HTTPMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		method := methodLabel(r.Method)
		m.httpDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
		m.httpRequests.WithLabelValues(method, strconv.Itoa(sw.code())).Inc()
	})
}

// methodLabel maps the request method onto a fixed set: clients choose the
// method string, so using it raw would let them create unbounded series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	default:
		return "OTHER"
	}
}

// statusWriter remembers the status code written through it. Unwrap lets
// http.ResponseController reach the underlying writer (Flush, deadlines).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx are informational, not the final status
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush supports streaming responses (e.g. grpc-gateway server streams).
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK // handler wrote nothing: net/http sends 200
	}
	return w.status
}
