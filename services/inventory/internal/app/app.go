// Package app wires the inventory service: configuration, resources, servers, the cart
// event consumer, the reservation sweeper and the outbox relay, and the order in which
// they stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/inventory/internal/api"
	"github.com/eventshop/eventshop/services/inventory/internal/events"
	"github.com/eventshop/eventshop/services/inventory/internal/service"
	"github.com/eventshop/eventshop/services/inventory/internal/store"
	"github.com/eventshop/eventshop/services/inventory/migrations"
)

// Config is the inventory service's configuration, read from the environment. The
// defaults work on the local stack (`make up`).
type Config struct {
	HTTPAddr        string        `env:"HTTP_ADDR" envDefault:"127.0.0.1:8082"`
	GRPCAddr        string        `env:"GRPC_ADDR" envDefault:"127.0.0.1:9082"`
	DatabaseURL     string        `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:15432/inventory?sslmode=disable"`
	CartTopic       string        `env:"CART_EVENTS_TOPIC" envDefault:"cart.events.v1"`
	InventoryTopic  string        `env:"INVENTORY_EVENTS_TOPIC" envDefault:"inventory.events.v1"`
	ProductsTopic   string        `env:"PRODUCTS_TOPIC" envDefault:"inventory.products.v1"`
	ConsumerGroup   string        `env:"CONSUMER_GROUP" envDefault:"inventory"`
	AdminUsers      []string      `env:"ADMIN_USERS" envDefault:"admin" envSeparator:","`
	ReservationHold time.Duration `env:"RESERVATION_HOLD" envDefault:"30m"`
	SweepInterval   time.Duration `env:"RESERVATION_SWEEP_INTERVAL" envDefault:"30s"`

	// The database pool size, Kafka brokers, auth, timeouts, logging and consumer tuning.
	host.ServiceConfig
}

// LoadConfig reads Config from the environment and checks it.
func LoadConfig() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, cfg.Validate()
}

// Validate checks the values the environment cannot type-check.
func (c Config) Validate() error {
	var errs []error
	if c.ReservationHold <= 0 {
		errs = append(errs, fmt.Errorf("config: RESERVATION_HOLD must be positive, got %s", c.ReservationHold))
	}
	if c.SweepInterval <= 0 {
		errs = append(errs, fmt.Errorf("config: RESERVATION_SWEEP_INTERVAL must be positive, got %s", c.SweepInterval))
	}
	if c.CartTopic == "" || c.InventoryTopic == "" || c.ProductsTopic == "" || c.ConsumerGroup == "" {
		errs = append(errs, errors.New("config: topic names and CONSUMER_GROUP must not be empty"))
	}
	errs = append(errs, c.ServiceConfig.Validate())
	return errors.Join(errs...)
}

// topics are the topics the service reads or writes, with their partitions.
func (c Config) topics() []kafka.TopicSpec {
	return []kafka.TopicSpec{
		{Name: c.CartTopic, Partitions: 6},
		{Name: c.InventoryTopic, Partitions: 6},
		{Name: c.ProductsTopic, Partitions: 3, Compacted: true},
	}
}

// App is an inventory service ready to run.
type App struct{ host *host.Host }

// New opens every resource (database and migrations, producer, topics, listeners),
// enqueues the snapshots of products never announced, and wires the API, the cart
// consumer, the reservation sweeper and the outbox relay. On error, what was opened is
// closed again.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h, err := host.New(ctx, cfg.Host("inventory", cfg.HTTPAddr, cfg.GRPCAddr), log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			h.Close(context.WithoutCancel(ctx))
		}
	}()
	db, err := h.Postgres(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxOpenConns: cfg.DatabaseConns},
		outbox.Migrations, idempotency.Migrations, migrations.Set)
	if err != nil {
		return nil, err
	}
	producer, err := h.Producer(ctx, kafka.ProducerConfig{Brokers: cfg.KafkaBrokers})
	if err != nil {
		return nil, err
	}
	if cfg.CreateTopics {
		if err := kafka.EnsureTopics(ctx, cfg.KafkaBrokers, cfg.topics()...); err != nil {
			return nil, err
		}
	}

	st := store.New(db)
	svc := service.New(st, service.Config{InventoryTopic: cfg.InventoryTopic, ProductsTopic: cfg.ProductsTopic, Hold: cfg.ReservationHold}, log)
	n, err := svc.AnnounceUnannounced(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		log.Info("announcing product snapshots", "products", n)
	}

	h.Relay(db, producer, outbox.RelayConfig{ListenURL: cfg.DatabaseURL})
	if err := h.Consume(cfg.Consumer.Apply(kafka.ConsumerConfig{Brokers: cfg.KafkaBrokers, GroupID: cfg.ConsumerGroup, Topics: []string{cfg.CartTopic}}),
		producer, events.CartHandler(db, cfg.ConsumerGroup, cfg.CartTopic, svc, log)); err != nil {
		return nil, err
	}
	h.Go(func(ctx context.Context) error { return sweep(ctx, svc, cfg.SweepInterval, log) })

	inventorypb.RegisterInventoryServiceServer(h.GRPC(), api.New(svc, cfg.AdminUsers))
	if err := h.Gateway(ctx, inventorypb.RegisterInventoryServiceHandler); err != nil {
		return nil, err
	}
	return &App{host: h}, nil
}

// sweep releases expired reservations every interval until ctx ends. A failed sweep is
// logged and tried again at the next tick: the database may come back.
func sweep(ctx context.Context, svc *service.Service, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := svc.SweepExpired(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("reservation sweep failed; retrying at the next tick", "err", err, "carts_released", n)
		case n > 0:
			log.Info("expired reservations released", "carts", n)
		}
	}
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.host.GRPCAddr() }

// HTTPAddr is the address the HTTP server listens on.
func (a *App) HTTPAddr() string { return a.host.HTTPAddr() }

// Run serves until ctx ends, then shuts down in the house order (see package host).
func (a *App) Run(ctx context.Context) error { return a.host.Run(ctx) }
