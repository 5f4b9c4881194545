// Package testkit gives integration tests their own PostgreSQL database and Kafka topics
// on the infrastructure started by `make test` (scripts/infra.sh), or an in-process
// Kafka-protocol broker (kfake) for contract tests that also run against it.
//
// Tests find the infrastructure through EVENTSHOP_POSTGRES_URL and EVENTSHOP_KAFKA_BROKERS.
// When a variable is missing the test fails at once with a message naming the fix; under
// `go test -short` it is skipped instead.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/postgres"
)

// Environment variables read by the helpers.
const (
	EnvPostgresURL  = "EVENTSHOP_POSTGRES_URL"
	EnvKafkaBrokers = "EVENTSHOP_KAFKA_BROKERS"
)

const howToStart = "start the local infrastructure with `make infra-up` and `eval \"$(scripts/infra.sh env)\"`, or run `make test`"

func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if testing.Short() {
			t.Skipf("%s not set; skipping integration test under -short", name)
		}
		t.Fatalf("%s is not set: this integration test needs the real service; %s", name, howToStart)
	}
	return v
}

// RandomSuffix returns n random hex bytes, for unique names.
func RandomSuffix(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// Database creates a fresh database for the test on the server of EVENTSHOP_POSTGRES_URL,
// opens a pool on it and drops it when the test ends. It returns the pool and its URL.
func Database(t testing.TB) (*sqlx.DB, string) {
	t.Helper()
	return DatabaseOn(t, need(t, EnvPostgresURL))
}

// DatabaseOn is Database on the server of the superuser URL admin (e.g. an OwnPostgres).
func DatabaseOn(t testing.TB, admin string) (*sqlx.DB, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = "t_" + name + "_" + RandomSuffix(4)

	adb, err := postgres.Open(ctx, postgres.Config{URL: admin, MaxOpenConns: 2})
	if err != nil {
		t.Fatalf("testkit: %v (%s)", err, howToStart)
	}
	defer func() { _ = adb.Close() }()
	if _, err := adb.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("testkit: create database %s: %v", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("testkit: %s: %v", EnvPostgresURL, err)
	}
	u.Path = "/" + name
	dbURL := u.String()

	db, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxOpenConns: 20})
	if err != nil {
		t.Fatalf("testkit: open %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adb, err := postgres.Open(ctx, postgres.Config{URL: admin, MaxOpenConns: 1})
		if err != nil {
			t.Logf("testkit: drop %s: %v", name, err)
			return
		}
		defer func() { _ = adb.Close() }()
		if _, err := adb.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("testkit: drop %s: %v", name, err)
		}
	})
	return db, dbURL
}

// KafkaBrokers returns the real broker's bootstrap address (EVENTSHOP_KAFKA_BROKERS).
func KafkaBrokers(t testing.TB) string {
	t.Helper()
	return need(t, EnvKafkaBrokers)
}

// Kfake starts an in-process Kafka-protocol broker for the test and returns its address.
func Kfake(t testing.TB) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatalf("testkit: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

// Topic creates a topic with a unique name for the test and deletes it when the test ends.
func Topic(t testing.TB, brokers string, partitions int) string {
	t.Helper()
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(name) > 60 {
		name = name[:60]
	}
	name = "test." + name + "." + RandomSuffix(4)
	CreateTopics(t, brokers, kafka.TopicSpec{Name: name, Partitions: partitions})
	return name
}

// CreateTopics creates topics and deletes them when the test ends.
func CreateTopics(t testing.TB, brokers string, specs ...kafka.TopicSpec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, specs...); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := kafka.DeleteTopics(ctx, brokers, names...); err != nil {
			t.Logf("testkit: %v", err)
		}
	})
}

// Eventually polls cond every 50ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Context returns a context cancelled when the test ends or after timeout.
func Context(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// Name returns a unique name with prefix, for consumer groups and the like.
func Name(prefix string) string { return fmt.Sprintf("%s-%s", prefix, RandomSuffix(4)) }
