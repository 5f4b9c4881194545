package app_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/pkg/host"

	"github.com/eventshop/eventshop/services/inventory/internal/app"
)

func unsetenv(t *testing.T, names ...string) {
	for _, n := range names {
		t.Setenv(n, "") // restores the old value when the test ends
		_ = os.Unsetenv(n)
	}
}

var configEnv = []string{"HTTP_ADDR", "GRPC_ADDR", "DATABASE_URL", "DATABASE_MAX_CONNS", "KAFKA_BROKERS", "CART_EVENTS_TOPIC",
	"INVENTORY_EVENTS_TOPIC", "PRODUCTS_TOPIC", "CONSUMER_GROUP", "KAFKA_CREATE_TOPICS", "AUTH_JWT_SECRET", "DEV_MODE",
	"ADMIN_USERS", "RESERVATION_HOLD", "RESERVATION_SWEEP_INTERVAL", "LOG_LEVEL", "SHUTDOWN_TIMEOUT", "KAFKA_SESSION_TIMEOUT", "KAFKA_MAX_POLL_INTERVAL"}

func TestConfigDefaultsWorkOnTheLocalStack(t *testing.T) {
	unsetenv(t, configEnv...)
	cfg, err := app.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := app.Config{
		HTTPAddr:        "127.0.0.1:8082",
		GRPCAddr:        "127.0.0.1:9082",
		DatabaseURL:     "postgres://postgres@127.0.0.1:15432/inventory?sslmode=disable",
		CartTopic:       "cart.events.v1",
		InventoryTopic:  "inventory.events.v1",
		ProductsTopic:   "inventory.products.v1",
		ConsumerGroup:   "inventory",
		AdminUsers:      []string{"admin"},
		ReservationHold: 30 * time.Minute,
		SweepInterval:   30 * time.Second,
		ServiceConfig:   host.ServiceConfig{DatabaseConns: 20, KafkaBrokers: "127.0.0.1:19092", CreateTopics: true, LogLevel: "info", ShutdownTimeout: 20 * time.Second, RequestTimeout: 10 * time.Second, HTTPIdleTimeout: 2 * time.Minute},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Fatalf("defaults (-want +got):\n%s", diff)
	}
}

func TestConfigRejectsNonPositiveDurations(t *testing.T) {
	unsetenv(t, configEnv...)
	t.Setenv("RESERVATION_HOLD", "0s")
	t.Setenv("RESERVATION_SWEEP_INTERVAL", "-1s")
	_, err := app.LoadConfig()
	if err == nil || !strings.Contains(err.Error(), "RESERVATION_HOLD") || !strings.Contains(err.Error(), "RESERVATION_SWEEP_INTERVAL") {
		t.Fatalf("LoadConfig = %v, want errors naming RESERVATION_HOLD and RESERVATION_SWEEP_INTERVAL", err)
	}
}

func TestConfigConsumerTuning(t *testing.T) {
	unsetenv(t, configEnv...)
	t.Setenv("KAFKA_SESSION_TIMEOUT", "6s")
	t.Setenv("KAFKA_MAX_POLL_INTERVAL", "8s")
	cfg, err := app.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if want := (host.ConsumerTuning{SessionTimeout: 6 * time.Second, MaxPollInterval: 8 * time.Second}); cfg.Consumer != want {
		t.Fatalf("Consumer = %+v, want %+v", cfg.Consumer, want)
	}
	t.Setenv("KAFKA_SESSION_TIMEOUT", "10s")
	if _, err := app.LoadConfig(); err == nil || !strings.Contains(err.Error(), "KAFKA_MAX_POLL_INTERVAL") {
		t.Fatalf("LoadConfig with a poll interval below the session timeout = %v, want an error naming KAFKA_MAX_POLL_INTERVAL", err)
	}
}
