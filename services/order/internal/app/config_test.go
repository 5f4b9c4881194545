package app_test

import (
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/services/order/internal/app"
)

func TestConfigDefaultsWorkOnTheLocalStack(t *testing.T) {
	for _, k := range []string{"HTTP_ADDR", "GRPC_ADDR", "DATABASE_URL", "DATABASE_MAX_CONNS", "KAFKA_BROKERS", "CART_EVENTS_TOPIC",
		"INVENTORY_EVENTS_TOPIC", "DISCOUNT_EVENTS_TOPIC", "ORDER_EVENTS_TOPIC", "CONSUMER_GROUP", "KAFKA_CREATE_TOPICS",
		"AUTH_JWT_SECRET", "DEV_MODE", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"} {
		t.Setenv(k, "") // restored after the test
		_ = os.Unsetenv(k)
	}
	cfg, err := app.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := app.Config{
		HTTPAddr:       "127.0.0.1:8083",
		GRPCAddr:       "127.0.0.1:9083",
		DatabaseURL:    "postgres://postgres@127.0.0.1:15432/orders?sslmode=disable",
		CartTopic:      "cart.events.v1",
		InventoryTopic: "inventory.events.v1",
		DiscountTopic:  "discount.events.v1",
		OrderTopic:     "order.events.v1",
		ConsumerGroup:  "order",
		ServiceConfig:  host.ServiceConfig{DatabaseConns: 20, KafkaBrokers: "127.0.0.1:19092", CreateTopics: true, LogLevel: "info", ShutdownTimeout: 20 * time.Second, RequestTimeout: 10 * time.Second, HTTPIdleTimeout: 2 * time.Minute},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Fatalf("defaults (-want +got):\n%s", diff)
	}
	if got := cfg.AuthConfig(); got.Secret != "" {
		t.Fatalf("without DEV_MODE no signing key may be assumed, got %q", got.Secret)
	}
	t.Setenv("DEV_MODE", "true")
	if cfg, err = app.LoadConfig(); err != nil || cfg.AuthConfig().Secret != auth.DevSigningKey {
		t.Fatalf("DEV_MODE without a secret: %v, secret %q; want the development key", err, cfg.AuthConfig().Secret)
	}
	t.Setenv("AUTH_JWT_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret")
	if cfg, err = app.LoadConfig(); err != nil || cfg.AuthConfig().Secret != "s3cret-s3cret-s3cret-s3cret-s3cret" {
		t.Fatalf("AUTH_JWT_SECRET: %v, secret %q", err, cfg.AuthConfig().Secret)
	}
}
