// Package app wires the order service: configuration, resources, the OrderService API,
// the order consumer group and the outbox relay, and the order in which they stop.
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
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
	"github.com/eventshop/eventshop/services/order/internal/api"
	"github.com/eventshop/eventshop/services/order/internal/events"
	"github.com/eventshop/eventshop/services/order/internal/store"
	"github.com/eventshop/eventshop/services/order/migrations"
)

// Config is the order service's configuration, read from the environment. The defaults
// work on the local stack (`make up`).
type Config struct {
	HTTPAddr       string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8083"`
	GRPCAddr       string `env:"GRPC_ADDR" envDefault:"127.0.0.1:9083"`
	DatabaseURL    string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:15432/orders?sslmode=disable"`
	CartTopic      string `env:"CART_EVENTS_TOPIC" envDefault:"cart.events.v1"`
	InventoryTopic string `env:"INVENTORY_EVENTS_TOPIC" envDefault:"inventory.events.v1"`
	DiscountTopic  string `env:"DISCOUNT_EVENTS_TOPIC" envDefault:"discount.events.v1"`
	OrderTopic     string `env:"ORDER_EVENTS_TOPIC" envDefault:"order.events.v1"`
	ConsumerGroup  string `env:"CONSUMER_GROUP" envDefault:"order"`

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

// topics are the topics the service uses, as created at start-up: the partition counts
// of the event catalog (DESIGN.md). The configured names are used, so a test or a
// deployment with other names gets those created.
func (c Config) topics() []kafka.TopicSpec {
	return []kafka.TopicSpec{
		{Name: c.CartTopic, Partitions: 6},
		{Name: c.InventoryTopic, Partitions: 6},
		{Name: c.DiscountTopic, Partitions: 6},
		{Name: c.OrderTopic, Partitions: 6},
	}
}

// App is an order service ready to run.
type App struct{ host *host.Host }

// New opens every resource (database and migrations, producer, topics, listeners) and
// wires the API, the order consumer group and the outbox relay. On error, what was
// opened is closed again.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	h, err := host.New(ctx, cfg.Host("order", cfg.HTTPAddr, cfg.GRPCAddr), log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			h.Close(context.WithoutCancel(ctx))
		}
	}()
	db, err := h.Postgres(ctx, postgres.Config{URL: cfg.DatabaseURL, MaxOpenConns: cfg.DatabaseConns}, outbox.Migrations, idempotency.Migrations, migrations.Set)
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
	h.Relay(db, producer, outbox.RelayConfig{ListenURL: cfg.DatabaseURL})
	consumer := events.NewConsumer(st, events.Topics{Cart: cfg.CartTopic, Inventory: cfg.InventoryTopic, Discount: cfg.DiscountTopic, Order: cfg.OrderTopic}, log)
	if err := h.Consume(cfg.Consumer.Apply(kafka.ConsumerConfig{Brokers: cfg.KafkaBrokers, GroupID: cfg.ConsumerGroup, Topics: []string{cfg.CartTopic, cfg.InventoryTopic, cfg.DiscountTopic}}),
		producer, consumer.Handler(db, cfg.ConsumerGroup)); err != nil {
		return nil, err
	}

	orderpb.RegisterOrderServiceServer(h.GRPC(), api.New(st))
	if err := h.Gateway(ctx, orderpb.RegisterOrderServiceHandler); err != nil {
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
