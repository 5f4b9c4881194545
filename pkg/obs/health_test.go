package obs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// toggleCheck fails with err while fail is set.
func toggleCheck(fail *atomic.Bool, err error) func(context.Context) error {
	return func(context.Context) error {
		if fail.Load() {
			return err
		}
		return nil
	}
}

// get performs GET path on h and decodes the JSON body.
func get(t *testing.T, h http.Handler, path string) (int, probeResponse) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s Content-Type = %q, want application/json", path, ct)
	}
	var body probeResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", path, rec.Body.String(), err)
	}
	return rec.Code, body
}

func grpcStatus(t *testing.T, h *Health, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := h.GRPCServer().Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health Check(%q): %v", service, err)
	}
	return resp.GetStatus()
}

// waitGRPCStatus polls until service reports want or a second passes.
func waitGRPCStatus(t *testing.T, h *Health, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		got := grpcStatus(t, h, service)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gRPC health %q = %v, want %v within 1s", service, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReadyzResponses(t *testing.T) {
	tests := []struct {
		name     string
		checks   map[string]error
		wantCode int
		want     probeResponse
	}{
		{
			name:     "no checks",
			wantCode: http.StatusOK,
			want:     probeResponse{Status: "ready"},
		},
		{
			name:     "all pass",
			checks:   map[string]error{"postgres": nil, "kafka": nil},
			wantCode: http.StatusOK,
			want:     probeResponse{Status: "ready", Checks: map[string]string{"postgres": "ok", "kafka": "ok"}},
		},
		{
			name:     "one fails",
			checks:   map[string]error{"postgres": nil, "kafka": errors.New("no brokers reachable")},
			wantCode: http.StatusServiceUnavailable,
			want:     probeResponse{Status: "unavailable", Checks: map[string]string{"postgres": "ok", "kafka": "no brokers reachable"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHealth(discardLogger())
			for name, err := range tt.checks {
				h.AddCheck(name, func(context.Context) error { return err })
			}
			code, body := get(t, h.Handler(), "/readyz")
			if code != tt.wantCode {
				t.Errorf("GET /readyz = %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.want, body); diff != "" {
				t.Errorf("GET /readyz body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadyzFlipsWithCheck(t *testing.T) {
	var fail atomic.Bool
	h := NewHealth(discardLogger())
	h.AddCheck("postgres", func(context.Context) error { return nil })
	h.AddCheck("kafka", toggleCheck(&fail, errors.New("kafka down")))
	handler := h.Handler()

	steps := []struct {
		fail       bool
		wantCode   int
		wantStatus string
		wantKafka  string
	}{
		{false, http.StatusOK, "ready", "ok"},
		{true, http.StatusServiceUnavailable, "unavailable", "kafka down"},
		{false, http.StatusOK, "ready", "ok"},
	}
	for i, s := range steps {
		fail.Store(s.fail)
		code, body := get(t, handler, "/readyz")
		if code != s.wantCode || body.Status != s.wantStatus || body.Checks["kafka"] != s.wantKafka {
			t.Errorf("step %d (kafka failing=%v): GET /readyz = %d %+v, want %d status %q kafka %q",
				i, s.fail, code, body, s.wantCode, s.wantStatus, s.wantKafka)
		}
		if body.Checks["postgres"] != "ok" {
			t.Errorf("step %d: postgres = %q, want ok", i, body.Checks["postgres"])
		}
	}
}

func TestReadyzBlockingCheckTimesOut(t *testing.T) {
	tests := []struct {
		name  string
		check func(release <-chan struct{}) func(context.Context) error
	}{
		{
			name: "honours context",
			check: func(<-chan struct{}) func(context.Context) error {
				return func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
			},
		},
		{
			name: "ignores context",
			check: func(release <-chan struct{}) func(context.Context) error {
				return func(context.Context) error { <-release; return nil }
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })

			h := NewHealth(discardLogger())
			h.AddCheck("postgres", func(context.Context) error { return nil })
			h.AddCheck("kafka", tt.check(release))

			type answer struct {
				code int
				body probeResponse
			}
			got := make(chan answer, 1)
			start := time.Now()
			go func() {
				rec := httptest.NewRecorder()
				h.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
				var body probeResponse
				_ = json.Unmarshal(rec.Body.Bytes(), &body)
				got <- answer{rec.Code, body}
			}()
			select {
			case a := <-got:
				elapsed := time.Since(start)
				if a.code != http.StatusServiceUnavailable || a.body.Status != "unavailable" {
					t.Errorf("GET /readyz = %d %+v, want 503 unavailable", a.code, a.body)
				}
				if a.body.Checks["kafka"] == "" || a.body.Checks["kafka"] == "ok" {
					t.Errorf("kafka = %q, want a timeout error", a.body.Checks["kafka"])
				}
				if a.body.Checks["postgres"] != "ok" {
					t.Errorf("postgres = %q, want ok", a.body.Checks["postgres"])
				}
				if elapsed < DefaultCheckTimeout-100*time.Millisecond {
					t.Errorf("answered after %v, before the %v timeout", elapsed, DefaultCheckTimeout)
				}
			case <-time.After(2500 * time.Millisecond):
				t.Fatal("GET /readyz did not answer within 2.5s")
			}
		})
	}
}

func TestHealthzStays200(t *testing.T) {
	h := NewHealth(discardLogger())
	h.AddCheck("kafka", func(context.Context) error { return errors.New("down") })
	handler := h.Handler()

	for _, stage := range []string{"failing check", "shutting down"} {
		if stage == "shutting down" {
			h.ShuttingDown()
		}
		code, body := get(t, handler, "/healthz")
		if code != http.StatusOK || body.Status != "ok" {
			t.Errorf("%s: GET /healthz = %d %+v, want 200 ok", stage, code, body)
		}
	}
}

func TestShuttingDownIsImmediateAndPermanent(t *testing.T) {
	h := NewHealth(discardLogger())
	h.AddCheck("postgres", func(context.Context) error { return nil })
	h.GRPCServer().SetServingStatus("eventshop.cart.v1.CartService", healthpb.HealthCheckResponse_SERVING)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan struct{})
	go func() { h.Run(ctx, 5*time.Millisecond); close(runDone) }()
	waitGRPCStatus(t, h, "", healthpb.HealthCheckResponse_SERVING)
	if code, _ := get(t, h.Handler(), "/readyz"); code != http.StatusOK {
		t.Fatalf("before ShuttingDown: GET /readyz = %d, want 200", code)
	}

	h.ShuttingDown()

	// At once: no polling.
	for _, svc := range []string{"", "eventshop.cart.v1.CartService"} {
		if got := grpcStatus(t, h, svc); got != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("right after ShuttingDown: gRPC health %q = %v, want NOT_SERVING", svc, got)
		}
	}
	code, body := get(t, h.Handler(), "/readyz")
	if code != http.StatusServiceUnavailable || body.Status != "shutting down" || body.Checks != nil {
		t.Errorf("right after ShuttingDown: GET /readyz = %d %+v, want 503 {status: shutting down}", code, body)
	}

	// Permanently: Run keeps evaluating passing checks but must not restore SERVING.
	time.Sleep(50 * time.Millisecond)
	h.ShuttingDown() // idempotent
	if got := grpcStatus(t, h, ""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after further Run cycles: gRPC health = %v, want NOT_SERVING", got)
	}
	if code, _ := get(t, h.Handler(), "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("after further Run cycles: GET /readyz = %d, want 503", code)
	}

	cancel()
	select {
	case <-runDone:
	case <-time.After(time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestRunMirrorsChecksIntoGRPC(t *testing.T) {
	var fail atomic.Bool
	var logs strings.Builder // read only after Run has returned
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := NewHealth(log)
	h.AddCheck("kafka", toggleCheck(&fail, errors.New("kafka down")))

	if got := grpcStatus(t, h, ""); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("before Run: gRPC health = %v, want NOT_SERVING", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { h.Run(ctx, 5*time.Millisecond); close(runDone) }()

	steps := []struct {
		fail bool
		want healthpb.HealthCheckResponse_ServingStatus
	}{
		{false, healthpb.HealthCheckResponse_SERVING},
		{true, healthpb.HealthCheckResponse_NOT_SERVING},
		{false, healthpb.HealthCheckResponse_SERVING},
	}
	for _, s := range steps {
		fail.Store(s.fail)
		waitGRPCStatus(t, h, "", s.want)
	}

	cancel()
	select {
	case <-runDone:
	case <-time.After(time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if out := logs.String(); !strings.Contains(out, "kafka: kafka down") {
		t.Errorf("Run did not log the failing check; logs %q", out)
	}
}

func TestMuxRoutes(t *testing.T) {
	h := NewHealth(discardLogger())
	m := NewMetrics("cart")
	mux := Mux(h, m)
	// A service's catch-all API routes must coexist with the probes.
	mux.Handle("/", http.NotFoundHandler())
	mux.HandleFunc("GET /v1/carts/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })

	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/healthz", http.StatusOK, `"status":"ok"`},
		{"/readyz", http.StatusOK, `"status":"ready"`},
		{"/metrics", http.StatusOK, "go_goroutines"},
		{"/v1/carts/42", http.StatusTeapot, ""},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantCode || !strings.Contains(string(b), tt.wantBody) {
			t.Errorf("GET %s = %d, body containing %q? got %q; want %d", tt.path, resp.StatusCode, tt.wantBody, b, tt.wantCode)
		}
	}
}
