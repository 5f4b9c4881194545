package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	"github.com/eventshop/eventshop/services/inventory/migrations"
)

// syncBuffer collects a child's output from its pipe goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKilledMidStreamRestartLosesNothingAppliesNothingTwice runs the service's run() in
// a child process, SIGKILLs it while cart events are flowing, starts a new one on the
// same database and consumer group, and checks that every event was applied exactly
// once (stock, reservations, processed_events, per-cart versions, outbox rows) and that
// every inventory event reached Kafka.
func TestKilledMidStreamRestartLosesNothingAppliesNothingTwice(t *testing.T) {
	db, dbURL := testkit.Database(t)
	brokers := testkit.KafkaBrokers(t)
	cartTopic, inventoryTopic, productsTopic := testkit.Topic(t, brokers, 6), testkit.Topic(t, brokers, 6), testkit.Topic(t, brokers, 3)
	group := testkit.Name("inventory")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = kafka.DeleteTopics(ctx, brokers, kafka.DLQTopic(cartTopic, group))
	})
	ctx := testkit.Context(t, 3*time.Minute)

	// Migrate first so that the test's products exist before the service starts; the
	// service announces them (version 1) at start-up.
	if err := postgres.Migrate(ctx, db, outbox.Migrations, idempotency.Migrations, migrations.Set); err != nil {
		t.Fatal(err)
	}
	const stock = 100_000
	if _, err := db.Exec(`INSERT INTO products (product_id, name, price_cents, available) VALUES ('k1', 'K1', 100, $1), ('k2', 'K2', 100, $1)`, stock); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperInventoryProcess$")
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.Env = append(os.Environ(), "EVENTSHOP_INVENTORY_HELPER=1",
			"HTTP_ADDR=127.0.0.1:0", "GRPC_ADDR=127.0.0.1:0", "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+brokers,
			"CART_EVENTS_TOPIC="+cartTopic, "INVENTORY_EVENTS_TOPIC="+inventoryTopic, "PRODUCTS_TOPIC="+productsTopic,
			"CONSUMER_GROUP="+group, "KAFKA_CREATE_TOPICS=false", "DEV_MODE=true", "SHUTDOWN_TIMEOUT=20s")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("inventory output:\n%s", logs.String())
		}
	})
	processed := func() int {
		var n int
		_ = db.Get(&n, `SELECT count(*) FROM processed_events WHERE consumer = $1`, group)
		return n
	}

	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Close(context.Background()) }()
	const carts = 150
	const total = 3 * carts
	publishCart := func() error {
		c := uuid.NewString()
		for _, e := range cartEvents(c) {
			m, err := envelope.Encode(ctx, cartTopic, "eventshop/cart", e)
			if err != nil {
				return err
			}
			if err := p.Publish(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}

	first := start()
	if err := publishCart(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, "the first instance consuming", func() bool { return processed() == 3 })
	published := make(chan error, 1)
	go func() {
		for range carts - 1 {
			if err := publishCart(); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	testkit.Eventually(t, 60*time.Second, "a third of the events processed", func() bool { return processed() >= total/3 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := processed()
	if atKill >= total {
		t.Fatalf("all %d events were processed before the kill: the test proves nothing; publish more", total)
	}
	t.Logf("killed after %d of %d events", atKill, total)

	second := start()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 90*time.Second, "every event processed by the restarted instance", func() bool { return processed() >= total })
	testkit.Eventually(t, 30*time.Second, "outbox drained", func() bool {
		var n int
		_ = db.Get(&n, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`)
		return n == 0
	})

	checkExactlyOnce(t, db, group, inventoryTopic, productsTopic, carts, stock)

	// Every inventory event the outbox holds is in Kafka (a re-publish after the kill
	// would repeat an event id, which consumers dedupe; none may be missing).
	var want []string
	if err := db.Select(&want, `SELECT event_id FROM outbox WHERE topic = $1`, inventoryTopic); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	r, err := kafka.NewRunner(kafka.ConsumerConfig{Brokers: brokers, GroupID: testkit.Name("check"), Topics: []string{inventoryTopic}}, p,
		func(_ context.Context, m kafka.Message) error {
			mu.Lock()
			seen[m.Header(envelope.HeaderID)] = true
			mu.Unlock()
			return nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stopReader := context.WithCancel(ctx)
	readerDone := make(chan struct{})
	go func() { _ = r.Run(rctx); close(readerDone) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = kafka.DeleteTopics(ctx, brokers, r.DLQTopics()...)
	})
	testkit.Eventually(t, 60*time.Second, "every inventory event in Kafka", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= len(want)
	})
	stopReader()
	<-readerDone
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("inventory event %s is in the outbox but not in Kafka", id)
		}
	}

	// The restarted instance still stops cleanly.
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("restarted instance exited with %v", err)
	}
}

// cartEvents is one cart's stream: add 2 of k1, lower k1 to 1, add 1 of k2.
func cartEvents(cart string) []*cartpb.CartEvent {
	ev := func(v int64) *cartpb.CartEvent {
		return &cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cart, AggregateVersion: v}
	}
	a, b, c := ev(1), ev(2), ev(3)
	a.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "u", ProductId: "k1", Quantity: 2, LineQuantity: 2, UnitPriceCents: 100}}
	b.Payload = &cartpb.CartEvent_ItemQuantityChanged{ItemQuantityChanged: &cartpb.ItemQuantityChanged{UserId: "u", ProductId: "k1", OldQuantity: 2, NewQuantity: 1, UnitPriceCents: 100}}
	c.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "u", ProductId: "k2", Quantity: 1, LineQuantity: 1, UnitPriceCents: 100}}
	return []*cartpb.CartEvent{a, b, c}
}

// checkExactlyOnce asserts the state that applying each cart's three events exactly
// once leaves.
func checkExactlyOnce(t *testing.T, db *sqlx.DB, group, inventoryTopic, productsTopic string, carts, stock int) {
	t.Helper()
	count := func(q string, args ...any) int {
		var n int
		if err := db.Get(&n, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	checks := []struct {
		what  string
		query string
		args  []any
		want  int
	}{
		{"processed events", `SELECT count(*) FROM processed_events WHERE consumer = $1`, []any{group}, 3 * carts},
		{"k1 available", `SELECT available FROM products WHERE product_id = 'k1'`, nil, stock - carts},
		{"k1 reserved", `SELECT reserved FROM products WHERE product_id = 'k1'`, nil, carts},
		{"k2 available", `SELECT available FROM products WHERE product_id = 'k2'`, nil, stock - carts},
		{"k2 reserved", `SELECT reserved FROM products WHERE product_id = 'k2'`, nil, carts},
		{"reservations of one unit", `SELECT count(*) FROM reservations WHERE quantity = 1`, nil, 2 * carts},
		{"reservations", `SELECT count(*) FROM reservations`, nil, 2 * carts},
		{"carts at version 3", `SELECT count(*) FROM carts WHERE version = 3`, nil, carts},
		{"carts", `SELECT count(*) FROM carts`, nil, carts},
		{"inventory events enqueued", `SELECT count(*) FROM outbox WHERE topic = $1`, []any{inventoryTopic}, 3 * carts},
		// One snapshot at start-up, then one per change of available stock; the restart
		// announces nothing again.
		{"k1 snapshots enqueued", `SELECT count(*) FROM outbox WHERE topic = $1 AND msg_key = 'k1'`, []any{productsTopic}, 1 + 2*carts},
		{"k2 snapshots enqueued", `SELECT count(*) FROM outbox WHERE topic = $1 AND msg_key = 'k2'`, []any{productsTopic}, 1 + carts},
		{"k1 version", `SELECT version FROM products WHERE product_id = 'k1'`, nil, 1 + 2*carts},
	}
	for _, c := range checks {
		if got := count(c.query, c.args...); got != c.want {
			t.Errorf("%s = %d, want %d", c.what, got, c.want)
		}
	}
}

// TestHelperInventoryProcess is the child process of the kill test, not a test of its
// own: it runs the service exactly as main does, configured by the environment.
func TestHelperInventoryProcess(t *testing.T) {
	if os.Getenv("EVENTSHOP_INVENTORY_HELPER") != "1" {
		t.Skip("helper process for TestKilledMidStreamRestartLosesNothingAppliesNothingTwice")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		t.Fatal(err)
	}
}
