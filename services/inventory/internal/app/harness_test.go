package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/inventory/internal/app"
)

// harness is one test's world: its own database, topics and consumer group, a producer
// standing in for the cart service, and readers of the inventory's output topics.
type harness struct {
	cfg       app.Config
	db        *sqlx.DB
	producer  *kafka.Producer
	inventory *topicReader
	products  *topicReader
}

func newHarness(t *testing.T, mod func(*app.Config)) *harness {
	t.Helper()
	db, url := testkit.Database(t)
	brokers := testkit.KafkaBrokers(t)
	cfg := app.Config{
		HTTPAddr:        "127.0.0.1:0",
		GRPCAddr:        "127.0.0.1:0",
		DatabaseURL:     url,
		CartTopic:       testkit.Topic(t, brokers, 6),
		InventoryTopic:  testkit.Topic(t, brokers, 6),
		ProductsTopic:   testkit.Topic(t, brokers, 3),
		ConsumerGroup:   testkit.Name("inventory"),
		AdminUsers:      []string{"admin"},
		ReservationHold: 30 * time.Minute,
		SweepInterval:   30 * time.Second,
		ServiceConfig:   host.ServiceConfig{DatabaseConns: 20, KafkaBrokers: brokers, DevMode: true, LogLevel: "info", ShutdownTimeout: 10 * time.Second},
	}
	if mod != nil {
		mod(&cfg)
	}
	t.Cleanup(func() { // the consumer runner creates the dead-letter topic itself
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = kafka.DeleteTopics(ctx, brokers, kafka.DLQTopic(cfg.CartTopic, cfg.ConsumerGroup))
	})
	p, err := kafka.NewProducer(testkit.Context(t, 30*time.Second), kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Close(context.Background()) })
	h := &harness{cfg: cfg, db: db, producer: p}
	h.inventory = readTopic(t, brokers, cfg.InventoryTopic, p)
	h.products = readTopic(t, brokers, cfg.ProductsTopic, p)
	return h
}

// instance is one running inventory service.
type instance struct {
	http   string
	client inventorypb.InventoryServiceClient
	logs   *logRecorder
	stop   func() error
}

// start runs an inventory instance in-process until the test ends.
func (h *harness) start(t *testing.T) *instance {
	t.Helper()
	logs := newLogRecorder()
	a, err := app.New(testkit.Context(t, 60*time.Second), h.cfg, slog.New(logs))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	in := &instance{http: "http://" + a.HTTPAddr(), logs: logs}
	in.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := in.stop(); err != nil {
			t.Errorf("inventory Run: %v", err)
		}
	})
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	in.client = inventorypb.NewInventoryServiceClient(conn)
	// A runner stopped while it still creates its dead-letter topic reports the
	// cancellation as an error; every test's instance gets past that first.
	testkit.Eventually(t, 60*time.Second, "the consumer started", func() bool { return logs.count("consumer started") > 0 })
	return in
}

// logRecorder is a slog handler that remembers which messages were logged (and prints
// them under -v), so a test can see, say, that an instance was assigned partitions.
type logRecorder struct {
	mu   *sync.Mutex
	seen map[string]int
	next slog.Handler
}

func newLogRecorder() *logRecorder {
	next := slog.DiscardHandler
	if testing.Verbose() {
		next = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})
	}
	return &logRecorder{mu: &sync.Mutex{}, seen: map[string]int{}, next: next}
}

func (l *logRecorder) Enabled(ctx context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }
func (l *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	l.mu.Lock()
	l.seen[r.Message]++
	l.mu.Unlock()
	if l.next.Enabled(ctx, r.Level) {
		return l.next.Handle(ctx, r)
	}
	return nil
}
func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: l.mu, seen: l.seen, next: l.next.WithAttrs(as)}
}
func (l *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{mu: l.mu, seen: l.seen, next: l.next.WithGroup(name)}
}
func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[msg]
}

// addProduct inserts a product (after an instance migrated the database), already
// announced so that it adds nothing to the products topic.
func (h *harness) addProduct(t *testing.T, id string, available int32) {
	t.Helper()
	if _, err := h.db.Exec(`INSERT INTO products (product_id, name, price_cents, available, version, announced_version) VALUES ($1, $1, 100, $2, 1, 1)`,
		id, available); err != nil {
		t.Fatal(err)
	}
}

