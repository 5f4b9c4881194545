package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
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
	"github.com/eventshop/eventshop/services/discount/internal/app"
)

// env is one test's world: its own database, topics, consumer group, a producer standing
// in for the cart service, and a reader of everything the discount service publishes.
type env struct {
	cfg      app.Config
	db       *sqlx.DB
	producer *kafka.Producer
	out      *topicReader
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// newEnv creates the database and topics (the cart topic with cartPartitions) and starts
// reading the discount topic. The service itself is started with start.
func newEnv(t *testing.T, cartPartitions int) *env {
	t.Helper()
	db, url := testkit.Database(t)
	brokers := testkit.KafkaBrokers(t)
	cfg := app.Config{
		HTTPAddr:      "127.0.0.1:0",
		GRPCAddr:      "127.0.0.1:0",
		DatabaseURL:   url,
		CartTopic:     testkit.Topic(t, brokers, cartPartitions),
		DiscountTopic: testkit.Topic(t, brokers, 3),
		ConsumerGroup: testkit.Name("discount"),
		AdminUsers:    []string{"admin"},
		ServiceConfig: host.ServiceConfig{DatabaseConns: 10, KafkaBrokers: brokers, CreateTopics: false, DevMode: true, LogLevel: "info", ShutdownTimeout: 10 * time.Second},
	}
	// The runner creates its dead-letter topic if missing; creating it here deletes it too.
	testkit.CreateTopics(t, brokers, kafka.TopicSpec{Name: kafka.DLQTopic(cfg.CartTopic, cfg.ConsumerGroup), Partitions: 1})

	p, err := kafka.NewProducer(testkit.Context(t, 30*time.Second), kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Close(context.Background()) })
	e := &env{cfg: cfg, db: db, producer: p}
	e.out = readTopic(t, brokers, cfg.DiscountTopic, p)
	return e
}

// instance is one running discount service.
type instance struct {
	app  *app.App
	stop func() error
}

// start runs a discount service in-process on e's configuration; it stops at cleanup.
func (e *env) start(t *testing.T) *instance {
	t.Helper()
	a, err := app.New(testkit.Context(t, 60*time.Second), e.cfg, testLogger())
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var runErr error
	in := &instance{app: a}
	in.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := in.stop(); err != nil {
			t.Errorf("discount Run: %v", err)
		}
	})
	return in
}

