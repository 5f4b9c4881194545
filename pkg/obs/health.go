package obs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const (
	// DefaultCheckTimeout bounds one evaluation of all readiness checks.
	DefaultCheckTimeout = 2 * time.Second
	// DefaultRunInterval is the period Run uses when given a non-positive one.
	DefaultRunInterval = 2 * time.Second
)

// Health serves liveness (/healthz) and readiness (/readyz) over HTTP and
// mirrors readiness into a gRPC health server (grpc.health.v1) for the
// overall service name "".
//
// Readiness is the conjunction of the registered checks. Checks run
// concurrently and must honour their context: an evaluation gives up on a
// check after DefaultCheckTimeout and reports it as failed, but cannot stop a
// check that ignores its context.
//
// A Health is safe for concurrent use.
type Health struct {
	log     *slog.Logger
	grpc    *health.Server
	timeout time.Duration

	mu     sync.RWMutex
	checks map[string]func(ctx context.Context) error

	shutting atomic.Bool
}

// NewHealth returns a Health with no checks. The gRPC overall status ("")
// starts NOT_SERVING and becomes SERVING once Run has evaluated the checks
// and found them all passing; /readyz evaluates the checks on every request.
func NewHealth(log *slog.Logger) *Health {
	h := &Health{
		log:     log,
		grpc:    health.NewServer(),
		timeout: DefaultCheckTimeout,
		checks:  make(map[string]func(ctx context.Context) error),
	}
	h.grpc.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return h
}

// AddCheck registers a readiness check under name (e.g. "postgres" with
// db.PingContext, "kafka" with the producer's health probe). A check returns
// nil when the dependency is usable. Adding a check under an existing name
// replaces it. AddCheck panics on an empty name or nil check: both are wiring
// mistakes in main.
func (h *Health) AddCheck(name string, check func(ctx context.Context) error) {
	if name == "" || check == nil {
		panic("obs: AddCheck needs a name and a non-nil check")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks[name] = check
}

// GRPCServer returns the gRPC health server to register on the service's
// grpc.Server with healthpb.RegisterHealthServer. Health owns the status of
// the overall service name ""; callers may set per-service names themselves
// with SetServingStatus. After ShuttingDown every name reports NOT_SERVING.
func (h *Health) GRPCServer() *health.Server { return h.grpc }

// Run evaluates the checks now and then every interval (DefaultRunInterval
// when every <= 0), setting the gRPC status of "" to SERVING when all pass
// and NOT_SERVING otherwise, and logging each transition. It returns when ctx
// ends; it does not change the status on return (call ShuttingDown for that).
func (h *Health) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultRunInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()

	var last *bool
	for {
		results, ok := h.evaluate(ctx)
		if ctx.Err() != nil {
			return // failures caused by our own cancellation say nothing about readiness
		}
		if !h.shutting.Load() {
			status := healthpb.HealthCheckResponse_NOT_SERVING
			if ok {
				status = healthpb.HealthCheckResponse_SERVING
			}
			h.grpc.SetServingStatus("", status)
			if last == nil || *last != ok {
				if ok {
					h.log.Info("readiness: ready")
				} else {
					h.log.Warn("readiness: not ready", slog.String("failing", failing(results)))
				}
				last = &ok
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ShuttingDown marks the process as draining: from the moment it returns,
// /readyz answers 503 and every gRPC health status is NOT_SERVING, and that
// never changes back. Call it first in graceful shutdown, before the servers
// stop accepting. It is safe to call more than once.
func (h *Health) ShuttingDown() {
	if h.shutting.Swap(true) {
		return
	}
	h.grpc.Shutdown()
	h.log.Info("readiness: shutting down")
}

// Handler serves
//
//	GET /healthz  200 {"status":"ok"} while the process lives
//	GET /readyz   200 {"status":"ready","checks":{"postgres":"ok",...}}
//	              503 {"status":"unavailable","checks":{"kafka":"<error>",...}}
//	              503 {"status":"shutting down"} after ShuttingDown
//
// /readyz runs every check concurrently, bounded by DefaultCheckTimeout.
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, probeResponse{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", h.serveReady)
	return mux
}

type probeResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

func (h *Health) serveReady(w http.ResponseWriter, r *http.Request) {
	if h.shutting.Load() {
		writeJSON(w, http.StatusServiceUnavailable, probeResponse{Status: "shutting down"})
		return
	}
	results, ok := h.evaluate(r.Context())
	switch {
	case h.shutting.Load(): // ShuttingDown was called while the checks ran
		writeJSON(w, http.StatusServiceUnavailable, probeResponse{Status: "shutting down"})
	case ok:
		writeJSON(w, http.StatusOK, probeResponse{Status: "ready", Checks: results})
	default:
		writeJSON(w, http.StatusServiceUnavailable, probeResponse{Status: "unavailable", Checks: results})
	}
}

// evaluate runs every check concurrently under h.timeout and returns each
// check's outcome ("ok" or the error text) and whether all passed. It returns
// within the timeout even if a check ignores its context; such a check's
// goroutine finishes on its own and its result is discarded.
func (h *Health) evaluate(ctx context.Context) (map[string]string, bool) {
	h.mu.RLock()
	checks := make(map[string]func(context.Context) error, len(h.checks))
	for name, c := range h.checks {
		checks[name] = c
	}
	h.mu.RUnlock()

	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()

	type result struct {
		name string
		err  error
	}
	done := make(chan result, len(checks)) // buffered: late checks never block
	for name, check := range checks {
		go func() { done <- result{name, check(ctx)} }()
	}

	results := make(map[string]string, len(checks))
	ok := true
	for range checks {
		select {
		case r := <-done:
			if r.err != nil {
				ok = false
				results[r.name] = r.err.Error()
			} else {
				results[r.name] = "ok"
			}
		case <-ctx.Done():
			for name := range checks {
				if _, seen := results[name]; !seen {
					results[name] = fmt.Sprintf("no answer within %s: %v", h.timeout, ctx.Err())
				}
			}
			return results, false
		}
	}
	return results, ok
}

// failing lists the failing checks of results as "name: error; ...", sorted.
func failing(results map[string]string) string {
	var out []string
	for name, res := range results {
		if res != "ok" {
			out = append(out, name+": "+res)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing useful to do
}