// Cart events, as the cart service would publish them.

func cartEvent(cart string, v int64) *cartpb.CartEvent {
	return &cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cart, AggregateVersion: v}
}

func added(cart string, v int64, product string, qty, line int32) *cartpb.CartEvent {
	e := cartEvent(cart, v)
	e.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "u", ProductId: product, Quantity: qty, LineQuantity: line, UnitPriceCents: 100}}
	return e
}

func changed(cart string, v int64, product string, from, to int32) *cartpb.CartEvent {
	e := cartEvent(cart, v)
	e.Payload = &cartpb.CartEvent_ItemQuantityChanged{ItemQuantityChanged: &cartpb.ItemQuantityChanged{UserId: "u", ProductId: product, OldQuantity: from, NewQuantity: to, UnitPriceCents: 100}}
	return e
}

func removed(cart string, v int64, product string, qty int32) *cartpb.CartEvent {
	e := cartEvent(cart, v)
	e.Payload = &cartpb.CartEvent_ItemRemoved{ItemRemoved: &cartpb.ItemRemoved{UserId: "u", ProductId: product, Quantity: qty}}
	return e
}

func coupon(cart string, v int64) *cartpb.CartEvent {
	e := cartEvent(cart, v)
	e.Payload = &cartpb.CartEvent_CouponApplied{CouponApplied: &cartpb.CouponApplied{UserId: "u", CouponCode: "SAVE10"}}
	return e
}

type line struct {
	product string
	qty     int32
}

func checkedOut(cart string, v int64, checkoutID string, lines ...line) *cartpb.CartEvent {
	e := cartEvent(cart, v)
	co := &cartpb.CheckedOut{UserId: "u", CheckoutId: checkoutID}
	for _, l := range lines {
		co.Lines = append(co.Lines, &cartpb.CartLine{ProductId: l.product, Quantity: l.qty, UnitPriceCents: 100, LineTotalCents: 100 * int64(l.qty)})
		co.SubtotalCents += 100 * int64(l.qty)
	}
	e.Payload = &cartpb.CartEvent_CheckedOut{CheckedOut: co}
	return e
}

// publish sends cart events in order and returns their messages (to replay them).
func (h *harness) publish(t *testing.T, evs ...*cartpb.CartEvent) []kafka.Message {
	t.Helper()
	ctx := testkit.Context(t, 60*time.Second)
	msgs := make([]kafka.Message, len(evs))
	for i, e := range evs {
		m, err := envelope.Encode(ctx, h.cfg.CartTopic, "eventshop/cart", e)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	h.publishRaw(t, msgs...)
	return msgs
}

func (h *harness) publishRaw(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	ctx := testkit.Context(t, 60*time.Second)
	for _, m := range msgs {
		if err := h.producer.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(evs ...*cartpb.CartEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.GetEventId()
	}
	return out
}

// waitProcessed waits until the inventory recorded every event id as processed.
func (h *harness) waitProcessed(t *testing.T, eventIDs ...string) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, fmt.Sprintf("%d cart events processed", len(eventIDs)), func() bool {
		var n int
		_ = h.db.Get(&n, `SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY(string_to_array($2, ','))`,
			h.cfg.ConsumerGroup, strings.Join(eventIDs, ","))
		return n == len(eventIDs)
	})
}

func (h *harness) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := h.db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Stock is a product's counters.
type Stock struct{ Available, Reserved, Sold int32 }

func (h *harness) stock(t *testing.T, product string) Stock {
	t.Helper()
	var s Stock
	if err := h.db.QueryRow(`SELECT available, reserved, sold FROM products WHERE product_id = $1`, product).Scan(&s.Available, &s.Reserved, &s.Sold); err != nil {
		t.Fatalf("stock of %s: %v", product, err)
	}
	return s
}

// holds returns every reservation as "cart/product" -> quantity.
func (h *harness) holds(t *testing.T) map[string]int32 {
	t.Helper()
	var rows []struct {
		Cart     string `db:"cart_id"`
		Product  string `db:"product_id"`
		Quantity int32  `db:"quantity"`
	}
	if err := h.db.Select(&rows, `SELECT cart_id, product_id, quantity FROM reservations`); err != nil {
		t.Fatal(err)
	}
	out := map[string]int32{}
	for _, r := range rows {
		out[r.Cart+"/"+r.Product] = r.Quantity
	}
	return out
}

