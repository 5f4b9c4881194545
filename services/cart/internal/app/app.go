// Package app wires the cart service: configuration, resources, servers, the outbox relay
// and the catalog consumer, and the order in which they stop.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/caarlos0/env/v11"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
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
	HTTPAddr       string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8081"`
	GRPCAddr       string `env:"GRPC_ADDR" envDefault:"127.0.0.1:9081"`
	DatabaseURL    string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:15432/cart?sslmode=disable"`
	CartTopic      string `env:"CART_EVENTS_TOPIC" envDefault:"cart.events.v1"`
	ProductsTopic  string `env:"PRODUCTS_TOPIC" envDefault:"inventory.products.v1"`
	CatalogGroup   string `env:"CATALOG_GROUP" envDefault:"cart-catalog"`
	ConsumerGroup  string `env:"CONSUMER_GROUP" envDefault:"cart"`
	InventoryTopic string `env:"INVENTORY_EVENTS_TOPIC" envDefault:"inventory.events.v1"`
	DiscountTopic  string `env:"DISCOUNT_EVENTS_TOPIC" envDefault:"discount.events.v1"`

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

// App is a cart service ready to run.
type App struct{ host *host.Host }

// New opens every resource (database and migrations, producer, topics, listeners) and
// wires the API, the outbox relay and the catalog consumer. On error, what was opened is
// closed again.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *App, err error) {
	h, err := host.New(ctx, cfg.Host("cart", cfg.HTTPAddr, cfg.GRPCAddr), log)
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
		if err := kafka.EnsureTopics(ctx, cfg.KafkaBrokers, envelope.DefaultTopics()...); err != nil {
			return nil, err
		}
	}

	st := store.New(db)
	h.Relay(db, producer, outbox.RelayConfig{ListenURL: cfg.DatabaseURL})
	if err := h.Consume(cfg.Consumer.Apply(kafka.ConsumerConfig{Brokers: cfg.KafkaBrokers, GroupID: cfg.CatalogGroup, Topics: []string{cfg.ProductsTopic}}),
		producer, events.CatalogHandler(st, log)); err != nil {
		return nil, err
	}
	feedback := events.FeedbackTopics{Inventory: cfg.InventoryTopic, Discount: cfg.DiscountTopic}
	if err := h.Consume(cfg.Consumer.Apply(kafka.ConsumerConfig{Brokers: cfg.KafkaBrokers, GroupID: cfg.ConsumerGroup, Topics: []string{cfg.InventoryTopic, cfg.DiscountTopic}}),
		producer, events.FeedbackHandler(db, st, cfg.ConsumerGroup, feedback, log)); err != nil {
		return nil, err
	}

	cartpb.RegisterCartServiceServer(h.GRPC(), api.New(service.New(st, cfg.CartTopic)))
	if err := h.Gateway(ctx, cartpb.RegisterCartServiceHandler); err != nil {
		return nil, err
	}
	h.Handle("GET /openapi.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.CartSpec)
	}))
	return &App{host: h}, nil
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.host.GRPCAddr() }

// HTTPAddr is the address the HTTP server listens on.
func (a *App) HTTPAddr() string { return a.host.HTTPAddr() }

// Run serves until ctx ends, then shuts down in the house order (see package host).
func (a *App) Run(ctx context.Context) error { return a.host.Run(ctx) }
