package app_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
	"github.com/eventshop/eventshop/services/order/internal/app"
)

type harness struct {
	cfg      app.Config
	db       *sqlx.DB
	producer *kafka.Producer
	http     string
	client   orderpb.OrderServiceClient
	orders   *topicReader
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs the order service in-process on its own database, topics (partitions each)
// and consumer group, with a producer for input events and a reader of the order topic.
func start(t *testing.T, partitions int) *harness {
	t.Helper()
	db, url := testkit.Database(t)
	brokers := testkit.KafkaBrokers(t)
	cfg := app.Config{
		HTTPAddr:       "127.0.0.1:0",
		GRPCAddr:       "127.0.0.1:0",
		DatabaseURL:    url,
		CartTopic:      testkit.Topic(t, brokers, partitions),
		InventoryTopic: testkit.Topic(t, brokers, partitions),
		DiscountTopic:  testkit.Topic(t, brokers, partitions),
		OrderTopic:     testkit.Topic(t, brokers, partitions),
		ConsumerGroup:  testkit.Name("order"),
		ServiceConfig:  host.ServiceConfig{DatabaseConns: 10, KafkaBrokers: brokers, DevMode: true, LogLevel: "info", ShutdownTimeout: 10 * time.Second},
	}
	deleteDLQs(t, cfg)
	ctx := testkit.Context(t, 60*time.Second)
	a, err := app.New(ctx, cfg, testLogger())
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("order Run: %v", err)
		}
	})

	h := &harness{cfg: cfg, db: db, http: "http://" + a.HTTPAddr()}
	h.producer = newProducer(t, brokers)
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h.client = orderpb.NewOrderServiceClient(conn)
	h.orders = readTopic(t, brokers, h.producer, cfg.OrderTopic)
	return h
}

// deleteDLQs removes the dead-letter topics the service's runner creates, when the test ends.
func deleteDLQs(t *testing.T, cfg app.Config) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var names []string
		for _, topic := range []string{cfg.CartTopic, cfg.InventoryTopic, cfg.DiscountTopic} {
			names = append(names, kafka.DLQTopic(topic, cfg.ConsumerGroup))
		}
		if err := kafka.DeleteTopics(ctx, cfg.KafkaBrokers, names...); err != nil {
			t.Logf("delete dead-letter topics: %v", err)
		}
	})
}

func newProducer(t *testing.T, brokers string) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(testkit.Context(t, 30*time.Second), kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Close(context.Background()) })
	return p
}

// input is an event the test publishes in place of the cart, inventory or discount service.
type input struct {
	topic string
	env   envelope.Envelope
}

func (h *harness) publish(t *testing.T, ins ...input) {
	t.Helper()
	ctx := testkit.Context(t, 30*time.Second)
	for _, in := range ins {
		m, err := envelope.Encode(ctx, in.topic, "test", in.env)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.producer.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) publishRaw(t *testing.T, m kafka.Message) {
	t.Helper()
	if err := h.producer.Publish(testkit.Context(t, 30*time.Second), m); err != nil {
		t.Fatal(err)
	}
}

// The builders below return events of one cart (the aggregate of every input topic).

func cartEvent(cartID string, version int64) *cartpb.CartEvent {
	return &cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cartID, AggregateVersion: version}
}

func checkedOut(h *harness, cartID string, version int64, user, checkoutID, coupon string, lines ...*cartpb.CartLine) input {
	var sub int64
	for _, l := range lines {
		sub += l.GetLineTotalCents()
	}
	e := cartEvent(cartID, version)
	e.Payload = &cartpb.CartEvent_CheckedOut{CheckedOut: &cartpb.CheckedOut{UserId: user, Lines: lines, CouponCode: coupon, SubtotalCents: sub, CheckoutId: checkoutID}}
	return input{h.cfg.CartTopic, e}
}

func itemAdded(h *harness, cartID string, version int64, user, product string, qty int32) input {
	e := cartEvent(cartID, version)
	e.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: user, ProductId: product, Quantity: qty, LineQuantity: qty, UnitPriceCents: 100}}
	return input{h.cfg.CartTopic, e}
}

func cartLine(product string, qty int32, price int64) *cartpb.CartLine {
	return &cartpb.CartLine{ProductId: product, Quantity: qty, UnitPriceCents: price, LineTotalCents: int64(qty) * price}
}

func inventoryEvent(cartID string, version int64) *inventorypb.InventoryEvent {
	return &inventorypb.InventoryEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cartID, AggregateVersion: version}
}

func stockCommitted(h *harness, cartID string, version int64, checkoutID string) input {
	e := inventoryEvent(cartID, version)
	e.Payload = &inventorypb.InventoryEvent_StockCommitted{StockCommitted: &inventorypb.StockCommitted{CheckoutId: checkoutID}}
	return input{h.cfg.InventoryTopic, e}
}

func reservationRejected(h *harness, cartID string, version int64, checkoutID, product string, requested, available int32) input {
	e := inventoryEvent(cartID, version)
	e.Payload = &inventorypb.InventoryEvent_ReservationRejected{ReservationRejected: &inventorypb.ReservationRejected{
		ProductId: product, Requested: requested, Available: available, CheckoutId: checkoutID}}
	return input{h.cfg.InventoryTopic, e}
}

func stockReserved(h *harness, cartID string, version int64, product string) input {
	e := inventoryEvent(cartID, version)
	e.Payload = &inventorypb.InventoryEvent_StockReserved{StockReserved: &inventorypb.StockReserved{ProductId: product, Quantity: 1, AvailableAfter: 5}}
	return input{h.cfg.InventoryTopic, e}
}