// published waits until the outbox is drained and reader holds every message the
// outbox stored under key, and returns them in order. The outbox is the record of what
// the service published, so extra or missing events cannot hide.
func (h *harness) published(t *testing.T, reader *topicReader, topic, key string) []kafka.Message {
	t.Helper()
	var msgs []kafka.Message
	testkit.Eventually(t, 60*time.Second, "outbox drained and "+topic+" messages of "+key+" read", func() bool {
		var pending, stored int
		_ = h.db.Get(&pending, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`)
		_ = h.db.Get(&stored, `SELECT count(*) FROM outbox WHERE topic = $1 AND msg_key = $2`, topic, []byte(key))
		msgs = reader.forKey(key)
		return pending == 0 && len(msgs) == stored
	})
	return msgs
}

// cartOutcomes returns the inventory events published for a cart, summarized.
func (h *harness) cartOutcomes(t *testing.T, cart string) []string {
	t.Helper()
	var out []string
	for _, m := range h.published(t, h.inventory, h.cfg.InventoryTopic, cart) {
		var e inventorypb.InventoryEvent
		if err := envelope.Decode(m, &e); err != nil {
			t.Fatalf("undecodable inventory event: %v", err)
		}
		if e.GetAggregateId() != cart || m.Header(envelope.HeaderSource) != "eventshop/inventory" {
			t.Fatalf("event of cart %s has aggregate %s and source %s", cart, e.GetAggregateId(), m.Header(envelope.HeaderSource))
		}
		out = append(out, summary(&e))
	}
	return out
}

func summary(e *inventorypb.InventoryEvent) string {
	v := e.GetAggregateVersion()
	switch p := e.GetPayload().(type) {
	case *inventorypb.InventoryEvent_StockReserved:
		r := p.StockReserved
		return fmt.Sprintf("v%d reserved %s %d, available after %d", v, r.GetProductId(), r.GetQuantity(), r.GetAvailableAfter())
	case *inventorypb.InventoryEvent_ReservationRejected:
		r := p.ReservationRejected
		return fmt.Sprintf("v%d rejected %s requested %d available %d checkout %q", v, r.GetProductId(), r.GetRequested(), r.GetAvailable(), r.GetCheckoutId())
	case *inventorypb.InventoryEvent_StockReleased:
		r := p.StockReleased
		return fmt.Sprintf("v%d released %s %d %s", v, r.GetProductId(), r.GetQuantity(), r.GetReason())
	case *inventorypb.InventoryEvent_StockCommitted:
		r := p.StockCommitted
		var ls []string
		for _, l := range r.GetLines() {
			ls = append(ls, fmt.Sprintf("%s×%d", l.GetProductId(), l.GetQuantity()))
		}
		return fmt.Sprintf("v%d committed checkout %q %s", v, r.GetCheckoutId(), strings.Join(ls, " "))
	}
	return fmt.Sprintf("v%d unknown %T", v, e.GetPayload())
}

// snapshots returns the product snapshots published for a product as "vN available A
// price P".
func (h *harness) snapshots(t *testing.T, product string) []string {
	t.Helper()
	var out []string
	for _, m := range h.published(t, h.products, h.cfg.ProductsTopic, product) {
		var e inventorypb.ProductEvent
		if err := envelope.Decode(m, &e); err != nil {
			t.Fatalf("undecodable product event: %v", err)
		}
		s := e.GetProductSnapshot()
		out = append(out, fmt.Sprintf("v%d available %d price %d", e.GetAggregateVersion(), s.GetAvailable(), s.GetPriceCents()))
	}
	return out
}

// topicReader reads a topic the inventory service publishes to.
type topicReader struct{ *testkit.TopicReader }

func readTopic(t *testing.T, brokers, topic string, p *kafka.Producer) *topicReader {
	t.Helper()
	return &topicReader{testkit.ReadTopics(t, brokers, p, topic)}
}

func (tr *topicReader) forKey(key string) []kafka.Message { return tr.ForKey(key) }

func (tr *topicReader) all() []kafka.Message { return tr.Messages() }
