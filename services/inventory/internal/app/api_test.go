package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/testkit"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
)

func bearer(t *testing.T, h *harness, user string) string {
	t.Helper()
	tok, err := auth.Mint(h.cfg.AuthConfig(), user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

func asUser(t *testing.T, h *harness, user string) context.Context {
	return metadata.AppendToOutgoingContext(testkit.Context(t, 20*time.Second), "authorization", bearer(t, h, user))
}

type httpResult struct {
	status int
	body   map[string]any
	raw    string
}

func (in *instance) do(t *testing.T, method, path, authz, body string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(testkit.Context(t, 20*time.Second), method, in.http+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(resp.Body)
	r := httpResult{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// product reads a product from an HTTP response body ({"product": {...}}).
func product(t *testing.T, r httpResult) map[string]any {
	t.Helper()
	p, ok := r.body["product"].(map[string]any)
	if !ok {
		t.Fatalf("no product in %s", r.raw)
	}
	return p
}

// TestAPIOverGRPCAndHTTP lists, gets, restocks and reprices products over both
// transports, checks that only administrators may change products and that bad input
// names its field, and that every change is announced as a new product snapshot.
func TestAPIOverGRPCAndHTTP(t *testing.T) {
	h := newHarness(t, nil)
	in := h.start(t)
	admin, alice := bearer(t, h, "admin"), bearer(t, h, "alice")

	t.Run("grpc list and get", func(t *testing.T) {
		list, err := in.client.ListProducts(asUser(t, h, "alice"), &inventorypb.ListProductsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		ps := list.GetProducts()
		if len(ps) != 20 {
			t.Fatalf("%d products, want the 20 of the seed catalog", len(ps))
		}
		for i := 1; i < len(ps); i++ {
			if ps[i-1].GetProductId() >= ps[i].GetProductId() {
				t.Fatalf("products not ordered by id: %s before %s", ps[i-1].GetProductId(), ps[i].GetProductId())
			}
		}
		got, err := in.client.GetProduct(asUser(t, h, "alice"), &inventorypb.GetProductRequest{ProductId: "limited-print"})
		if err != nil {
			t.Fatal(err)
		}
		want := &inventorypb.Product{ProductId: "limited-print", Name: "Signed Limited Print", PriceCents: 12000, Available: 5}
		if got.GetProduct().String() != want.String() {
			t.Fatalf("GetProduct = %v, want %v", got.GetProduct(), want)
		}
	})

	t.Run("grpc restock and price by admin", func(t *testing.T) {
		r, err := in.client.Restock(asUser(t, h, "admin"), &inventorypb.RestockRequest{ProductId: "mug", Quantity: 10})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetProduct().GetAvailable() != 210 {
			t.Fatalf("after restock: %v, want 210 available", r.GetProduct())
		}
		p, err := in.client.UpdatePrice(asUser(t, h, "admin"), &inventorypb.UpdatePriceRequest{ProductId: "mug", PriceCents: 1500})
		if err != nil {
			t.Fatal(err)
		}
		if p.GetProduct().GetPriceCents() != 1500 || p.GetProduct().GetAvailable() != 210 {
			t.Fatalf("after price change: %v", p.GetProduct())
		}
		// Setting the same price again changes nothing and announces nothing.
		if _, err := in.client.UpdatePrice(asUser(t, h, "admin"), &inventorypb.UpdatePriceRequest{ProductId: "mug", PriceCents: 1500}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"v1 available 200 price 1250", "v2 available 210 price 1250", "v3 available 210 price 1500"},
			h.snapshots(t, "mug")); diff != "" {
			t.Fatalf("mug snapshots (-want +got):\n%s", diff)
		}
	})

	t.Run("http list, get, restock", func(t *testing.T) {
		r := in.do(t, "GET", "/v1/products", alice, "")
		if ps, _ := r.body["products"].([]any); r.status != 200 || len(ps) != 20 {
			t.Fatalf("GET /v1/products = %d %s", r.status, r.raw)
		}
		r = in.do(t, "GET", "/v1/products/pen", alice, "")
		if p := product(t, r); r.status != 200 || p["name"] != "Gel Pen" || p["available"] != float64(1000) {
			t.Fatalf("GET /v1/products/pen = %d %s", r.status, r.raw)
		}
		r = in.do(t, "POST", "/v1/products/pen/restock", admin, `{"quantity":25}`)
		if p := product(t, r); r.status != 200 || p["available"] != float64(1025) {
			t.Fatalf("restock = %d %s", r.status, r.raw)
		}
		r = in.do(t, "PUT", "/v1/products/pen/price", admin, `{"price_cents":300}`)
		if p := product(t, r); r.status != 200 || p["price_cents"] != "300" {
			t.Fatalf("price = %d %s", r.status, r.raw)
		}
		if diff := cmp.Diff([]string{"v1 available 1000 price 250", "v2 available 1025 price 250", "v3 available 1025 price 300"},
			h.snapshots(t, "pen")); diff != "" {
			t.Fatalf("pen snapshots (-want +got):\n%s", diff)
		}
	})

	t.Run("errors", func(t *testing.T) {
		before := h.count(t, `SELECT count(*) FROM outbox`)
		grpcTests := []struct {
			name  string
			call  func() error
			code  codes.Code
			field string
		}{
			{"restock by non-admin", func() error {
				_, err := in.client.Restock(asUser(t, h, "alice"), &inventorypb.RestockRequest{ProductId: "mug", Quantity: 1})
				return err
			}, codes.PermissionDenied, ""},
			{"price by non-admin", func() error {
				_, err := in.client.UpdatePrice(asUser(t, h, "alice"), &inventorypb.UpdatePriceRequest{ProductId: "mug", PriceCents: 1})
				return err
			}, codes.PermissionDenied, ""},
			{"zero quantity", func() error {
				_, err := in.client.Restock(asUser(t, h, "admin"), &inventorypb.RestockRequest{ProductId: "mug", Quantity: 0})
				return err
			}, codes.InvalidArgument, "quantity"},
			{"negative price", func() error {
				_, err := in.client.UpdatePrice(asUser(t, h, "admin"), &inventorypb.UpdatePriceRequest{ProductId: "mug", PriceCents: -5})
				return err
			}, codes.InvalidArgument, "price_cents"},
			{"unknown product", func() error {
				_, err := in.client.GetProduct(asUser(t, h, "alice"), &inventorypb.GetProductRequest{ProductId: "unicorn"})
				return err
			}, codes.NotFound, "product_id"},
			{"restock unknown product", func() error {
				_, err := in.client.Restock(asUser(t, h, "admin"), &inventorypb.RestockRequest{ProductId: "unicorn", Quantity: 1})
				return err
			}, codes.NotFound, "product_id"},
			{"no token", func() error {
				_, err := in.client.ListProducts(testkit.Context(t, 5*time.Second), &inventorypb.ListProductsRequest{})
				return err
			}, codes.Unauthenticated, ""},
		}
		for _, tt := range grpcTests {
			t.Run("grpc "+tt.name, func(t *testing.T) {
				st := status.Convert(tt.call())
				if st.Code() != tt.code || st.Message() == "" {
					t.Fatalf("got %v, want %v with a message", st, tt.code)
				}
				if tt.field != "" && !strings.HasPrefix(st.Message(), tt.field+":") {
					t.Fatalf("message %q should name field %s", st.Message(), tt.field)
				}
			})
		}
		httpTests := []struct {
			name, method, path, authz, body string
			status                          int
			field                           string
		}{
			{"restock by non-admin", "POST", "/v1/products/mug/restock", alice, `{"quantity":5}`, 403, ""},
			{"zero quantity", "POST", "/v1/products/mug/restock", admin, `{"quantity":0}`, 400, "quantity"},
			{"huge quantity", "POST", "/v1/products/mug/restock", admin, `{"quantity":100001}`, 400, "quantity"},
			{"quantity as text", "POST", "/v1/products/mug/restock", admin, `{"quantity":"ten"}`, 400, "body"},
			{"price too high", "PUT", "/v1/products/mug/price", admin, `{"price_cents":100000001}`, 400, "price_cents"},
			{"bad product id", "GET", "/v1/products/caf%C3%A9", alice, "", 400, "product_id"},
			{"unknown product", "GET", "/v1/products/unicorn", alice, "", 404, "product_id"},
			{"no token", "GET", "/v1/products", "", "", 401, ""},
		}
		for _, tt := range httpTests {
			t.Run("http "+tt.name, func(t *testing.T) {
				r := in.do(t, tt.method, tt.path, tt.authz, tt.body)
				if r.status != tt.status || r.body["message"] == nil {
					t.Fatalf("status %d, want %d with a message (body %s)", r.status, tt.status, r.raw)
				}
				if tt.field != "" && r.body["field"] != tt.field {
					t.Fatalf("error names field %v, want %q (body %s)", r.body["field"], tt.field, r.raw)
				}
			})
		}
		if after := h.count(t, `SELECT count(*) FROM outbox`); after != before {
			t.Fatalf("rejected requests enqueued %d events", after-before)
		}
		if got := h.stock(t, "mug"); got.Available != 210 {
			t.Fatalf("rejected requests changed mug: %+v", got)
		}
	})
}

// TestStartupAnnouncesEveryProductOnce checks that a fresh start publishes a snapshot of
// each seed product, and that a restart publishes none again.
func TestStartupAnnouncesEveryProductOnce(t *testing.T) {
	h := newHarness(t, nil)
	first := h.start(t)
	if n := h.count(t, `SELECT count(*) FROM outbox WHERE topic = $1`, h.cfg.ProductsTopic); n != 20 {
		t.Fatalf("%d snapshots enqueued at start-up, want 20", n)
	}
	testkit.Eventually(t, 60*time.Second, "20 snapshots in the products topic", func() bool { return len(h.products.all()) >= 20 })
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	h.start(t)
	if n := h.count(t, `SELECT count(*) FROM outbox WHERE topic = $1`, h.cfg.ProductsTopic); n != 20 {
		t.Fatalf("%d snapshots enqueued after a restart, want still 20", n)
	}
	if diff := cmp.Diff([]string{"v1 available 5 price 12000"}, h.snapshots(t, "limited-print")); diff != "" {
		t.Fatalf("limited-print snapshots (-want +got):\n%s", diff)
	}
}
