package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// flow runs add, add, change, remove, coupon, checkout and returns the cart id and the
// checkout id.
type flow interface {
	add(product string, qty int32) (cartID string)
	setQty(product string, qty int32)
	remove(product string)
	coupon(code string)
	checkout() (checkoutID string, subtotal int64)
}

type grpcFlow struct {
	t    *testing.T
	h    *harness
	user string
}

func (f grpcFlow) add(p string, q int32) string {
	r, err := f.h.client.AddItem(grpcCtx(f.t, f.h, f.user), &cartpb.AddItemRequest{ProductId: p, Quantity: q})
	if err != nil {
		f.t.Fatalf("AddItem: %v", err)
	}
	return r.GetCart().GetCartId()
}

func (f grpcFlow) setQty(p string, q int32) {
	if _, err := f.h.client.SetQuantity(grpcCtx(f.t, f.h, f.user), &cartpb.SetQuantityRequest{ProductId: p, Quantity: q}); err != nil {
		f.t.Fatalf("SetQuantity: %v", err)
	}
}

func (f grpcFlow) remove(p string) {
	if _, err := f.h.client.RemoveItem(grpcCtx(f.t, f.h, f.user), &cartpb.RemoveItemRequest{ProductId: p}); err != nil {
		f.t.Fatalf("RemoveItem: %v", err)
	}
}

func (f grpcFlow) coupon(c string) {
	if _, err := f.h.client.ApplyCoupon(grpcCtx(f.t, f.h, f.user), &cartpb.ApplyCouponRequest{CouponCode: c}); err != nil {
		f.t.Fatalf("ApplyCoupon: %v", err)
	}
}

func (f grpcFlow) checkout() (string, int64) {
	r, err := f.h.client.Checkout(grpcCtx(f.t, f.h, f.user), &cartpb.CheckoutRequest{})
	if err != nil {
		f.t.Fatalf("Checkout: %v", err)
	}
	return r.GetCheckoutId(), r.GetSubtotalCents()
}

type httpFlow struct {
	t    *testing.T
	h    *harness
	user string
}

func (f httpFlow) call(method, path string, body any) httpResult {
	r := f.h.do(f.t, method, path, "Bearer "+token(f.t, f.h, f.user), body)
	if r.Status != http.StatusOK {
		f.t.Fatalf("%s %s = %d %s", method, path, r.Status, r.Raw)
	}
	return r
}

func (f httpFlow) add(p string, q int32) string {
	r := f.call("POST", "/v1/cart/items", map[string]any{"product_id": p, "quantity": q})
	return r.Body["cart"].(map[string]any)["cart_id"].(string)
}
func (f httpFlow) setQty(p string, q int32) {
	f.call("PUT", "/v1/cart/items/"+p, map[string]any{"quantity": q})
}
func (f httpFlow) remove(p string) { f.call("DELETE", "/v1/cart/items/"+p, nil) }
func (f httpFlow) coupon(c string) {
	f.call("POST", "/v1/cart/coupon", map[string]any{"coupon_code": c})
}
func (f httpFlow) checkout() (string, int64) {
	r := f.call("POST", "/v1/cart/checkout", map[string]any{})
	var sub int64
	_, _ = fmt.Sscan(fmt.Sprint(r.Body["subtotal_cents"]), &sub)
	return r.Body["checkout_id"].(string), sub
}

