// Package demo drives the seed scenario through the services' public HTTP APIs, as a
// client would: list products, fill a cart, change a quantity, apply a coupon, check out,
// then try to buy more than is in stock with a second cart. It prints what happened as
// tables and fails when the expected outcome is not reached. `make demo` runs it against
// the stack of `make up`; the end-to-end test runs it against a stack of its own.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/eventshop/eventshop/pkg/auth"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
)

// Endpoints are the services' HTTP base URLs.
type Endpoints struct {
	Cart, Inventory, Order, Discount string
}

// LocalEndpoints are those of `make up`.
var LocalEndpoints = Endpoints{
	Cart: "http://127.0.0.1:8081", Inventory: "http://127.0.0.1:8082",
	Order: "http://127.0.0.1:8083", Discount: "http://127.0.0.1:8084",
}

// Scenario products and coupon (from the inventory and discount seed migrations).
const (
	Mug     = "mug"
	TShirt  = "tshirt"
	Scarce  = "limited-print" // 5 in stock
	Coupon  = "SAVE10"
	TooMany = 6
)

// Result is what the scenario observed, for tests to assert on.
type Result struct {
	Shopper, Greedy           string // user ids
	ShopperCart, GreedyCart   string
	ShopperOrder, GreedyOrder *orderpb.Order
	ShopperDiscount           *discountpb.GetCartDiscountResponse
	StockBefore, StockAfter   map[string]*inventorypb.Product
}

// client is an HTTP/JSON client of one user.
type client struct {
	http  *http.Client
	token string
}

func (c client) call(ctx context.Context, method, url string, body string, out proto.Message) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s %s", method, url, resp.Status, bytes.TrimSpace(raw))
	}
	if out == nil {
		return nil
	}
	if err := protojson.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, url, err)
	}
	return nil
}

// Run plays the scenario. secret signs the users' tokens (the services' AUTH_JWT_SECRET,
// or the development key). Users get fresh ids so the scenario can run again and again.
func Run(ctx context.Context, ep Endpoints, authCfg auth.Config, out io.Writer) (*Result, error) {
	suffix := time.Now().UTC().Format("150405.000")
	res := &Result{Shopper: "alice-" + suffix, Greedy: "bob-" + suffix}
	hc := &http.Client{Timeout: 15 * time.Second}
	mk := func(user string) (client, error) {
		tok, err := auth.Mint(authCfg, user, time.Hour)
		return client{http: hc, token: tok}, err
	}
	alice, err := mk(res.Shopper)
	if err != nil {
		return nil, err
	}
	bob, err := mk(res.Greedy)
	if err != nil {
		return nil, err
	}

	step := func(format string, args ...any) { fmt.Fprintf(out, "- "+format+"\n", args...) }
	fmt.Fprintf(out, "eventshop demo (users %s and %s)\n\n", res.Shopper, res.Greedy)

	if res.StockBefore, err = stock(ctx, alice, ep); err != nil {
		return nil, err
	}
	step("listed %d products", len(res.StockBefore))
	for _, p := range []string{Mug, TShirt, Scarce} {
		if res.StockBefore[p] == nil {
			return nil, fmt.Errorf("product %s is not in the catalog: is the inventory seed loaded?", p)
		}
	}
	// The cart learns products and prices from inventory's snapshots, asynchronously: on a
	// stack that just started, the first AddItem may find the product unknown for a moment.
	var cart cartpb.AddItemResponse
	for deadline := time.Now().Add(60 * time.Second); ; {
		err := alice.call(ctx, http.MethodPost, ep.Cart+"/v1/cart/items", `{"product_id":"mug","quantity":2}`, &cart)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "404") || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.ShopperCart = cart.GetCart().GetCartId()
	step("%s added 2 x mug to cart %s", res.Shopper, res.ShopperCart)
	if err := alice.call(ctx, http.MethodPost, ep.Cart+"/v1/cart/items", `{"product_id":"tshirt","quantity":1}`, nil); err != nil {
		return nil, err
	}
	step("%s added 1 x tshirt", res.Shopper)
	if err := alice.call(ctx, http.MethodPut, ep.Cart+"/v1/cart/items/mug", `{"quantity":3}`, nil); err != nil {
		return nil, err
	}
	step("%s changed mug to 3", res.Shopper)
	if err := alice.call(ctx, http.MethodPost, ep.Cart+"/v1/cart/coupon", `{"coupon_code":"`+Coupon+`"}`, nil); err != nil {
		return nil, err
	}
	step("%s applied coupon %s", res.Shopper, Coupon)
	var co cartpb.CheckoutResponse
	if err := alice.call(ctx, http.MethodPost, ep.Cart+"/v1/cart/checkout", `{}`, &co); err != nil {
		return nil, err
	}
	step("%s checked out (checkout %s, subtotal %s)", res.Shopper, co.GetCheckoutId(), money(co.GetSubtotalCents()))

	var bc cartpb.AddItemResponse
	if err := bob.call(ctx, http.MethodPost, ep.Cart+"/v1/cart/items", fmt.Sprintf(`{"product_id":%q,"quantity":%d}`, Scarce, TooMany), &bc); err != nil {
		return nil, err
	}
	res.GreedyCart = bc.GetCart().GetCartId()
	step("%s added %d x %s (only %d in stock) to cart %s", res.Greedy, TooMany, Scarce, res.StockBefore[Scarce].GetAvailable(), res.GreedyCart)
	if err := bob.call(ctx, http.MethodPost, ep.Cart+"/v1/cart/checkout", `{}`, nil); err != nil {
		return nil, err
	}
	step("%s checked out", res.Greedy)

	if res.ShopperOrder, err = finalOrder(ctx, alice, ep); err != nil {
		return nil, err
	}
	if res.GreedyOrder, err = finalOrder(ctx, bob, ep); err != nil {
		return nil, err
	}
	res.ShopperDiscount = &discountpb.GetCartDiscountResponse{}
	if err := alice.call(ctx, http.MethodGet, ep.Discount+"/v1/discount/carts/"+res.ShopperCart, "", res.ShopperDiscount); err != nil {
		return nil, err
	}
	if res.StockAfter, err = stock(ctx, alice, ep); err != nil {
		return nil, err
	}
	printTables(out, res)
	return res, check(res)
}