// encode builds the cart topic's messages of evs.
func (e *env) encode(t *testing.T, evs ...*cartpb.CartEvent) []kafka.Message {
	t.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		m, err := envelope.Encode(context.Background(), e.cfg.CartTopic, "eventshop/cart", ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	return msgs
}

// publish sends cart events as the cart service would and returns their messages, so a
// test can deliver them again.
func (e *env) publish(t *testing.T, evs ...*cartpb.CartEvent) []kafka.Message {
	t.Helper()
	msgs := e.encode(t, evs...)
	e.publishRaw(t, msgs...)
	return msgs
}

// publishRaw sends messages as they are (redeliveries, poison).
func (e *env) publishRaw(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	ctx := testkit.Context(t, 30*time.Second)
	for _, m := range msgs {
		if err := e.producer.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (e *env) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := e.db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// settled waits until the service has nothing left to publish and the reader holds every
// event the outbox ever had: after that, no further event can appear.
func (e *env) settled(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, "every outbox row published and read", func() bool {
		var pending, total int
		_ = e.db.Get(&pending, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`)
		_ = e.db.Get(&total, `SELECT count(*) FROM outbox`)
		return pending == 0 && e.out.distinct() == total
	})
}

// cartSim plays one cart of the cart service: it produces the cart's events with
// consecutive versions and the snapshot at checkout.
type cartSim struct {
	id, user string
	version  int64
	lines    []*cartpb.CartLine
	coupon   string
}

func newCart(user string) *cartSim { return &cartSim{id: uuid.NewString(), user: user} }

func (c *cartSim) event() *cartpb.CartEvent {
	c.version++
	return &cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: c.id, AggregateVersion: c.version}
}

func (c *cartSim) line(product string) *cartpb.CartLine {
	for _, l := range c.lines {
		if l.ProductId == product {
			return l
		}
	}
	l := &cartpb.CartLine{ProductId: product}
	c.lines = append(c.lines, l)
	return l
}

func (c *cartSim) add(product string, qty int32, price int64) *cartpb.CartEvent {
	l := c.line(product)
	l.Quantity += qty
	l.UnitPriceCents = price
	e := c.event()
	e.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: c.user, ProductId: product, Quantity: qty, LineQuantity: l.Quantity, UnitPriceCents: price}}
	return e
}

func (c *cartSim) setQty(product string, qty int32, price int64) *cartpb.CartEvent {
	l := c.line(product)
	old := l.Quantity
	l.Quantity, l.UnitPriceCents = qty, price
	e := c.event()
	e.Payload = &cartpb.CartEvent_ItemQuantityChanged{ItemQuantityChanged: &cartpb.ItemQuantityChanged{UserId: c.user, ProductId: product, OldQuantity: old, NewQuantity: qty, UnitPriceCents: price}}
	return e
}

func (c *cartSim) remove(product string) *cartpb.CartEvent {
	l := c.line(product)
	for i, x := range c.lines {
		if x == l {
			c.lines = append(c.lines[:i], c.lines[i+1:]...)
			break
		}
	}
	e := c.event()
	e.Payload = &cartpb.CartEvent_ItemRemoved{ItemRemoved: &cartpb.ItemRemoved{UserId: c.user, ProductId: product, Quantity: l.Quantity}}
	return e
}

func (c *cartSim) applyCoupon(code string) *cartpb.CartEvent {
	c.coupon = code
	e := c.event()
	e.Payload = &cartpb.CartEvent_CouponApplied{CouponApplied: &cartpb.CouponApplied{UserId: c.user, CouponCode: code}}
	return e
}

// checkout returns the CheckedOut event and its checkout id.
func (c *cartSim) checkout() (*cartpb.CartEvent, string) {
	var sub int64
	lines := make([]*cartpb.CartLine, len(c.lines))
	for i, l := range c.lines {
		lines[i] = &cartpb.CartLine{ProductId: l.ProductId, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents, LineTotalCents: int64(l.Quantity) * l.UnitPriceCents}
		sub += lines[i].LineTotalCents
	}
	id := uuid.NewString()
	e := c.event()
	e.Payload = &cartpb.CartEvent_CheckedOut{CheckedOut: &cartpb.CheckedOut{UserId: c.user, Lines: lines, CouponCode: c.coupon, SubtotalCents: sub, CheckoutId: id}}
	return e, id
}

// topicReader reads a topic the discount service publishes to.
type topicReader struct{ *testkit.TopicReader }

func readTopic(t *testing.T, brokers, topic string, p *kafka.Producer) *topicReader {
	t.Helper()
	return &topicReader{testkit.ReadTopics(t, brokers, p, topic)}
}

func (tr *topicReader) messages() []kafka.Message { return tr.Messages() }

// distinct counts the distinct event ids read.
func (tr *topicReader) distinct() int {
	seen := map[string]bool{}
	for _, m := range tr.messages() {
		seen[m.Header(envelope.HeaderID)] = true
	}
	return len(seen)
}

// events decodes every discount event read, first delivery of each event id only, in
// the order read (per cart, the publication order).
func (tr *topicReader) events(t *testing.T) []*discountpb.DiscountEvent {
	t.Helper()
	var out []*discountpb.DiscountEvent
	seen := map[string]bool{}
	for _, m := range tr.messages() {
		var e discountpb.DiscountEvent
		if err := envelope.Decode(m, &e); err != nil {
			t.Fatalf("undecodable discount event: %v", err)
		}
		if string(m.Key) != e.GetAggregateId() {
			t.Fatalf("discount event keyed %q for cart %q", m.Key, e.GetAggregateId())
		}
		if !seen[e.GetEventId()] {
			seen[e.GetEventId()] = true
			out = append(out, &e)
		}
	}
	return out
}

// forCart returns cartID's events, waiting until there are at least n.
func (tr *topicReader) forCart(t *testing.T, cartID string, n int) []*discountpb.DiscountEvent {
	t.Helper()
	var evs []*discountpb.DiscountEvent
	testkit.Eventually(t, 60*time.Second, "discount events of cart "+cartID, func() bool {
		evs = evs[:0]
		for _, e := range tr.events(t) {
			if e.GetAggregateId() == cartID {
				evs = append(evs, e)
			}
		}
		return len(evs) >= n
	})
	return evs
}

// Client side of the API.

func token(t *testing.T, cfg app.Config, user string) string {
	t.Helper()
	tok, err := auth.Mint(cfg.AuthConfig(), user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func grpcClient(t *testing.T, in *instance) discountpb.DiscountServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(in.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return discountpb.NewDiscountServiceClient(conn)
}

// as returns a context carrying user's bearer token ("" for none).
func as(t *testing.T, cfg app.Config, user string) context.Context {
	ctx := testkit.Context(t, 20*time.Second)
	if user == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token(t, cfg, user))
}

type httpResult struct {
	Status int
	Body   map[string]any
	Raw    string
}

func httpDo(t *testing.T, cfg app.Config, in *instance, method, path, user string, body any) httpResult {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(testkit.Context(t, 20*time.Second), method, "http://"+in.app.HTTPAddr()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+token(t, cfg, user))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	res := httpResult{Status: resp.StatusCode, Raw: string(raw)}
	_ = json.Unmarshal(raw, &res.Body)
	return res
}

// waitForMembers waits until group has n members, each with partitions assigned.
func waitForMembers(t *testing.T, brokers, group string, n int) {
	t.Helper()
	ac, err := ckafka.NewAdminClient(&ckafka.ConfigMap{"bootstrap.servers": brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	testkit.Eventually(t, 60*time.Second, fmt.Sprintf("%d members with partitions in group %s", n, group), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := ac.DescribeConsumerGroups(ctx, []string{group})
		if err != nil || len(res.ConsumerGroupDescriptions) != 1 {
			return false
		}
		d := res.ConsumerGroupDescriptions[0]
		if d.State != ckafka.ConsumerGroupStateStable || len(d.Members) != n {
			return false
		}
		for _, m := range d.Members {
			if len(m.Assignment.TopicPartitions) == 0 {
				return false
			}
		}
		return true
	})
}
