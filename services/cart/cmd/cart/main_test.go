package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// TestSIGTERMFinishesInFlightRequestAndLosesNoEvent runs the real cart binary, holds one
// AddItem in flight (the test owns the user's lock), sends SIGTERM, and checks that new
// connections are refused, the in-flight request completes with 200, the process exits
// 0, and every acknowledged command's event is in Kafka.
func TestSIGTERMFinishesInFlightRequestAndLosesNoEvent(t *testing.T) {
	db, dbURL := testkit.Database(t)
	brokers := testkit.KafkaBrokers(t)
	cartTopic, productsTopic := testkit.Topic(t, brokers, 6), testkit.Topic(t, brokers, 1)
	ctx := testkit.Context(t, 3*time.Minute)

	bin := filepath.Join(t.TempDir(), "cart")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), "HTTP_ADDR="+httpAddr, "GRPC_ADDR="+grpcAddr, "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+brokers,
		"CART_EVENTS_TOPIC="+cartTopic, "PRODUCTS_TOPIC="+productsTopic, "CATALOG_GROUP="+testkit.Name("catalog"),
		"KAFKA_CREATE_TOPICS=false", "DEV_MODE=true", "SHUTDOWN_TIMEOUT=30s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("cart output:\n%s", logs.String())
		}
	})
	base := "http://" + httpAddr
	testkit.Eventually(t, 60*time.Second, "cart ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200
	})

	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Close(context.Background()) }()
	snap := &inventorypb.ProductEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: "mug", AggregateVersion: 1,
		Payload: &inventorypb.ProductEvent_ProductSnapshot{ProductSnapshot: &inventorypb.ProductSnapshot{ProductId: "mug", Name: "Mug", PriceCents: 1250, Available: 10}}}
	m, err := envelope.Encode(ctx, productsTopic, "test", snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "catalog has the product", func() bool {
		var n int
		_ = db.Get(&n, `SELECT count(*) FROM catalog`)
		return n == 1
	})

	tok, err := auth.Mint(auth.Config{Secret: auth.DevSigningKey, DevMode: true}, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	post := func() (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/cart/items", strings.NewReader(`{"product_id":"mug","quantity":1}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := post(); err != nil || code != 200 {
		t.Fatalf("first AddItem: %d %s %v", code, body, err)
	}

	// Hold alice's command lock so the next AddItem waits inside its transaction.
	lockDB, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lockDB.Close() }()
	lockTx, err := lockDB.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockTx.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('alice', 42))`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		body string
		err  error
	}
	inflight := make(chan result, 1)
	go func() { c, b, err := post(); inflight <- result{c, b, err} }()
	testkit.Eventually(t, 10*time.Second, "the request waits on the lock", func() bool {
		var n int
		_ = db.Get(&n, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)
		return n == 1
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "new connections refused", func() bool {
		_, err := net.DialTimeout("tcp", httpAddr, 200*time.Millisecond)
		return err != nil
	})
	select {
	case r := <-inflight:
		t.Fatalf("in-flight request finished before the lock was released: %+v", r)
	default:
	}
	if err := lockTx.Rollback(); err != nil {
		t.Fatal(err)
	}
	r := <-inflight
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, `"quantity":2`) {
		t.Fatalf("in-flight AddItem after SIGTERM = %d %s %v; want 200 with quantity 2", r.code, r.body, r.err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("cart exited with %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("cart did not exit after SIGTERM")
	}
	if !strings.Contains(logs.String(), "cart stopped") {
		t.Fatalf("no clean-stop log line:\n%s", logs.String())
	}

	// Both acknowledged commands are in Kafka, versions 1 and 2.
	var mu sync.Mutex
	var versions []int64
	seen := func() int { mu.Lock(); defer mu.Unlock(); return len(versions) }
	runner, err := kafka.NewRunner(kafka.ConsumerConfig{Brokers: brokers, GroupID: testkit.Name("check"), Topics: []string{cartTopic}}, p,
		func(_ context.Context, m kafka.Message) error {
			var e cartpb.CartEvent
			if err := envelope.Decode(m, &e); err != nil {
				return err
			}
			mu.Lock()
			versions = append(versions, e.GetAggregateVersion())
			mu.Unlock()
			return nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	go func() {
		for rctx.Err() == nil && seen() < 2 {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	_ = runner.Run(rctx)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(versions) != "[1 2]" {
		t.Fatalf("events in Kafka after shutdown: versions %v, want [1 2]", versions)
	}
	var pending int
	_ = db.Get(&pending, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`)
	if pending != 0 {
		t.Fatalf("%d outbox rows left unsent after a graceful shutdown", pending)
	}
}