func stock(ctx context.Context, c client, ep Endpoints) (map[string]*inventorypb.Product, error) {
	var list inventorypb.ListProductsResponse
	if err := c.call(ctx, http.MethodGet, ep.Inventory+"/v1/products", "", &list); err != nil {
		return nil, err
	}
	m := map[string]*inventorypb.Product{}
	for _, p := range list.GetProducts() {
		m[p.GetProductId()] = p
	}
	return m, nil
}

func finalOrder(ctx context.Context, c client, ep Endpoints) (*orderpb.Order, error) {
	deadline := time.Now().Add(90 * time.Second)
	for {
		var list orderpb.ListOrdersResponse
		if err := c.call(ctx, http.MethodGet, ep.Order+"/v1/orders", "", &list); err != nil {
			return nil, err
		}
		if len(list.GetOrders()) > 0 && list.GetOrders()[0].GetStatus() != orderpb.OrderStatus_ORDER_STATUS_PENDING {
			return list.GetOrders()[0], nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no final order after 90s (orders: %v)", list.GetOrders())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func money(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func printTables(out io.Writer, r *Result) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(out, "\nStock")
	fmt.Fprintln(tw, "product\tavailable before\tavailable after\treserved after\tsold after")
	for _, id := range []string{Mug, TShirt, Scarce} {
		b, a := r.StockBefore[id], r.StockAfter[id]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", id, b.GetAvailable(), a.GetAvailable(), a.GetReserved(), a.GetSold())
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "\nDiscount")
	fmt.Fprintln(tw, "cart\tsubtotal\tdiscount\tcoupon\tfinal\trules")
	d := r.ShopperDiscount
	var rules []string
	for _, a := range d.GetApplied() {
		rules = append(rules, fmt.Sprintf("%s (-%s)", a.GetDescription(), money(a.GetAmountCents())))
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", r.ShopperCart, money(d.GetSubtotalCents()), money(d.GetDiscountCents()), d.GetCouponCode(), d.GetFinal(), strings.Join(rules, "; "))
	_ = tw.Flush()
	fmt.Fprintln(out, "\nOrders")
	fmt.Fprintln(tw, "user\torder\tstatus\tsubtotal\tdiscount\ttotal\treason")
	for _, o := range []*orderpb.Order{r.ShopperOrder, r.GreedyOrder} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.GetUserId(), o.GetOrderId(), strings.TrimPrefix(o.GetStatus().String(), "ORDER_STATUS_"),
			money(o.GetSubtotalCents()), money(o.GetDiscountCents()), money(o.GetTotalCents()), o.GetReason())
	}
	_ = tw.Flush()
}

// check compares the outcome with the scenario's expectations.
func check(r *Result) error {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	o := r.ShopperOrder
	if o.GetStatus() != orderpb.OrderStatus_ORDER_STATUS_CONFIRMED {
		fail("%s's order is %s (%s), want CONFIRMED", r.Shopper, o.GetStatus(), o.GetReason())
	}
	if o.GetSubtotalCents() != 3*r.StockBefore[Mug].GetPriceCents()+r.StockBefore[TShirt].GetPriceCents() {
		fail("%s's order subtotal %d, want 3 mugs + 1 tshirt", r.Shopper, o.GetSubtotalCents())
	}
	if o.GetDiscountCents() <= 0 || o.GetDiscountCents() != r.ShopperDiscount.GetDiscountCents() || !r.ShopperDiscount.GetFinal() {
		fail("%s's discount: order %d, discount service %d (final %v); want the same positive final figure", r.Shopper, o.GetDiscountCents(), r.ShopperDiscount.GetDiscountCents(), r.ShopperDiscount.GetFinal())
	}
	if o.GetTotalCents() != o.GetSubtotalCents()-o.GetDiscountCents() {
		fail("%s's total %d != subtotal %d - discount %d", r.Shopper, o.GetTotalCents(), o.GetSubtotalCents(), o.GetDiscountCents())
	}
	if g := r.GreedyOrder; g.GetStatus() != orderpb.OrderStatus_ORDER_STATUS_REJECTED {
		fail("%s's order is %s, want REJECTED for lack of stock", r.Greedy, g.GetStatus())
	}
	if got, want := r.StockAfter[Mug].GetSold()-r.StockBefore[Mug].GetSold(), int32(3); got != want {
		fail("mugs sold went up by %d, want %d", got, want)
	}
	if got, want := r.StockAfter[TShirt].GetSold()-r.StockBefore[TShirt].GetSold(), int32(1); got != want {
		fail("tshirts sold went up by %d, want %d", got, want)
	}
	if b, a := r.StockBefore[Scarce], r.StockAfter[Scarce]; a.GetSold() != b.GetSold() || a.GetAvailable()+a.GetReserved() != b.GetAvailable()+b.GetReserved() {
		fail("%s stock changed by a rejected checkout: before %v, after %v", Scarce, b, a)
	}
	if len(errs) > 0 {
		return fmt.Errorf("demo: expected outcome not reached:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}