func TestCommandsProduceExpectedEvents(t *testing.T) {
	h := start(t)
	for name, f := range map[string]flow{
		"grpc": grpcFlow{t, h, "alice"},
		"http": httpFlow{t, h, "bob"},
	} {
		t.Run(name, func(t *testing.T) {
			cartID := f.add("mug", 2)
			if again := f.add("shirt", 1); again != cartID {
				t.Fatalf("second add went to cart %s, want %s", again, cartID)
			}
			f.setQty("mug", 3)
			f.remove("shirt")
			f.coupon("SAVE10")
			checkoutID, subtotal := f.checkout()
			if subtotal != 3*1250 {
				t.Fatalf("checkout subtotal %d, want %d", subtotal, 3*1250)
			}

			evs, msgs := h.reader.forCart(t, cartID, 6)
			wantTypes := []string{"cart.item.added", "cart.item.added", "cart.item.quantity_changed", "cart.item.removed", "cart.coupon.applied", "cart.checked_out"}
			if len(evs) != len(wantTypes) {
				t.Fatalf("%d events for cart %s, want %d", len(evs), cartID, len(wantTypes))
			}
			for i, e := range evs {
				m := msgs[i]
				if got := m.Header(envelope.HeaderType); got != wantTypes[i] {
					t.Errorf("event %d ce_type %q, want %q", i, got, wantTypes[i])
				}
				if e.GetAggregateVersion() != int64(i+1) {
					t.Errorf("event %d version %d, want %d", i, e.GetAggregateVersion(), i+1)
				}
				if string(m.Key) != cartID || e.GetAggregateId() != cartID || m.Header("ce_id") != e.GetEventId() ||
					m.Header("ce_source") != "eventshop/cart" || m.Header("content-type") != "application/protobuf" || m.Header("ce_specversion") != "1.0" {
					t.Errorf("event %d key/headers wrong: key %q headers %v", i, m.Key, m.Headers)
				}
			}
			if a := evs[0].GetItemAdded(); a.GetProductId() != "mug" || a.GetQuantity() != 2 || a.GetUnitPriceCents() != 1250 {
				t.Errorf("first ItemAdded = %v", a)
			}
			if q := evs[2].GetItemQuantityChanged(); q.GetOldQuantity() != 2 || q.GetNewQuantity() != 3 {
				t.Errorf("ItemQuantityChanged = %v", q)
			}
			co := evs[5].GetCheckedOut()
			if co.GetCheckoutId() != checkoutID || co.GetSubtotalCents() != 3750 || co.GetCouponCode() != "SAVE10" ||
				len(co.GetLines()) != 1 || co.GetLines()[0].GetProductId() != "mug" || co.GetLines()[0].GetLineTotalCents() != 3750 {
				t.Errorf("CheckedOut snapshot = %v", co)
			}
			// After checkout the next AddItem starts a new cart at version 1.
			next := f.add("poster", 1)
			if next == cartID {
				t.Fatal("AddItem after checkout reused the checked-out cart")
			}
			nevs, _ := h.reader.forCart(t, next, 1)
			if nevs[0].GetAggregateVersion() != 1 {
				t.Fatalf("new cart's first event version %d", nevs[0].GetAggregateVersion())
			}
		})
	}
}

func TestConcurrentAddsToOneCartSerialize(t *testing.T) {
	h := start(t)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := h.client.AddItem(grpcCtx(t, h, "carol"), &cartpb.AddItemRequest{ProductId: "mug", Quantity: 1})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("AddItem: %v", err)
		}
	}
	got, err := h.client.GetCart(grpcCtx(t, h, "carol"), &cartpb.GetCartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c := got.GetCart()
	if len(c.GetLines()) != 1 || c.GetLines()[0].GetQuantity() != n || c.GetVersion() != n {
		t.Fatalf("cart after %d concurrent adds: %v", n, c)
	}
	evs, _ := h.reader.forCart(t, c.GetCartId(), n)
	if len(evs) != n {
		t.Fatalf("%d events, want %d (one per command)", len(evs), n)
	}
	for i, e := range evs {
		if e.GetAggregateVersion() != int64(i+1) || e.GetItemAdded().GetLineQuantity() != int32(i+1) {
			t.Fatalf("event %d: version %d line quantity %d; want consecutive", i, e.GetAggregateVersion(), e.GetItemAdded().GetLineQuantity())
		}
	}
}

