package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventshop/eventshop/pkg/testkit"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
)

func ruleIDs(rules []*discountpb.Rule) []string {
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = r.GetRuleId()
	}
	return ids
}

// wantCode checks a gRPC error's code and, if field is set, its BadRequest field violation.
func wantCode(t *testing.T, what string, err error, code codes.Code, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
	if field == "" {
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 && br.GetFieldViolations()[0].GetField() == field {
			return
		}
	}
	t.Fatalf("%s: %v has no field violation on %s", what, err, field)
}

// TestAPIOverGRPCAndHTTP covers DiscountService on both transports: listing (admins see
// everything, users the public promotions), upserting by an admin (the used counter is
// kept), by a user (PermissionDenied), invalid rules (InvalidArgument naming the field), a
// taken coupon code, and a cart's discount (owner and admin only).
func TestAPIOverGRPCAndHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	in := e.start(t)
	client := grpcClient(t, in)
	cfg := e.cfg

	t.Run("list", func(t *testing.T) {
		all, err := client.ListRules(as(t, cfg, "admin"), &discountpb.ListRulesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"coupon-first3", "coupon-save10", "mug-buy2-get1", "orders-over-100", "tshirt-15-off"}
		if diff := cmp.Diff(want, ruleIDs(all.GetRules())); diff != "" {
			t.Fatalf("admin's rules (-want +got):\n%s", diff)
		}
		save10 := &discountpb.Rule{RuleId: "coupon-save10", Description: "Coupon SAVE10: 10% off", Kind: discountpb.RuleKind_RULE_KIND_COUPON,
			Percent: 10, CouponCode: "SAVE10", UsageLimit: 100, Active: true}
		if diff := cmp.Diff(save10, all.GetRules()[1], protocmp.Transform()); diff != "" {
			t.Fatalf("SAVE10 (-want +got):\n%s", diff)
		}
		public, err := client.ListRules(as(t, cfg, "alice"), &discountpb.ListRulesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"mug-buy2-get1", "orders-over-100", "tshirt-15-off"}, ruleIDs(public.GetRules())); diff != "" {
			t.Fatalf("a user's rules (-want +got):\n%s", diff)
		}
		r := httpDo(t, cfg, in, "GET", "/v1/discount/rules", "alice", nil)
		if r.Status != http.StatusOK || len(r.Body["rules"].([]any)) != 3 {
			t.Fatalf("GET /v1/discount/rules as a user = %d %s; want 200 with 3 rules", r.Status, r.Raw)
		}
		_, err = client.ListRules(as(t, cfg, ""), &discountpb.ListRulesRequest{})
		wantCode(t, "ListRules without a token", err, codes.Unauthenticated, "")
		if r := httpDo(t, cfg, in, "GET", "/v1/discount/rules", "", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("GET /v1/discount/rules without a token = %d %s; want 401", r.Status, r.Raw)
		}
	})

	t.Run("upsert by admin", func(t *testing.T) {
		expires := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
		summer := &discountpb.Rule{RuleId: "summer", Description: "Summer sale", Kind: discountpb.RuleKind_RULE_KIND_COUPON,
			Percent: 25, CouponCode: "SUMMER25", UsageLimit: 50, ExpiresAt: timestamppb.New(expires), Active: true, Used: 999}
		got, err := client.UpsertRule(as(t, cfg, "admin"), &discountpb.UpsertRuleRequest{Rule: summer})
		if err != nil {
			t.Fatal(err)
		}
		summer.Used = 0 // read-only: ignored on input
		if diff := cmp.Diff(summer, got.GetRule(), protocmp.Transform()); diff != "" {
			t.Fatalf("UpsertRule (-want +got):\n%s", diff)
		}
		if n := e.count(t, `SELECT count(*) FROM rules WHERE rule_id = 'summer' AND coupon_code = 'SUMMER25' AND used = 0 AND expires_at = $1`, expires); n != 1 {
			t.Fatal("the upserted rule is not stored")
		}

		// Replacing a coupon keeps its redemptions.
		e.exec(t, `UPDATE rules SET used = 7 WHERE rule_id = 'coupon-save10'`)
		r := httpDo(t, cfg, in, "PUT", "/v1/discount/rules/coupon-save10", "admin",
			map[string]any{"description": "SAVE10 is now 12%", "kind": "RULE_KIND_COUPON", "percent": 12, "coupon_code": "SAVE10", "usage_limit": 100, "active": true})
		if r.Status != http.StatusOK {
			t.Fatalf("PUT rule = %d %s", r.Status, r.Raw)
		}
		rule := r.Body["rule"].(map[string]any)
		if rule["percent"] != 12.0 || rule["used"] != 7.0 || rule["rule_id"] != "coupon-save10" {
			t.Fatalf("PUT rule returned %v; want percent 12 and used 7", rule)
		}
		if n := e.count(t, `SELECT count(*) FROM rules WHERE rule_id = 'coupon-save10' AND percent = 12 AND used = 7`); n != 1 {
			t.Fatal("the replaced rule is not stored with its redemptions")
		}
	})

	t.Run("upsert by a user is denied", func(t *testing.T) {
		rule := &discountpb.Rule{RuleId: "sneaky", Kind: discountpb.RuleKind_RULE_KIND_COUPON, Percent: 100, CouponCode: "FREE", Active: true}
		_, err := client.UpsertRule(as(t, cfg, "alice"), &discountpb.UpsertRuleRequest{Rule: rule})
		wantCode(t, "UpsertRule by a user", err, codes.PermissionDenied, "")
		r := httpDo(t, cfg, in, "PUT", "/v1/discount/rules/sneaky", "alice", map[string]any{"kind": "RULE_KIND_COUPON", "percent": 100, "coupon_code": "FREE", "active": true})
		if r.Status != http.StatusForbidden || r.Body["status"] != "PERMISSION_DENIED" {
			t.Fatalf("PUT rule by a user = %d %s; want 403 PERMISSION_DENIED", r.Status, r.Raw)
		}
		if n := e.count(t, `SELECT count(*) FROM rules WHERE rule_id = 'sneaky'`); n != 0 {
			t.Fatal("a user's rule was stored")
		}
	})

	t.Run("invalid rules", func(t *testing.T) {
		tests := []struct {
			name  string
			rule  *discountpb.Rule
			code  codes.Code
			field string
		}{
			{"no rule", nil, codes.InvalidArgument, "rule"},
			{"no kind", &discountpb.Rule{RuleId: "x", Percent: 10}, codes.InvalidArgument, "rule.kind"},
			{"percent over 100", &discountpb.Rule{RuleId: "x", Kind: discountpb.RuleKind_RULE_KIND_ORDER_THRESHOLD, Percent: 150}, codes.InvalidArgument, "rule.percent"},
			{"bxgy without free units", &discountpb.Rule{RuleId: "x", Kind: discountpb.RuleKind_RULE_KIND_BUY_X_GET_Y, ProductId: "mug", BuyQuantity: 2}, codes.InvalidArgument, "rule.free_quantity"},
			{"bad id", &discountpb.Rule{RuleId: "no spaces", Kind: discountpb.RuleKind_RULE_KIND_ORDER_THRESHOLD, Percent: 5}, codes.InvalidArgument, "rule.rule_id"},
			{"bad expiry", &discountpb.Rule{RuleId: "x", Kind: discountpb.RuleKind_RULE_KIND_COUPON, Percent: 5, CouponCode: "X", ExpiresAt: &timestamppb.Timestamp{Seconds: -1e13}}, codes.InvalidArgument, "rule.expires_at"},
			{"coupon code of another rule", &discountpb.Rule{RuleId: "copy", Kind: discountpb.RuleKind_RULE_KIND_COUPON, Percent: 5, CouponCode: "SAVE10"}, codes.AlreadyExists, "rule.coupon_code"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := client.UpsertRule(as(t, cfg, "admin"), &discountpb.UpsertRuleRequest{Rule: tc.rule})
				wantCode(t, "UpsertRule", err, tc.code, tc.field)
			})
		}
		r := httpDo(t, cfg, in, "PUT", "/v1/discount/rules/x", "admin", map[string]any{"kind": "RULE_KIND_PERCENT_OFF_PRODUCT", "percent": 10})
		if r.Status != http.StatusBadRequest || r.Body["field"] != "rule.product_id" {
			t.Fatalf("PUT an invalid rule = %d %s; want 400 naming rule.product_id", r.Status, r.Raw)
		}
		r = httpDo(t, cfg, in, "PUT", "/v1/discount/rules/copy", "admin", map[string]any{"kind": "RULE_KIND_COUPON", "percent": 5, "coupon_code": "SAVE10"})
		if r.Status != http.StatusConflict || r.Body["field"] != "rule.coupon_code" {
			t.Fatalf("PUT a taken coupon code = %d %s; want 409 naming rule.coupon_code", r.Status, r.Raw)
		}
		if n := e.count(t, `SELECT count(*) FROM rules WHERE rule_id IN ('x', 'copy')`); n != 0 {
			t.Fatal("an invalid rule was stored")
		}
	})

	t.Run("cart discount", func(t *testing.T) {
		c := newCart("alice")
		e.publish(t, c.add("mug", 3, 1250))
		e.out.forCart(t, c.id, 1)
		testkit.Eventually(t, 30*time.Second, "the discount stored", func() bool {
			return e.count(t, `SELECT count(*) FROM cart_discounts WHERE cart_id = $1`, c.id) == 1
		})
		want := &discountpb.GetCartDiscountResponse{CartId: c.id, SubtotalCents: 3750, DiscountCents: 1250,
			Applied: []*discountpb.AppliedRule{{RuleId: "mug-buy2-get1", Description: "Mugs: buy 2, get 1 free", AmountCents: 1250}}}
		for _, user := range []string{"alice", "admin"} {
			got, err := client.GetCartDiscount(as(t, cfg, user), &discountpb.GetCartDiscountRequest{CartId: c.id})
			if err != nil {
				t.Fatalf("GetCartDiscount as %s: %v", user, err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Fatalf("GetCartDiscount as %s (-want +got):\n%s", user, diff)
			}
		}
		r := httpDo(t, cfg, in, "GET", "/v1/discount/carts/"+c.id, "alice", nil)
		if r.Status != http.StatusOK || r.Body["discount_cents"] != "1250" || r.Body["final"] != false {
			t.Fatalf("GET cart discount = %d %s; want 200 with discount 1250, not final", r.Status, r.Raw)
		}

		_, err := client.GetCartDiscount(as(t, cfg, "bob"), &discountpb.GetCartDiscountRequest{CartId: c.id})
		wantCode(t, "another user's cart", err, codes.NotFound, "")
		_, err = client.GetCartDiscount(as(t, cfg, "alice"), &discountpb.GetCartDiscountRequest{CartId: "00000000-0000-0000-0000-000000000000"})
		wantCode(t, "an unknown cart", err, codes.NotFound, "")
		_, err = client.GetCartDiscount(as(t, cfg, "alice"), &discountpb.GetCartDiscountRequest{CartId: ""})
		wantCode(t, "no cart id", err, codes.InvalidArgument, "cart_id")
		if r := httpDo(t, cfg, in, "GET", "/v1/discount/carts/"+c.id, "bob", nil); r.Status != http.StatusNotFound {
			t.Fatalf("GET another user's cart discount = %d %s; want 404", r.Status, r.Raw)
		}
	})
}
