package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

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
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/cart/internal/app"
)

// catalog is what the tests publish to the products topic in place of the inventory service.
var catalog = []*inventorypb.ProductSnapshot{
	{ProductId: "mug", Name: "Mug", PriceCents: 1250, Available: 100},
	{ProductId: "shirt", Name: "Shirt", PriceCents: 2000, Available: 100},
	{ProductId: "poster", Name: "Poster", PriceCents: 999, Available: 5},
}

type harness struct {
	cfg      app.Config
	db       *sqlx.DB
	producer *kafka.Producer
	http     string
	client   cartpb.CartServiceClient
	stop     func() error
	reader   *topicReader
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func baseConfig(t testing.TB) (app.Config, *sqlx.DB) {
	t.Helper()
	db, url := testkit.Database(t)
	brokers := testkit.KafkaBrokers(t)
	return app.Config{
		HTTPAddr:       "127.0.0.1:0",
		GRPCAddr:       "127.0.0.1:0",
		DatabaseURL:    url,
		CartTopic:      testkit.Topic(t, brokers, 6),
		ProductsTopic:  testkit.Topic(t, brokers, 1),
		CatalogGroup:   testkit.Name("cart-catalog"),
		ConsumerGroup:  testkit.Name("cart"),
		InventoryTopic: testkit.Topic(t, brokers, 3),
		DiscountTopic:  testkit.Topic(t, brokers, 3),
		// 50 commands on one cart queue on its lock; on a busy 2-core machine they can
		// need longer than the 10s default (cmd/cart's limits test covers the timeout).
		ServiceConfig: host.ServiceConfig{DatabaseConns: 20, KafkaBrokers: brokers, DevMode: true, LogLevel: "info", ShutdownTimeout: 10 * time.Second, RequestTimeout: 25 * time.Second},
	}, db
}

func start(t testing.TB) *harness {
	t.Helper()
	cfg, db := baseConfig(t)
	ctx := testkit.Context(t, 30*time.Second)
	a, err := app.New(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	var once sync.Once
	var runErr error
	h := &harness{cfg: cfg, db: db, http: "http://" + a.HTTPAddr()}
	h.stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("cart Run: %v", err)
		}
	})

	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: cfg.KafkaBrokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = p.Close(context.Background()) })
	h.producer = p
	h.publishCatalog(t, 1, catalog...)

	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h.client = cartpb.NewCartServiceClient(conn)
	h.reader = readTopic(t, cfg.KafkaBrokers, cfg.CartTopic, p)
	return h
}

// publishCatalog publishes product snapshots at version v and waits until the cart's
// catalog read model holds them.
func (h *harness) publishCatalog(t testing.TB, v int64, ps ...*inventorypb.ProductSnapshot) {
	t.Helper()
	ctx := testkit.Context(t, 30*time.Second)
	for _, p := range ps {
		ev := &inventorypb.ProductEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: p.GetProductId(), AggregateVersion: v,
			Payload: &inventorypb.ProductEvent_ProductSnapshot{ProductSnapshot: p}}
		m, err := envelope.Encode(ctx, h.cfg.ProductsTopic, "eventshop/inventory", ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.producer.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 30*time.Second, "catalog read model updated", func() bool {
		var n int
		ids := make([]string, len(ps))
		for i, p := range ps {
			ids[i] = p.GetProductId()
		}
		_ = h.db.Get(&n, `SELECT count(*) FROM catalog WHERE version >= $1 AND product_id = ANY(string_to_array($2, ','))`, v, strings.Join(ids, ","))
		return n == len(ps)
	})
}

func token(t testing.TB, h *harness, user string) string {
	t.Helper()
	tok, err := auth.Mint(h.cfg.AuthConfig(), user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// grpcCtx returns a context carrying user's bearer token (and an idempotency key if given).
func grpcCtx(t testing.TB, h *harness, user string, kv ...string) context.Context {
	ctx := testkit.Context(t, 20*time.Second)
	return metadata.AppendToOutgoingContext(ctx, append([]string{"authorization", "Bearer " + token(t, h, user)}, kv...)...)
}

type httpResult struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (h *harness) do(t testing.TB, method, path, bearer string, body any, headers ...string) httpResult {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(testkit.Context(t, 20*time.Second), method, h.http+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
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

// topicReader reads a topic the cart publishes to.
type topicReader struct{ *testkit.TopicReader }

func readTopic(t testing.TB, brokers, topic string, p *kafka.Producer) *topicReader {
	t.Helper()
	return &topicReader{testkit.ReadTopics(t, brokers, p, topic)}
}

// forCart waits until n events of cartID arrived and returns them decoded, in order.
func (tr *topicReader) forCart(t testing.TB, cartID string, n int) ([]*cartpb.CartEvent, []kafka.Message) {
	t.Helper()
	var evs []*cartpb.CartEvent
	var msgs []kafka.Message
	collect := func() {
		evs, msgs = nil, nil
		for _, m := range tr.ForKey(cartID) {
			var e cartpb.CartEvent
			if err := envelope.Decode(m, &e); err != nil {
				t.Fatalf("undecodable cart event: %v", err)
			}
			evs = append(evs, &e)
			msgs = append(msgs, m)
		}
	}
	testkit.Eventually(t, 30*time.Second, "cart events in Kafka", func() bool { collect(); return len(evs) >= n })
	time.Sleep(300 * time.Millisecond) // anything extra would show up now
	collect()
	return evs, msgs
}

func (tr *topicReader) count() int { return tr.Len() }
