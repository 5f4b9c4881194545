// Package host runs one eventshop service process: its gRPC server and HTTP gateway,
// its background workers (consumers, the outbox relay), health and metrics, and the
// resources they use, and stops them in the house order:
//
//	readiness off -> stop accepting and finish in-flight requests -> stop consumers
//	(they commit) -> drain the outbox relay -> flush and close the producer -> close
//	the database.
//
// A service's main builds a Host, opens its resources through it, registers its API and
// workers, and calls Run.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/obs"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/server"
	"github.com/eventshop/eventshop/pkg/tracing"
)

// Config is what every service shares.
type Config struct {
	Name            string // service name, in logs and metrics
	HTTPAddr        string // host:port for HTTP (gateway, /healthz, /readyz, /metrics)
	GRPCAddr        string // host:port for gRPC
	Auth            auth.Config
	ShutdownTimeout time.Duration // default 20s
	// Timeouts bound requests and idle connections (REQUEST_TIMEOUT, HTTP_IDLE_TIMEOUT).
	Timeouts server.Timeouts
	// PprofAddr, when set, serves /debug/pprof/ there (PPROF_ADDR; keep it on loopback).
	PprofAddr string
}

// Host is one service process being assembled, then run.
type Host struct {
	cfg      Config
	log      *slog.Logger
	metrics  *obs.Metrics
	health   *obs.Health
	grpc     *grpc.Server
	mux      *http.ServeMux
	grpcLn   net.Listener
	httpLn   net.Listener
	workers  []func(context.Context) error // stopped first (consumers)
	drainers []func(context.Context) error // stopped after workers (outbox relay)
	closers  []func(context.Context)       // run last, in reverse order
	db       *sqlx.DB                      // the service's database, once opened
}

// publicMethods need no token: health checks and reflection.
func publicMethods(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
}

// New validates the auth configuration, installs the tracer provider chosen by
// OTEL_TRACES_EXPORTER (see package tracing; flushed last at shutdown) and opens the
// listeners. On error nothing is left open.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Host, error) {
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 20 * time.Second
	}
	if cfg.Timeouts.Request >= server.WriteTimeout {
		return nil, fmt.Errorf("request timeout %s must be below the HTTP write timeout %s", cfg.Timeouts.Request, server.WriteTimeout)
	}
	verifier, err := auth.NewVerifier(cfg.Auth)
	if err != nil {
		return nil, err
	}
	stopTracing, err := tracing.Setup(ctx, cfg.Name)
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, log: log, metrics: obs.NewMetrics(cfg.Name), health: obs.NewHealth(log)}
	h.OnClose(func(ctx context.Context) {
		if err := stopTracing(ctx); err != nil {
			log.Warn("tracing: flushing spans failed", "err", err)
		}
	})
	h.grpc = grpc.NewServer(server.GRPCOptions(log, cfg.Timeouts,
		[]grpc.UnaryServerInterceptor{tracing.UnaryServerInterceptor(), h.metrics.UnaryServerInterceptor(), auth.UnaryServerInterceptor(verifier, publicMethods)},
		[]grpc.StreamServerInterceptor{auth.StreamServerInterceptor(verifier, publicMethods)})...)
	grpc_health_v1.RegisterHealthServer(h.grpc, h.health.GRPCServer())
	reflection.Register(h.grpc)

	if h.grpcLn, err = server.Listen(ctx, cfg.Name+" gRPC", cfg.GRPCAddr); err != nil {
		_ = stopTracing(ctx)
		return nil, err
	}
	if h.httpLn, err = server.Listen(ctx, cfg.Name+" HTTP", cfg.HTTPAddr); err != nil {
		_ = h.grpcLn.Close()
		_ = stopTracing(ctx)
		return nil, err
	}
	h.mux = obs.Mux(h.health, h.metrics)
	if cfg.PprofAddr != "" {
		if err := h.servePprof(ctx, cfg.PprofAddr); err != nil {
			_ = h.grpcLn.Close()
			_ = h.httpLn.Close()
			return nil, err
		}
	}
	return h, nil
}

// Log is the service's logger.
func (h *Host) Log() *slog.Logger { return h.log }

// GRPC is the server to register the service's API on.
func (h *Host) GRPC() *grpc.Server { return h.grpc }

// Metrics is the process's metrics; services may register their own collectors on
// its Registry. The host already feeds it from the producer, consumers, relay and pool.
func (h *Host) Metrics() *obs.Metrics { return h.metrics }

// Health lets the service add readiness checks.
func (h *Host) Health() *obs.Health { return h.health }

// GRPCAddr is the address the gRPC server listens on.
func (h *Host) GRPCAddr() string { return h.grpcLn.Addr().String() }

// HTTPAddr is the address the HTTP server listens on.
func (h *Host) HTTPAddr() string { return h.httpLn.Addr().String() }

// Handle mounts an extra HTTP handler (e.g. the OpenAPI document).
func (h *Host) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// Gateway mounts the grpc-gateway for the service's API under /v1/. HTTP calls go
// through the gRPC server (auth, limits, metrics) on loopback.
func (h *Host) Gateway(ctx context.Context, register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error) error {
	gw, conn, err := server.Gateway(ctx, h.GRPCAddr(), register)
	if err != nil {
		return err
	}
	h.OnClose(func(context.Context) { _ = conn.Close() })
	h.mux.Handle("/v1/", server.LimitBody(gw))
	return nil
}

