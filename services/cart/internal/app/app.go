// Package app wires the cart service: configuration, resources, servers, the outbox relay
// and the catalog consumer, and the order in which they stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/obs"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/server"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	"github.com/eventshop/eventshop/proto/openapi"
	"github.com/eventshop/eventshop/services/cart/internal/api"
	"github.com/eventshop/eventshop/services/cart/internal/events"
	"github.com/eventshop/eventshop/services/cart/internal/service"
	"github.com/eventshop/eventshop/services/cart/internal/store"
	"github.com/eventshop/eventshop/services/cart/migrations"
)

// Config is the cart service's configuration, read from the environment. The defaults
// work on the local stack (`make up`).
type Config struct {
	HTTPAddr        string        `env:"HTTP_ADDR" envDefault:"127.0.0.1:8081"`
	GRPCAddr        string        `env:"GRPC_ADDR" envDefault:"127.0.0.1:9081"`
	DatabaseURL     string        `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:15432/cart?sslmode=disable"`
	DatabaseConns   int           `env:"DATABASE_MAX_CONNS" envDefault:"20"`
	KafkaBrokers    string        `env:"KAFKA_BROKERS" envDefault:"127.0.0.1:19092"`
	CartTopic       string        `env:"CART_EVENTS_TOPIC" envDefault:"cart.events.v1"`
	ProductsTopic   string        `env:"PRODUCTS_TOPIC" envDefault:"inventory.products.v1"`
	CatalogGroup    string        `env:"CATALOG_GROUP" envDefault:"cart-catalog"`
	CreateTopics    bool          `env:"KAFKA_CREATE_TOPICS" envDefault:"true"`
	AuthSecret      string        `env:"AUTH_JWT_SECRET"`
	DevMode         bool          `env:"DEV_MODE" envDefault:"false"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
}

// LoadConfig reads Config from the environment.
func LoadConfig() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// AuthConfig is the JWT configuration; in development mode without a secret the
// well-known development key is used.
func (c Config) AuthConfig() auth.Config {
	secret := c.AuthSecret
	if secret == "" && c.DevMode {
		secret = auth.DevSigningKey
	}
	return auth.Config{Secret: secret, DevMode: c.DevMode}
}

// App is a running cart service.
type App struct {
	cfg      Config
	log      *slog.Logger
	db       *sqlx.DB
	producer *kafka.Producer
	health   *obs.Health
	grpcSrv  *grpc.Server
	httpSrv  *http.Server
	gwConn   *grpc.ClientConn
	grpcLn   net.Listener
	httpLn   net.Listener
	relay    *outbox.Relay
	catalog  *kafka.Runner
}

// New opens every resource (database and migrations, producer, topics, listeners). On
// error, what was opened is closed again.
func New(ctx context.Context, cfg Config, log *slog.Logger) (a *App, err error) {
	verifier, err := auth.NewVerifier(cfg.AuthConfig())
	if err != nil {
		return nil, err
	}
	a = &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.closeResources(context.WithoutCancel(ctx))
		}
	}()

	a.db, err = postgres.Open(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxOpenConns: cfg.DatabaseConns})
	if err != nil {
		return nil, err
	}
	if err = postgres.Migrate(ctx, a.db, outbox.Migrations, migrations.Set); err != nil {
		return nil, err
	}
	a.producer, err = kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: cfg.KafkaBrokers, ClientID: "cart"}, log)
	if err != nil {
		return nil, err
	}
	if cfg.CreateTopics {
		if err = kafka.EnsureTopics(ctx, cfg.KafkaBrokers, envelope.DefaultTopics()...); err != nil {
			return nil, err
		}
	}

	st := store.New(a.db)
	a.relay = outbox.NewRelay(a.db, a.producer, outbox.RelayConfig{ListenURL: cfg.DatabaseURL}, log)
	a.catalog, err = kafka.NewRunner(kafka.ConsumerConfig{Brokers: cfg.KafkaBrokers, GroupID: cfg.CatalogGroup, Topics: []string{cfg.ProductsTopic}},
		a.producer, events.CatalogHandler(st, log), log)
	if err != nil {
		return nil, err
	}

	metrics := obs.NewMetrics("cart")
	a.health = obs.NewHealth(log)
	a.health.AddCheck("postgres", a.db.PingContext)
	a.health.AddCheck("kafka", func(context.Context) error { return a.producer.Healthy() })

	public := func(method string) bool {
		return strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.")
	}
	a.grpcSrv = grpc.NewServer(server.GRPCOptions(log,
		[]grpc.UnaryServerInterceptor{metrics.UnaryServerInterceptor(), auth.UnaryServerInterceptor(verifier, public)},
		[]grpc.StreamServerInterceptor{auth.StreamServerInterceptor(verifier, public)})...)
	cartpb.RegisterCartServiceServer(a.grpcSrv, api.New(service.New(st, cfg.CartTopic)))
	grpc_health_v1.RegisterHealthServer(a.grpcSrv, a.health.GRPCServer())
	reflection.Register(a.grpcSrv)

	if a.grpcLn, err = server.Listen(ctx, "cart gRPC", cfg.GRPCAddr); err != nil {
		return nil, err
	}
	if a.httpLn, err = server.Listen(ctx, "cart HTTP", cfg.HTTPAddr); err != nil {
		return nil, err
	}
	gw, conn, err := server.Gateway(ctx, a.grpcLn.Addr().String(), cartpb.RegisterCartServiceHandler)
	if err != nil {
		return nil, err
	}
	a.gwConn = conn
	mux := obs.Mux(a.health, metrics)
	mux.Handle("/v1/", server.LimitBody(gw))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.CartSpec)
	})
	a.httpSrv = server.HTTPServer(metrics.HTTPMiddleware(mux))
	return a, nil
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.grpcLn.Addr().String() }

// HTTPAddr is the address the HTTP server listens on.
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// Run serves until ctx ends, then shuts down in order: readiness off, stop accepting and
// finish in-flight requests, stop the catalog consumer, drain the outbox relay, flush and
// close the producer, close the database.
func (a *App) Run(ctx context.Context) error {
	workers, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := a.grpcSrv.Serve(a.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("grpc: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.httpSrv.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	relayDone := make(chan error, 1)
	go func() { relayDone <- a.relay.Run(workers) }()
	catalogDone := make(chan error, 1)
	go func() { catalogDone <- a.catalog.Run(workers) }()
	go a.health.Run(workers, 2*time.Second)
	a.log.Info("cart service started", "http", a.HTTPAddr(), "grpc", a.GRPCAddr())

	// Wait for a stop signal or a server failure.
	var runErr error
	select {
	case <-gctx.Done():
	case err := <-catalogDone:
		runErr = fmt.Errorf("catalog consumer stopped: %w", err)
		catalogDone <- nil
	}
	a.log.Info("shutting down")
	a.health.ShuttingDown()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() { a.grpcSrv.GracefulStop(); close(stopped) }()
	if err := a.httpSrv.Shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("http shutdown: %w", err))
	}
	select {
	case <-stopped:
	case <-sctx.Done():
		a.grpcSrv.Stop()
		<-stopped
	}
	runErr = errors.Join(runErr, g.Wait())

	stopWorkers()
	if err := <-catalogDone; err != nil {
		runErr = errors.Join(runErr, err)
	}
	if err := <-relayDone; err != nil {
		runErr = errors.Join(runErr, err)
	}
	a.closeResources(sctx)
	a.log.Info("cart service stopped")
	return runErr
}

func (a *App) closeResources(ctx context.Context) {
	if a.gwConn != nil {
		_ = a.gwConn.Close()
	}
	for _, ln := range []net.Listener{a.grpcLn, a.httpLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	if a.producer != nil {
		if n, err := a.producer.Close(ctx); err != nil {
			a.log.Error("producer closed with undelivered messages", "undelivered", n, "err", err)
		}
	}
	if a.db != nil {
		_ = a.db.Close()
	}
}
