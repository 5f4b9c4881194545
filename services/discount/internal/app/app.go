// Package app wires the discount service: configuration, resources, the API, the cart
// events consumer and the outbox relay, and the order in which they stop.
package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/caarlos0/env/v11"

	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	"github.com/eventshop/eventshop/services/discount/internal/api"
	"github.com/eventshop/eventshop/services/discount/internal/events"
	"github.com/eventshop/eventshop/services/discount/internal/store"
	"github.com/eventshop/eventshop/services/discount/migrations"
)

// Config is the discount service's configuration, read from the environment. The
// defaults work on the local stack (`make up`).
type Config struct {
	HTTPAddr      string   `env:"HTTP_ADDR" envDefault:"127.0.0.1:8084"`
	GRPCAddr      string   `env:"GRPC_ADDR" envDefault:"127.0.0.1:9084"`
	DatabaseURL   string   `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:15432/discount?sslmode=disable"`
	CartTopic     string   `env:"CART_EVENTS_TOPIC" envDefault:"cart.events.v1"`
	DiscountTopic string   `env:"DISCOUNT_EVENTS_TOPIC" envDefault:"discount.events.v1"`
	ConsumerGroup string   `env:"CONSUMER_GROUP" envDefault:"discount"`
	AdminUsers    []string `env:"ADMIN_USERS" envDefault:"admin" envSeparator:","`

	// The database pool size, Kafka brokers, auth, timeouts, logging and consumer tuning.
	host.ServiceConfig
}

// LoadConfig reads Config from the environment.
func LoadConfig() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, cfg.Validate()
}

// App is a discount service ready to run.
type App struct{ host *host.Host }

// New opens every resource (database and migrations, producer, topics, listeners) and
// wires the API, the outbox relay and the cart events consumer. On error, what was
// opened is closed again.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	h, err := host.New(ctx, cfg.Host("discount", cfg.HTTPAddr, cfg.GRPCAddr), log)
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
		// The configured names, not envelope.DefaultTopics: configuration may rename them.
		if err := kafka.EnsureTopics(ctx, cfg.KafkaBrokers,
			kafka.TopicSpec{Name: cfg.CartTopic, Partitions: 6}, kafka.TopicSpec{Name: cfg.DiscountTopic, Partitions: 6}); err != nil {
			return nil, err
		}
	}

	st := store.New(db)
	h.Relay(db, producer, outbox.RelayConfig{ListenURL: cfg.DatabaseURL})
	handler := events.Handler(st, events.Config{CartTopic: cfg.CartTopic, DiscountTopic: cfg.DiscountTopic, Group: cfg.ConsumerGroup}, log)
	if err := h.Consume(cfg.Consumer.Apply(kafka.ConsumerConfig{Brokers: cfg.KafkaBrokers, GroupID: cfg.ConsumerGroup, Topics: []string{cfg.CartTopic}}), producer, handler); err != nil {
		return nil, err
	}

	discountpb.RegisterDiscountServiceServer(h.GRPC(), api.New(st, cfg.AdminUsers))
	if err := h.Gateway(ctx, discountpb.RegisterDiscountServiceHandler); err != nil {
		return nil, err
	}
	return &App{host: h}, nil
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.host.GRPCAddr() }

// HTTPAddr is the address the HTTP server listens on.
func (a *App) HTTPAddr() string { return a.host.HTTPAddr() }

// Run serves until ctx ends, then shuts down in the house order (see package host).
func (a *App) Run(ctx context.Context) error { return a.host.Run(ctx) }
