package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
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

// service is the real order binary running as a child process.
type service struct {
	bin  string
	env  []string
	http string
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

func (s *service) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin)
	s.logs = &bytes.Buffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.Env = s.env
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, logs := s.cmd, s.logs
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("order output:\n%s", logs.String())
		}
	})
	testkit.Eventually(t, 60*time.Second, "order service ready", func() bool {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (s *service) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
}

func count(t *testing.T, db *sqlx.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkout is one cart's checkout and its outcomes, as the test publishes them.
type checkout struct {
	cartID, checkoutID string
	rejected           bool
	discount           int64
}

const (
	price = 1000
	qty   = 3
)

// TestKilledMidStreamLosesNothingAndAppliesNothingTwice runs the real binary, SIGKILLs it
// while checkouts and their outcomes are flowing in, publishes more while it is down,
// restarts it, and checks that every order is there and decided exactly as the events
// say, that every event was applied exactly once, and that every order published
// exactly one OrderPlaced and one decision.
func TestKilledMidStreamLosesNothingAndAppliesNothingTwice(t *testing.T) {
	db, dbURL := testkit.Database(t)
	brokers := testkit.KafkaBrokers(t)
	cartTopic, inventoryTopic, discountTopic, orderTopic := testkit.Topic(t, brokers, 3), testkit.Topic(t, brokers, 3), testkit.Topic(t, brokers, 3), testkit.Topic(t, brokers, 3)
	group := testkit.Name("order")
	ctx := testkit.Context(t, 4*time.Minute)
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = kafka.DeleteTopics(dctx, brokers, kafka.DLQTopic(cartTopic, group), kafka.DLQTopic(inventoryTopic, group), kafka.DLQTopic(discountTopic, group))
	})

	bin := filepath.Join(t.TempDir(), "order")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	svc := &service{bin: bin, http: freeAddr(t)}
	svc.env = append(os.Environ(), "HTTP_ADDR="+svc.http, "GRPC_ADDR="+freeAddr(t), "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+brokers,
		"CART_EVENTS_TOPIC="+cartTopic, "INVENTORY_EVENTS_TOPIC="+inventoryTopic, "DISCOUNT_EVENTS_TOPIC="+discountTopic,
		"ORDER_EVENTS_TOPIC="+orderTopic, "CONSUMER_GROUP="+group, "KAFKA_CREATE_TOPICS=false", "DEV_MODE=true", "LOG_LEVEL=warn")
	svc.start(t)

	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Close(context.Background()) }()
	publish := func(topic string, env envelope.Envelope) error {
		m, err := envelope.Encode(ctx, topic, "test", env)
		if err != nil {
			return err
		}
		return p.Publish(ctx, m)
	}

	// 150 checkouts; every fifth is out of stock. Each is published as its CheckedOut, its
	// stock outcome and its final discount, in a rotating order so that outcomes often
	// arrive first.
	const n = 150
	checkouts := make([]checkout, n)
	for i := range checkouts {
		checkouts[i] = checkout{cartID: fmt.Sprintf("cart-%03d", i), checkoutID: uuid.NewString(), rejected: i%5 == 0, discount: int64(i * 10)}
	}
	var published sync.WaitGroup
	publishErr := make(chan error, 1)
	published.Go(func() {
		for i, c := range checkouts {
			co := &cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: c.cartID, AggregateVersion: 1,
				Payload: &cartpb.CartEvent_CheckedOut{CheckedOut: &cartpb.CheckedOut{UserId: "kim", CheckoutId: c.checkoutID, SubtotalCents: qty * price,
					Lines: []*cartpb.CartLine{{ProductId: "mug", Quantity: qty, UnitPriceCents: price, LineTotalCents: qty * price}}}}}
			inv := &inventorypb.InventoryEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: c.cartID, AggregateVersion: 1,
				Payload: &inventorypb.InventoryEvent_StockCommitted{StockCommitted: &inventorypb.StockCommitted{CheckoutId: c.checkoutID}}}
			if c.rejected {
				inv.Payload = &inventorypb.InventoryEvent_ReservationRejected{ReservationRejected: &inventorypb.ReservationRejected{
					ProductId: "mug", Requested: qty, Available: 1, CheckoutId: c.checkoutID}}
			}
			dis := &discountpb.DiscountEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: c.cartID, AggregateVersion: 1,
				Payload: &discountpb.DiscountEvent_DiscountCalculated{DiscountCalculated: &discountpb.DiscountCalculated{
					SubtotalCents: qty * price, DiscountCents: c.discount, Final: true, CheckoutId: c.checkoutID}}}
			ins := []struct {
				topic string
				env   envelope.Envelope
			}{{cartTopic, co}, {inventoryTopic, inv}, {discountTopic, dis}}
			for k := range ins {
				in := ins[(k+i)%3]
				if err := publish(in.topic, in.env); err != nil {
					publishErr <- err
					return
				}
			}
			time.Sleep(15 * time.Millisecond) // a steady stream, not one burst
		}
	})

	// Kill the service once it is well into the stream.
	testkit.Eventually(t, 60*time.Second, "a first part of the orders decided", func() bool {
		return count(t, db, `SELECT count(*) FROM orders WHERE status <> 'pending'`) >= n/5
	})
	svc.kill(t)
	processedAtKill := count(t, db, `SELECT count(*) FROM processed_events WHERE consumer = $1`, group)
	if processedAtKill >= 3*n {
		t.Fatalf("the service had processed all %d events before it was killed: the test proves nothing", processedAtKill)
	}
	t.Logf("killed after %d of %d events", processedAtKill, 3*n)
	published.Wait()
	select {
	case err := <-publishErr:
		t.Fatalf("publish: %v", err)
	default:
	}

	svc.start(t)
	testkit.Eventually(t, 120*time.Second, "every event processed after the restart", func() bool {
		return count(t, db, `SELECT count(*) FROM processed_events WHERE consumer = $1`, group) == 3*n
	})
	testkit.Eventually(t, 30*time.Second, "every order decided", func() bool {
		return count(t, db, `SELECT count(*) FROM orders WHERE status <> 'pending'`) == n
	})

	// The database: every checkout has one order, decided as its events say.
	type row struct {
		ID       string `db:"id"`
		Checkout string `db:"checkout_id"`
		Status   string `db:"status"`
		Discount int64  `db:"discount_cents"`
		Total    int64  `db:"total_cents"`
		Version  int64  `db:"version"`
	}
	var rows []row
	if err := db.Select(&rows, `SELECT id, checkout_id, status, discount_cents, total_cents, version FROM orders`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("%d orders, want %d", len(rows), n)
	}
	byCheckout := map[string]row{}
	for _, r := range rows {
		byCheckout[r.Checkout] = r
	}
	for _, c := range checkouts {
		r, ok := byCheckout[c.checkoutID]
		want := row{ID: r.ID, Checkout: c.checkoutID, Status: "confirmed", Discount: c.discount, Total: qty*price - c.discount, Version: 2}
		if c.rejected {
			want.Status, want.Discount, want.Total = "rejected", 0, qty*price
		}
		if !ok || r != want {
			t.Errorf("checkout %s: order %+v, want %+v", c.checkoutID, r, want)
		}
	}
	if got := count(t, db, `SELECT count(*) FROM order_lines`); got != n {
		t.Errorf("%d order lines, want %d (one per order)", got, n)
	}
	// Exactly one OrderPlaced and one decision enqueued per order: nothing applied twice.
	if got := count(t, db, `SELECT count(*) FROM outbox`); got != 2*n {
		t.Errorf("%d order events enqueued, want %d", got, 2*n)
	}

	// Kafka: every order's two events arrived (at least once; counted by event id).
	seen := map[string]map[string]string{} // order id -> event id -> ce_type
	var mu sync.Mutex
	r, err := kafka.NewRunner(kafka.ConsumerConfig{Brokers: brokers, GroupID: testkit.Name("reader"), Topics: []string{orderTopic}}, p,
		func(_ context.Context, m kafka.Message) error {
			var e orderpb.OrderEvent
			if err := envelope.Decode(m, &e); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[e.GetAggregateId()] == nil {
				seen[e.GetAggregateId()] = map[string]string{}
			}
			seen[e.GetAggregateId()][e.GetEventId()] = m.Header(envelope.HeaderType)
			return nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	defer func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		_ = kafka.DeleteTopics(dctx, brokers, r.DLQTopics()...)
	}()
	complete := func() bool {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, evs := range seen {
			total += len(evs)
		}
		return len(seen) >= n && total >= 2*n
	}
	testkit.Eventually(t, 60*time.Second, "every order's two events in Kafka", complete)
	time.Sleep(300 * time.Millisecond) // anything extra would show up now
	mu.Lock()
	defer mu.Unlock()
	for _, rw := range rows {
		types := map[string]int{}
		for _, ty := range seen[rw.ID] {
			types[ty]++
		}
		decision := "order.confirmed"
		if rw.Status == "rejected" {
			decision = "order.rejected"
		}
		if len(seen[rw.ID]) != 2 || types["order.placed"] != 1 || types[decision] != 1 {
			t.Errorf("order %s: events %v, want one order.placed and one %s", rw.ID, seen[rw.ID], decision)
		}
	}
}