func discountEvent(cartID string, version int64) *discountpb.DiscountEvent {
	return &discountpb.DiscountEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cartID, AggregateVersion: version}
}

func discountCalculated(h *harness, cartID string, version int64, checkoutID string, final bool, cents int64) input {
	e := discountEvent(cartID, version)
	e.Payload = &discountpb.DiscountEvent_DiscountCalculated{DiscountCalculated: &discountpb.DiscountCalculated{
		DiscountCents: cents, Final: final, CheckoutId: checkoutID}}
	return input{h.cfg.DiscountTopic, e}
}

func couponRejected(h *harness, cartID string, version int64, checkoutID, code, reason string) input {
	e := discountEvent(cartID, version)
	e.Payload = &discountpb.DiscountEvent_CouponRejected{CouponRejected: &discountpb.CouponRejected{CouponCode: code, CheckoutId: checkoutID, Reason: reason}}
	return input{h.cfg.DiscountTopic, e}
}

func couponRedeemed(h *harness, cartID string, version int64, checkoutID, code string) input {
	e := discountEvent(cartID, version)
	e.Payload = &discountpb.DiscountEvent_CouponRedeemed{CouponRedeemed: &discountpb.CouponRedeemed{CouponCode: code, CheckoutId: checkoutID}}
	return input{h.cfg.DiscountTopic, e}
}

// storedOrder is an order row as the tests compare it (ids and times left out).
type storedOrder struct {
	UserID        string `db:"user_id"`
	CartID        string `db:"cart_id"`
	CheckoutID    string `db:"checkout_id"`
	Status        string `db:"status"`
	SubtotalCents int64  `db:"subtotal_cents"`
	DiscountCents int64  `db:"discount_cents"`
	TotalCents    int64  `db:"total_cents"`
	Reason        string `db:"reason"`
	Version       int64  `db:"version"`
}

// orderOf returns the stored order of a checkout and its id, or false.
func (h *harness) orderOf(t *testing.T, checkoutID string) (storedOrder, string, bool) {
	t.Helper()
	var r struct {
		storedOrder
		ID string `db:"id"`
	}
	err := h.db.Get(&r, `SELECT id, user_id, cart_id, checkout_id, status, subtotal_cents, discount_cents, total_cents, reason, version
		FROM orders WHERE checkout_id = $1`, checkoutID)
	if err != nil {
		return storedOrder{}, "", false
	}
	return r.storedOrder, r.ID, true
}

// waitDecided waits until the checkout's order is decided and returns it.
func (h *harness) waitDecided(t *testing.T, checkoutID string) (storedOrder, string) {
	t.Helper()
	var o storedOrder
	var id string
	testkit.Eventually(t, 60*time.Second, "order of checkout "+checkoutID+" decided", func() bool {
		var ok bool
		o, id, ok = h.orderOf(t, checkoutID)
		return ok && o.Status != "pending"
	})
	return o, id
}

// waitProcessed waits until the consumer group recorded every given event as processed.
func (h *harness) waitProcessed(t *testing.T, ins ...input) {
	t.Helper()
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.env.GetEventId()
	}
	testkit.Eventually(t, 60*time.Second, "events processed", func() bool {
		var n int
		_ = h.db.Get(&n, `SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2)`, h.cfg.ConsumerGroup, pq.Array(ids))
		return n == len(ids)
	})
}

// outboxCount is how many events the service enqueued about an order (its database's
// own account of what it published).
func (h *harness) outboxCount(t *testing.T, orderID string) int {
	t.Helper()
	var n int
	if err := h.db.Get(&n, `SELECT count(*) FROM outbox WHERE msg_key = $1`, []byte(orderID)); err != nil {
		t.Fatal(err)
	}
	return n
}

func token(t *testing.T, h *harness, user string) string {
	t.Helper()
	tok, err := auth.Mint(h.cfg.AuthConfig(), user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func grpcCtx(t *testing.T, h *harness, user string) context.Context {
	return metadata.AppendToOutgoingContext(testkit.Context(t, 20*time.Second), "authorization", "Bearer "+token(t, h, user))
}

// topicReader reads the topics the order service publishes to.
type topicReader struct{ *testkit.TopicReader }

func readTopic(t *testing.T, brokers string, p *kafka.Producer, topics ...string) *topicReader {
	t.Helper()
	return &topicReader{testkit.ReadTopics(t, brokers, p, topics...)}
}

// events returns the decoded order events of orderID read so far, in order, one per
// event id (the relay publishes at least once).
func (tr *topicReader) events(t *testing.T, orderID string) []*orderpb.OrderEvent {
	t.Helper()
	var evs []*orderpb.OrderEvent
	seen := map[string]bool{}
	for _, m := range tr.ForKey(orderID) {
		var e orderpb.OrderEvent
		if err := envelope.Decode(m, &e); err != nil {
			t.Fatalf("undecodable order event: %v", err)
		}
		if m.Header(envelope.HeaderSource) != "eventshop/order" || m.Header(envelope.HeaderID) != e.GetEventId() {
			t.Errorf("order event headers: %v", m.Headers)
		}
		if !seen[e.GetEventId()] {
			seen[e.GetEventId()] = true
			evs = append(evs, &e)
		}
	}
	return evs
}

// waitEvents waits until n events of orderID arrived, lets extra ones show up, and
// returns them.
func (tr *topicReader) waitEvents(t *testing.T, orderID string, n int) []*orderpb.OrderEvent {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, "order events in Kafka", func() bool { return len(tr.events(t, orderID)) >= n })
	time.Sleep(300 * time.Millisecond) // anything extra would show up now
	return tr.events(t, orderID)
}
