package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/eventshop/eventshop/pkg/testkit"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
)

func getJSON(t *testing.T, h *harness, path, bearer string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(testkit.Context(t, 20*time.Second), http.MethodGet, h.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("GET %s: %d, body %q is not JSON", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, body
}

func code(err error) codes.Code { return status.Code(err) }

func TestAPIListsAndGetsOnlyTheCallersOrders(t *testing.T) {
	h := start(t, 1)
	co1, co2, co3 := uuid.NewString(), uuid.NewString(), uuid.NewString()
	// alice's first order is confirmed; her second, placed later, is pending; bob has one.
	first := checkedOut(h, "cart-1", 1, "alice", co1, "", cartLine("mug", 2, 1250), cartLine("shirt", 1, 2000))
	h.publish(t, first, stockCommitted(h, "cart-1", 1, co1), discountCalculated(h, "cart-1", 1, co1, true, 500))
	_, id1 := h.waitDecided(t, co1)
	h.publish(t, checkedOut(h, "cart-2", 1, "alice", co2, "", cartLine("poster", 1, 999)))
	h.publish(t, checkedOut(h, "cart-3", 1, "bob", co3, "", cartLine("mug", 1, 1250)))
	var id2, id3 string
	testkit.Eventually(t, 60*time.Second, "later orders placed", func() bool {
		_, a, ok2 := h.orderOf(t, co2)
		_, b, ok3 := h.orderOf(t, co3)
		id2, id3 = a, b
		return ok2 && ok3
	})

	want1 := &orderpb.Order{OrderId: id1, UserId: "alice", CartId: "cart-1", CheckoutId: co1, Status: orderpb.OrderStatus_ORDER_STATUS_CONFIRMED,
		Lines: []*orderpb.OrderLine{
			{ProductId: "mug", Quantity: 2, UnitPriceCents: 1250, LineTotalCents: 2500},
			{ProductId: "shirt", Quantity: 1, UnitPriceCents: 2000, LineTotalCents: 2000},
		},
		SubtotalCents: 4500, DiscountCents: 500, TotalCents: 4000}
	want2 := &orderpb.Order{OrderId: id2, UserId: "alice", CartId: "cart-2", CheckoutId: co2, Status: orderpb.OrderStatus_ORDER_STATUS_PENDING,
		Lines:         []*orderpb.OrderLine{{ProductId: "poster", Quantity: 1, UnitPriceCents: 999, LineTotalCents: 999}},
		SubtotalCents: 999, TotalCents: 999}
	ignoreTimes := protocmp.IgnoreFields(&orderpb.Order{}, "created_at", "updated_at")

	t.Run("grpc", func(t *testing.T) {
		list, err := h.client.ListOrders(grpcCtx(t, h, "alice"), &orderpb.ListOrdersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*orderpb.Order{want2, want1}, list.GetOrders(), protocmp.Transform(), ignoreTimes); diff != "" {
			t.Fatalf("alice's orders, newest first (-want +got):\n%s", diff)
		}
		o := list.GetOrders()[1]
		if !o.GetCreatedAt().AsTime().Before(list.GetOrders()[0].GetCreatedAt().AsTime()) || o.GetUpdatedAt().AsTime().Before(o.GetCreatedAt().AsTime()) {
			t.Fatalf("timestamps: first created %v updated %v, second created %v", o.GetCreatedAt().AsTime(), o.GetUpdatedAt().AsTime(), list.GetOrders()[0].GetCreatedAt().AsTime())
		}
		bobs, err := h.client.ListOrders(grpcCtx(t, h, "bob"), &orderpb.ListOrdersRequest{})
		if err != nil || len(bobs.GetOrders()) != 1 || bobs.GetOrders()[0].GetOrderId() != id3 {
			t.Fatalf("bob's orders: %v, %v; want only %s", bobs.GetOrders(), err, id3)
		}
		none, err := h.client.ListOrders(grpcCtx(t, h, "erin"), &orderpb.ListOrdersRequest{})
		if err != nil || len(none.GetOrders()) != 0 {
			t.Fatalf("erin's orders: %v, %v; want none", none.GetOrders(), err)
		}

		got, err := h.client.GetOrder(grpcCtx(t, h, "alice"), &orderpb.GetOrderRequest{OrderId: id1})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want1, got.GetOrder(), protocmp.Transform(), ignoreTimes); diff != "" {
			t.Fatalf("GetOrder (-want +got):\n%s", diff)
		}
		for name, id := range map[string]string{"another user's order": id3, "an unknown order": uuid.NewString()} {
			if _, err := h.client.GetOrder(grpcCtx(t, h, "alice"), &orderpb.GetOrderRequest{OrderId: id}); code(err) != codes.NotFound {
				t.Errorf("GetOrder of %s: %v, want NotFound", name, err)
			}
		}
		_, err = h.client.GetOrder(grpcCtx(t, h, "alice"), &orderpb.GetOrderRequest{OrderId: "not-a-uuid"})
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || len(st.Details()) != 1 ||
			st.Details()[0].(*errdetails.BadRequest).GetFieldViolations()[0].GetField() != "order_id" {
			t.Errorf("GetOrder of a malformed id: %v %v, want InvalidArgument naming order_id", err, st.Details())
		}
		anonymous := testkit.Context(t, 20*time.Second)
		if _, err := h.client.ListOrders(anonymous, &orderpb.ListOrdersRequest{}); code(err) != codes.Unauthenticated {
			t.Errorf("ListOrders without a token: %v, want Unauthenticated", err)
		}
		if _, err := h.client.GetOrder(anonymous, &orderpb.GetOrderRequest{OrderId: id1}); code(err) != codes.Unauthenticated {
			t.Errorf("GetOrder without a token: %v, want Unauthenticated", err)
		}
	})

	t.Run("http", func(t *testing.T) {
		alice := token(t, h, "alice")
		st, body := getJSON(t, h, "/v1/orders", alice)
		if st != http.StatusOK {
			t.Fatalf("GET /v1/orders = %d %v", st, body)
		}
		orders, _ := body["orders"].([]any)
		var ids []string
		for _, o := range orders {
			ids = append(ids, o.(map[string]any)["order_id"].(string))
		}
		if diff := cmp.Diff([]string{id2, id1}, ids); diff != "" {
			t.Fatalf("alice's order ids, newest first (-want +got):\n%s", diff)
		}
		st, body = getJSON(t, h, "/v1/orders/"+id1, alice)
		o, _ := body["order"].(map[string]any)
		if st != http.StatusOK || o["status"] != "ORDER_STATUS_CONFIRMED" || o["total_cents"] != "4000" || o["discount_cents"] != "500" ||
			o["checkout_id"] != co1 || len(o["lines"].([]any)) != 2 {
			t.Fatalf("GET /v1/orders/%s = %d %v", id1, st, body)
		}
		if st, body := getJSON(t, h, "/v1/orders/"+id3, alice); st != http.StatusNotFound {
			t.Errorf("GET another user's order = %d %v, want 404", st, body)
		}
		if st, body := getJSON(t, h, "/v1/orders/not-a-uuid", alice); st != http.StatusBadRequest {
			t.Errorf("GET a malformed order id = %d %v, want 400", st, body)
		}
		if st, body := getJSON(t, h, "/v1/orders", ""); st != http.StatusUnauthorized {
			t.Errorf("GET /v1/orders without a token = %d %v, want 401", st, body)
		}
		if st, body := getJSON(t, h, "/v1/orders/"+id1, ""); st != http.StatusUnauthorized {
			t.Errorf("GET an order without a token = %d %v, want 401", st, body)
		}
	})
}
