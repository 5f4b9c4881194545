package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/eventshop/eventshop/e2e/demo"
	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
)

// readTopic returns every message of topic, waiting until at least want arrived.
func readTopic(t *testing.T, brokers, topic string, want int, p *kafka.Producer) []kafka.Message {
	t.Helper()
	r := testkit.ReadTopics(t, brokers, p, topic)
	testkit.Eventually(t, 60*time.Second, fmt.Sprintf("%d messages on %s", want, topic), func() bool { return r.Len() >= want })
	time.Sleep(time.Second) // anything beyond what we waited for shows up now
	return r.Messages()
}

// ceTypes returns the ce_types of the messages keyed by key, in order.
func ceTypes(msgs []kafka.Message, key string) []string {
	var out []string
	for _, m := range msgs {
		if string(m.Key) == key {
			out = append(out, m.Header(envelope.HeaderType))
		}
	}
	return out
}

func count(ts []string, ceType string) int {
	n := 0
	for _, t := range ts {
		if t == ceType {
			n++
		}
	}
	return n
}

// TestStackEndToEnd runs the four services as real processes, plays the demo scenario
// over HTTP and a second checkout over gRPC, and checks the final state of all four
// databases and the events on every topic: a confirmed order with a coupon, an order
// rejected for lack of stock, and one placed through gRPC.
func TestStackEndToEnd(t *testing.T) {
	st := stack.Start(t, stack.Options{})
	ctx := testkit.Context(t, 5*time.Minute)

	var out bytes.Buffer
	res, err := demo.Run(ctx, st.Endpoints(), st.Auth, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}

	// A third user over gRPC: add, change, check out, then read the order over gRPC.
	conn, err := grpc.NewClient(st.Services["cart"].GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	oconn, err := grpc.NewClient(st.Services["order"].GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = oconn.Close() }()
	tok, err := auth.Mint(st.Auth, "carol-grpc", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	cart := cartpb.NewCartServiceClient(conn)
	added, err := cart.AddItem(gctx, &cartpb.AddItemRequest{ProductId: "hoodie", Quantity: 1})
	if err != nil {
		t.Fatalf("gRPC AddItem: %v", err)
	}
	carolCart := added.GetCart().GetCartId()
	if _, err := cart.SetQuantity(gctx, &cartpb.SetQuantityRequest{ProductId: "hoodie", Quantity: 2}); err != nil {
		t.Fatalf("gRPC SetQuantity: %v", err)
	}
	if _, err := cart.Checkout(gctx, &cartpb.CheckoutRequest{}); err != nil {
		t.Fatalf("gRPC Checkout: %v", err)
	}
	orders := orderpb.NewOrderServiceClient(oconn)
	var carolOrder *orderpb.Order
	testkit.Eventually(t, 60*time.Second, "carol's order decided", func() bool {
		r, err := orders.ListOrders(gctx, &orderpb.ListOrdersRequest{})
		if err != nil || len(r.GetOrders()) == 0 || r.GetOrders()[0].GetStatus() == orderpb.OrderStatus_ORDER_STATUS_PENDING {
			return false
		}
		carolOrder = r.GetOrders()[0]
		return true
	})
	if carolOrder.GetStatus() != orderpb.OrderStatus_ORDER_STATUS_CONFIRMED || carolOrder.GetSubtotalCents() != 2*4900 {
		t.Fatalf("carol's order = %v", carolOrder)
	}

	// Let the relays and consumers settle, then stop everything cleanly.
	testkit.Eventually(t, 30*time.Second, "every outbox drained", func() bool {
		for _, name := range []string{"cart", "inventory", "discount", "order"} {
			var n int
			if err := st.DBs[name].Get(&n, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`); err != nil || n != 0 {
				return false
			}
		}
		return true
	})
	st.Stop(t)
	checkDatabases(t, st, res, carolCart)
	checkTopics(t, st, res, carolCart)
}

func checkDatabases(t *testing.T, st *stack.Stack, res *demo.Result, carolCart string) {
	t.Helper()
	q := func(db *sqlx.DB, dest any, query string, args ...any) {
		t.Helper()
		if err := db.Get(dest, query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	// cart: three carts, all checked out; nothing left in the outbox.
	var checkedOut int
	q(st.DBs["cart"], &checkedOut, `SELECT count(*) FROM carts WHERE status = 'checked_out' AND id::text = ANY($1)`, pqArray(res.ShopperCart, res.GreedyCart, carolCart))
	if checkedOut != 3 {
		t.Errorf("cart DB: %d of 3 carts checked out", checkedOut)
	}
	// inventory: exactly what was sold; the scarce product untouched; no reservation left.
	type stock struct {
		Available, Reserved, Sold int
	}
	want := map[string]stock{}
	for id, p := range res.StockBefore {
		want[id] = stock{int(p.GetAvailable()), int(p.GetReserved()), int(p.GetSold())}
	}
	for id, n := range map[string]int{"mug": 3, "tshirt": 1, "hoodie": 2} {
		s := want[id]
		s.Available -= n
		s.Sold += n
		want[id] = s
	}
	for id, w := range want {
		var got stock
		q(st.DBs["inventory"], &got, `SELECT available, reserved, sold FROM products WHERE product_id = $1`, id)
		if got != w {
			t.Errorf("inventory DB: %s = %+v, want %+v", id, got, w)
		}
	}
	var holds int
	q(st.DBs["inventory"], &holds, `SELECT count(*) FROM reservations`)
	if holds != 0 {
		t.Errorf("inventory DB: %d reservations left after every cart was checked out", holds)
	}
	// discount: the coupon was redeemed once.
	var used int
	q(st.DBs["discount"], &used, `SELECT used FROM rules WHERE coupon_code = $1`, demo.Coupon)
	if used != 1 {
		t.Errorf("discount DB: %s used %d times, want 1", demo.Coupon, used)
	}
	// orders: two confirmed, one rejected, totals consistent.
	var byStatus []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	if err := st.DBs["order"].Select(&byStatus, `SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status`); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(byStatus) != "[{confirmed 2} {rejected 1}]" {
		t.Errorf("orders DB: %v, want 2 confirmed and 1 rejected", byStatus)
	}
}

func pqArray(ids ...string) any { return "{" + strings.Join(ids, ",") + "}" }

func checkTopics(t *testing.T, st *stack.Stack, res *demo.Result, carolCart string) {
	t.Helper()
	p, err := kafka.NewProducer(testkit.Context(t, 30*time.Second), kafka.ProducerConfig{Brokers: st.Brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Close(context.Background()) }()

	cartMsgs := readTopic(t, st.Brokers, st.Topics[envelope.TopicCartEvents], 5+2+3, p)
	wantCart := map[string][]string{
		res.ShopperCart: {"cart.item.added", "cart.item.added", "cart.item.quantity_changed", "cart.coupon.applied", "cart.checked_out"},
		res.GreedyCart:  {"cart.item.added", "cart.checked_out"},
		carolCart:       {"cart.item.added", "cart.item.quantity_changed", "cart.checked_out"},
	}
	for cartID, want := range wantCart {
		if got := ceTypes(cartMsgs, cartID); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("cart.events.v1 for %s: %v, want %v", cartID, got, want)
		}
	}

	inv := readTopic(t, st.Brokers, st.Topics[envelope.TopicInventoryEvents], 4, p)
	if ts := ceTypes(inv, res.ShopperCart); count(ts, "inventory.stock.committed") != 1 || count(ts, "inventory.stock.reserved") < 2 {
		t.Errorf("inventory.events.v1 for the shopper: %v, want reservations then one commit", ts)
	}
	if ts := ceTypes(inv, res.GreedyCart); count(ts, "inventory.reservation.rejected") != 2 || count(ts, "inventory.stock.committed") != 0 {
		t.Errorf("inventory.events.v1 for the greedy cart: %v, want a rejection while editing and one at checkout", ts)
	}
	if ts := ceTypes(inv, carolCart); count(ts, "inventory.stock.committed") != 1 {
		t.Errorf("inventory.events.v1 for carol: %v", ts)
	}

	products := readTopic(t, st.Brokers, st.Topics[envelope.TopicProducts], 20, p)
	for _, id := range []string{"mug", "tshirt", "hoodie", "limited-print"} {
		if len(ceTypes(products, id)) == 0 {
			t.Errorf("inventory.products.v1 has no snapshot of %s", id)
		}
	}

	disc := readTopic(t, st.Brokers, st.Topics[envelope.TopicDiscountEvents], 3, p)
	if ts := ceTypes(disc, res.ShopperCart); count(ts, "discount.coupon.redeemed") != 1 || count(ts, "discount.calculated") < 2 {
		t.Errorf("discount.events.v1 for the shopper: %v, want calculations and one redemption", ts)
	}

	ord := readTopic(t, st.Brokers, st.Topics[envelope.TopicOrderEvents], 6, p)
	all := ceTypes(ord, res.ShopperOrder.GetOrderId())
	all = append(all, ceTypes(ord, res.GreedyOrder.GetOrderId())...)
	if count(all, "order.placed") != 2 || count(all, "order.confirmed") != 1 || count(all, "order.rejected") != 1 {
		t.Errorf("order.events.v1 for the demo's orders: %v, want 2 placed, 1 confirmed, 1 rejected", all)
	}
	if got := len(ord); got != 6 {
		t.Errorf("order.events.v1 holds %d events, want 6 (3 orders x placed + decided)", got)
	}
}
