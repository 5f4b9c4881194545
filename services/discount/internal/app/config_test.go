package app_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/services/discount/internal/app"
)

func TestLoadConfigDefaultsAndOverrides(t *testing.T) {
	for _, k := range []string{"HTTP_ADDR", "GRPC_ADDR", "DATABASE_URL", "DATABASE_MAX_CONNS", "KAFKA_BROKERS", "CART_EVENTS_TOPIC",
		"DISCOUNT_EVENTS_TOPIC", "CONSUMER_GROUP", "KAFKA_CREATE_TOPICS", "AUTH_JWT_SECRET", "DEV_MODE", "ADMIN_USERS", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"} {
		t.Setenv(k, "")
	}
	cfg, err := app.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := app.Config{
		HTTPAddr:      "127.0.0.1:8084",
		GRPCAddr:      "127.0.0.1:9084",
		DatabaseURL:   "postgres://postgres@127.0.0.1:15432/discount?sslmode=disable",
		CartTopic:     "cart.events.v1",
		DiscountTopic: "discount.events.v1",
		ConsumerGroup: "discount",
		AdminUsers:    []string{"admin"},
		ServiceConfig: host.ServiceConfig{DatabaseConns: 20, KafkaBrokers: "127.0.0.1:19092", CreateTopics: true, LogLevel: "info", ShutdownTimeout: 20 * time.Second, RequestTimeout: 10 * time.Second, HTTPIdleTimeout: 2 * time.Minute},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Fatalf("defaults (-want +got):\n%s", diff)
	}

	t.Setenv("ADMIN_USERS", "root,ops")
	t.Setenv("DEV_MODE", "true")
	t.Setenv("CONSUMER_GROUP", "discount-canary")
	cfg, err = app.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"root", "ops"}, cfg.AdminUsers); diff != "" || cfg.ConsumerGroup != "discount-canary" {
		t.Fatalf("overrides: admins (-want +got):\n%s group %q", diff, cfg.ConsumerGroup)
	}
	if got := cfg.AuthConfig(); got.Secret != auth.DevSigningKey || !got.DevMode {
		t.Fatalf("dev mode without a secret should use the dev key, got %+v", got)
	}
	t.Setenv("AUTH_JWT_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret")
	cfg, _ = app.LoadConfig()
	if got := cfg.AuthConfig(); got.Secret != "s3cret-s3cret-s3cret-s3cret-s3cret" {
		t.Fatal("AUTH_JWT_SECRET not used")
	}
}