func TestIdempotencyKeyYieldsOneChangeAndOneEvent(t *testing.T) {
	h := start(t)
	bearer := "Bearer " + token(t, h, "dave")
	first := h.do(t, "POST", "/v1/cart/items", bearer, `{"product_id":"mug","quantity":1}`, "Idempotency-Key", "add-1")
	second := h.do(t, "POST", "/v1/cart/items", bearer, `{"product_id":"mug","quantity":1}`, "Idempotency-Key", "add-1")
	if first.Status != 200 || second.Status != 200 || first.Raw != second.Raw {
		t.Fatalf("retry with the same key: %d %s / %d %s", first.Status, first.Raw, second.Status, second.Raw)
	}
	// Over gRPC, with the key as metadata, too.
	if _, err := h.client.AddItem(grpcCtx(t, h, "dave", "idempotency-key", "add-1"), &cartpb.AddItemRequest{ProductId: "mug", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	reused := h.do(t, "POST", "/v1/cart/items", bearer, `{"product_id":"mug","quantity":5}`, "Idempotency-Key", "add-1")
	if reused.Status != 400 || reused.Body["field"] != "Idempotency-Key" {
		t.Fatalf("same key, different request = %d %s; want 400 naming Idempotency-Key", reused.Status, reused.Raw)
	}

	c1 := h.do(t, "POST", "/v1/cart/checkout", bearer, `{}`, "Idempotency-Key", "co-1")
	c2 := h.do(t, "POST", "/v1/cart/checkout", bearer, `{}`, "Idempotency-Key", "co-1")
	if c1.Status != 200 || c1.Raw != c2.Raw {
		t.Fatalf("checkout retried: %d %s / %d %s", c1.Status, c1.Raw, c2.Status, c2.Raw)
	}
	cartID := c1.Body["cart"].(map[string]any)["cart_id"].(string)
	evs, _ := h.reader.forCart(t, cartID, 2)
	if len(evs) != 2 || evs[0].GetItemAdded().GetLineQuantity() != 1 || evs[1].GetCheckedOut() == nil {
		t.Fatalf("events %v; want exactly one ItemAdded (quantity 1) and one CheckedOut", evs)
	}
}

func TestBadRequestsGetClearErrorsAndChangeNothing(t *testing.T) {
	h := start(t)
	good := "Bearer " + token(t, h, "erin")
	expired := func() string {
		tok, err := mintExpired(h)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}()
	tests := []struct {
		name, method, path, bearer string
		body                       any
		status                     int
		field                      string
	}{
		{"zero quantity", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":0}`, 400, "quantity"},
		{"negative quantity", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":-3}`, 400, "quantity"},
		{"huge quantity", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":100}`, 400, "quantity"},
		{"beyond int32", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":99999999999}`, 400, "body"},
		{"non-integer quantity", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":1.5}`, 400, "body"},
		{"quantity as text", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":"two"}`, 400, "body"},
		{"missing product", "POST", "/v1/cart/items", good, `{"quantity":1}`, 400, "product_id"},
		{"missing quantity", "POST", "/v1/cart/items", good, `{"product_id":"mug"}`, 400, "quantity"},
		{"unknown product", "POST", "/v1/cart/items", good, `{"product_id":"unicorn","quantity":1}`, 404, "product_id"},
		{"client-sent price", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":1,"unit_price_cents":1}`, 400, "body"},
		{"product id wrong type", "POST", "/v1/cart/items", good, `{"product_id":7,"quantity":1}`, 400, "body"},
		{"malformed json", "POST", "/v1/cart/items", good, `{"product_id":`, 400, "body"},
		{"unicode product id", "POST", "/v1/cart/items", good, `{"product_id":"tasse-café","quantity":1}`, 400, "product_id"},
		{"over-long product id", "POST", "/v1/cart/items", good, `{"product_id":"` + strings.Repeat("x", 65) + `","quantity":1}`, 400, "product_id"},
		{"oversized body", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":1,"pad":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "body"},
		{"bad coupon", "POST", "/v1/cart/coupon", good, `{"coupon_code":"save 10!"}`, 400, "coupon_code"},
		{"over-long idempotency key", "POST", "/v1/cart/items", good, `{"product_id":"mug","quantity":1}`, 400, "Idempotency-Key"},
		{"set quantity of absent line", "PUT", "/v1/cart/items/mug", good, `{"quantity":2}`, 404, "product_id"},
		{"remove absent line", "DELETE", "/v1/cart/items/mug", good, nil, 404, "product_id"},
		{"empty checkout", "POST", "/v1/cart/checkout", good, `{}`, 409, ""},
		{"no token", "POST", "/v1/cart/items", "", `{"product_id":"mug","quantity":1}`, 401, ""},
		{"not a bearer token", "POST", "/v1/cart/items", "Basic YWxpY2U6cHc=", `{"product_id":"mug","quantity":1}`, 401, ""},
		{"garbage token", "POST", "/v1/cart/items", "Bearer not.a.jwt", `{"product_id":"mug","quantity":1}`, 401, ""},
		{"expired token", "POST", "/v1/cart/items", expired, `{"product_id":"mug","quantity":1}`, 401, ""},
		{"wrongly signed token", "POST", "/v1/cart/items", "Bearer " + mintWithKey(t, "another-secret-that-is-long-enough-1234", "erin"), `{"product_id":"mug","quantity":1}`, 401, ""},
		{"unknown route", "GET", "/v1/nope", good, nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.field == "Idempotency-Key" {
				hdr = []string{"Idempotency-Key", strings.Repeat("k", 65)}
			}
			r := h.do(t, tt.method, tt.path, tt.bearer, tt.body, hdr...)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d (body %s)", r.Status, tt.status, r.Raw)
			}
			if r.Body["message"] == nil || r.Body["message"] == "" {
				t.Fatalf("error body has no message: %s", r.Raw)
			}
			if tt.field != "" && r.Body["field"] != tt.field {
				t.Fatalf("error names field %v, want %q (body %s)", r.Body["field"], tt.field, r.Raw)
			}
		})
	}

	// Over gRPC: the matching codes.
	grpcTests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"zero quantity", func() error {
			_, err := h.client.AddItem(grpcCtx(t, h, "erin"), &cartpb.AddItemRequest{ProductId: "mug", Quantity: 0})
			return err
		}, codes.InvalidArgument},
		{"unknown product", func() error {
			_, err := h.client.AddItem(grpcCtx(t, h, "erin"), &cartpb.AddItemRequest{ProductId: "unicorn", Quantity: 1})
			return err
		}, codes.NotFound},
		{"empty checkout", func() error {
			_, err := h.client.Checkout(grpcCtx(t, h, "erin"), &cartpb.CheckoutRequest{})
			return err
		}, codes.FailedPrecondition},
		{"no token", func() error {
			_, err := h.client.GetCart(testkit.Context(t, 5*time.Second), &cartpb.GetCartRequest{})
			return err
		}, codes.Unauthenticated},
	}
	for _, tt := range grpcTests {
		t.Run("grpc "+tt.name, func(t *testing.T) {
			err := tt.call()
			if st := status.Convert(err); st.Code() != tt.code || st.Message() == "" {
				t.Fatalf("got %v, want %v with a message", err, tt.code)
			}
		})
	}

	// Nothing was written and nothing published.
	var carts, rows int
	if err := h.db.Get(&carts, `SELECT count(*) FROM carts`); err != nil {
		t.Fatal(err)
	}
	if err := h.db.Get(&rows, `SELECT count(*) FROM outbox`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if carts != 0 || rows != 0 || h.reader.count() != 0 {
		t.Fatalf("bad requests left %d carts, %d outbox rows, %d Kafka messages; want none", carts, rows, h.reader.count())
	}
}

func TestUsersOnlySeeTheirOwnCart(t *testing.T) {
	h := start(t)
	if _, err := h.client.AddItem(grpcCtx(t, h, "frank"), &cartpb.AddItemRequest{ProductId: "mug", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	other, err := h.client.GetCart(grpcCtx(t, h, "grace"), &cartpb.GetCartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(other.GetCart().GetLines()) != 0 || other.GetCart().GetUserId() != "grace" {
		t.Fatalf("grace sees %v", other.GetCart())
	}
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	h := start(t)
	r := h.do(t, "GET", "/openapi.json", "", nil)
	if r.Status != 200 || !strings.Contains(r.Raw, "/v1/cart/items") {
		t.Fatalf("GET /openapi.json = %d %.200s", r.Status, r.Raw)
	}
}