// OnClose registers a function run at the very end of shutdown (or when New's caller
// gives up), in reverse order of registration.
func (h *Host) OnClose(fn func(ctx context.Context)) { h.closers = append(h.closers, fn) }

// Postgres opens the service's database (its connections named after the service in
// pg_stat_activity), applies the migration sets and adds the "postgres" readiness check
// and the pool metrics; it is closed last.
func (h *Host) Postgres(ctx context.Context, cfg postgres.Config, sets ...postgres.MigrationSet) (*sqlx.DB, error) {
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = h.cfg.Name
	}
	db, err := postgres.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	h.OnClose(func(context.Context) { _ = db.Close() })
	if err := postgres.Migrate(ctx, db, sets...); err != nil {
		return nil, err
	}
	h.health.AddCheck("postgres", db.PingContext)
	h.metrics.DBStats(db.Stats)
	h.db = db
	return db, nil
}

// Producer creates the process's one producer, its metrics and the "kafka" readiness
// check (a broker probe, see kafka.Producer.Ping); it is flushed and closed after every
// worker has stopped.
func (h *Host) Producer(ctx context.Context, cfg kafka.ProducerConfig) (*kafka.Producer, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = h.cfg.Name
	}
	if cfg.Observer == nil {
		cfg.Observer = h.metrics
	}
	p, err := kafka.NewProducer(ctx, cfg, h.log)
	if err != nil {
		return nil, err
	}
	h.OnClose(func(ctx context.Context) {
		if n, err := p.Close(ctx); err != nil {
			h.log.Error("producer closed with undelivered messages", "undelivered", n, "err", err)
		}
	})
	h.health.AddCheck("kafka", p.Ping)
	h.metrics.ProducerPending(p.Pending)
	return p, nil
}

// Relay runs the outbox relay of db through p; it drains after the consumers stop.
func (h *Host) Relay(db *sqlx.DB, p *kafka.Producer, cfg outbox.RelayConfig) {
	if cfg.Observer == nil {
		cfg.Observer = h.metrics
	}
	r := outbox.NewRelay(db, p, cfg, h.log)
	h.drainers = append(h.drainers, r.Run)
}

// Consume runs a consumer group member with handler; it stops (finishing the in-flight
// message and committing) right after the servers. Each message is handled in a consumer
// span joining the producer's trace, and the runner and idempotency outcomes feed the
// metrics.
func (h *Host) Consume(cfg kafka.ConsumerConfig, p *kafka.Producer, handler kafka.Handler) error {
	if cfg.Observer == nil {
		cfg.Observer = h.metrics
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Batch == nil && h.db != nil {
		cfg.Batch = idempotency.Batch(h.db) // handlers built with idempotency.Handler on the service's database
	}
	group := cfg.GroupID
	counted := func(ctx context.Context, m kafka.Message) error {
		return handler(idempotency.WithOutcomes(ctx, func(topic string, o idempotency.Outcome) {
			h.metrics.ConsumerOutcome(group, topic, string(o))
		}), m)
	}
	r, err := kafka.NewRunner(cfg, p, tracing.Consume(group, counted), h.log)
	if err != nil {
		return err
	}
	h.workers = append(h.workers, r.Run)
	return nil
}

// Go runs fn as a worker until shutdown (stopped with the consumers).
func (h *Host) Go(fn func(ctx context.Context) error) { h.workers = append(h.workers, fn) }

// Close releases what was opened, for a caller that gives up before Run.
func (h *Host) Close(ctx context.Context) {
	_ = h.grpcLn.Close()
	_ = h.httpLn.Close()
	for i := len(h.closers) - 1; i >= 0; i-- {
		h.closers[i](ctx)
	}
	h.closers = nil
}

// Run serves until ctx ends or a worker fails, then shuts down in order. It returns nil
// after a clean shutdown.
func (h *Host) Run(ctx context.Context) error {
	httpSrv := server.HTTPServer(h.metrics.HTTPMiddleware(h.mux), h.cfg.Timeouts)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := h.grpc.Serve(h.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("grpc: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := httpSrv.Serve(h.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})

	workersCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	drainCtx, stopDrainers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDrainers()
	failed := make(chan error, len(h.workers)+len(h.drainers))
	workers := startAll(workersCtx, h.workers, failed)
	drainers := startAll(drainCtx, h.drainers, failed)
	go h.health.Run(drainCtx, 2*time.Second)
	h.log.Info(h.cfg.Name+" started", "http", h.HTTPAddr(), "grpc", h.GRPCAddr())

	var runErr error
	select {
	case <-gctx.Done():
	case err := <-failed:
		runErr = fmt.Errorf("worker stopped: %w", err)
	}
	h.log.Info("shutting down")
	h.health.ShuttingDown()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.ShutdownTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() { h.grpc.GracefulStop(); close(stopped) }()
	if err := httpSrv.Shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("http shutdown: %w", err))
	}
	select {
	case <-stopped:
	case <-sctx.Done():
		h.grpc.Stop()
		<-stopped
	}
	runErr = errors.Join(runErr, g.Wait())

	stopWorkers()
	runErr = errors.Join(runErr, workers())
	stopDrainers()
	runErr = errors.Join(runErr, drainers())
	h.Close(sctx)
	h.log.Info(h.cfg.Name + " stopped")
	return runErr
}

// startAll runs fns; the first error also goes to failed. The returned function waits
// for all of them and joins their errors.
func startAll(ctx context.Context, fns []func(context.Context) error, failed chan<- error) (wait func() error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, fn := range fns {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				select {
				case failed <- err:
				default:
				}
			}
		})
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}
