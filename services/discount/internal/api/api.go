// Package api translates DiscountService gRPC calls (and, through grpc-gateway, HTTP/JSON
// calls) to the discount rules and the store, and their errors to status codes.
package api

import (
	"context"
	"errors"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/server"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	"github.com/eventshop/eventshop/services/discount/internal/discount"
	"github.com/eventshop/eventshop/services/discount/internal/store"
)

// Server implements discountpb.DiscountServiceServer.
type Server struct {
	discountpb.UnimplementedDiscountServiceServer
	st     *store.PG
	admins map[string]bool
}

var _ discountpb.DiscountServiceServer = (*Server)(nil)

// New returns the API over st; admins are the user ids allowed to change rules.
func New(st *store.PG, admins []string) *Server {
	s := &Server{st: st, admins: map[string]bool{}}
	for _, a := range admins {
		if a = strings.TrimSpace(a); a != "" {
			s.admins[a] = true
		}
	}
	return s
}

var (
	errNotAdmin    = errors.New("only administrators may change discount rules")
	errRuleMissing = &discount.FieldError{Field: "rule", Msg: "is required"}
	errBadExpiry   = &discount.FieldError{Field: "rule.expires_at", Msg: "is not a valid timestamp"}
)

// caller returns the authenticated user and whether they are an administrator.
func (s *Server) caller(ctx context.Context) (string, bool, error) {
	id, ok := auth.UserID(ctx)
	if !ok {
		return "", false, status.Error(codes.Unauthenticated, "missing bearer token")
	}
	return id, s.admins[id], nil
}

// ListRules returns the rules ordered by id. Coupon rules and inactive rules are shown to
// administrators only: a coupon code is a secret handed out, not a public promotion.
func (s *Server) ListRules(ctx context.Context, _ *discountpb.ListRulesRequest) (*discountpb.ListRulesResponse, error) {
	_, admin, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	rules, err := s.st.Rules(ctx, s.st.DB())
	if err != nil {
		return nil, toStatus(err)
	}
	if !admin {
		rules = slices.DeleteFunc(rules, func(r discount.Rule) bool { return r.Kind == discount.Coupon || !r.Active })
	}
	out := &discountpb.ListRulesResponse{Rules: make([]*discountpb.Rule, len(rules))}
	for i, r := range rules {
		out.Rules[i] = toProto(r)
	}
	return out, nil
}

// UpsertRule creates or replaces a rule (administrators only).
func (s *Server) UpsertRule(ctx context.Context, req *discountpb.UpsertRuleRequest) (*discountpb.UpsertRuleResponse, error) {
	_, admin, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if !admin {
		return nil, toStatus(errNotAdmin)
	}
	r, err := fromProto(req.GetRule())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := r.Validate(); err != nil {
		return nil, toStatus(err)
	}
	stored, err := s.st.UpsertRule(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	return &discountpb.UpsertRuleResponse{Rule: toProto(stored)}, nil
}

// GetCartDiscount returns the discount last published for a cart. A user sees only their
// own carts (another's is NotFound, like an unknown one); administrators see every cart.
func (s *Server) GetCartDiscount(ctx context.Context, req *discountpb.GetCartDiscountRequest) (*discountpb.GetCartDiscountResponse, error) {
	uid, admin, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := discount.ValidateID("cart_id", req.GetCartId()); err != nil {
		return nil, toStatus(err)
	}
	d, err := s.st.CartDiscount(ctx, s.st.DB(), req.GetCartId())
	if err != nil {
		return nil, toStatus(err)
	}
	if d.UserID != uid && !admin {
		return nil, toStatus(store.ErrNotFound)
	}
	out := &discountpb.GetCartDiscountResponse{
		CartId: d.CartID, SubtotalCents: d.Result.SubtotalCents, DiscountCents: d.Result.DiscountCents,
		CouponCode: d.CartCoupon, Final: d.Final, Applied: make([]*discountpb.AppliedRule, len(d.Result.Applied)),
	}
	for i, a := range d.Result.Applied {
		out.Applied[i] = &discountpb.AppliedRule{RuleId: a.RuleID, Description: a.Description, AmountCents: a.AmountCents}
	}
	return out, nil
}

// toStatus is the one table from errors to gRPC codes (grpc-gateway maps those to HTTP
// statuses). Anything else (deadlines, database timeouts, the unknown) goes to
// server.ErrorStatus; an error's text is not shown to clients unless it is a domain one.
func toStatus(err error) error {
	var fe *discount.FieldError
	switch {
	case errors.As(err, &fe):
		return server.FieldViolation(codes.InvalidArgument, fe.Field, fe.Msg)
	case errors.Is(err, errNotAdmin):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, store.ErrCouponTaken):
		return server.FieldViolation(codes.AlreadyExists, "rule.coupon_code", "is the code of another coupon rule")
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "no discount calculated for this cart")
	}
	return server.ErrorStatus(err)
}

var kinds = map[discountpb.RuleKind]discount.Kind{
	discountpb.RuleKind_RULE_KIND_PERCENT_OFF_PRODUCT: discount.PercentOffProduct,
	discountpb.RuleKind_RULE_KIND_BUY_X_GET_Y:         discount.BuyXGetY,
	discountpb.RuleKind_RULE_KIND_ORDER_THRESHOLD:     discount.OrderThreshold,
	discountpb.RuleKind_RULE_KIND_COUPON:              discount.Coupon,
}

// fromProto converts a submitted rule; an unspecified or unknown kind becomes "", which
// Validate rejects. The used counter is ignored.
func fromProto(r *discountpb.Rule) (discount.Rule, error) {
	if r == nil {
		return discount.Rule{}, errRuleMissing
	}
	out := discount.Rule{
		ID: r.GetRuleId(), Description: r.GetDescription(), Kind: kinds[r.GetKind()], ProductID: r.GetProductId(),
		Percent: r.GetPercent(), BuyQuantity: r.GetBuyQuantity(), FreeQuantity: r.GetFreeQuantity(),
		ThresholdCents: r.GetThresholdCents(), CouponCode: r.GetCouponCode(), UsageLimit: r.GetUsageLimit(), Active: r.GetActive(),
	}
	if r.ExpiresAt != nil {
		if err := r.GetExpiresAt().CheckValid(); err != nil {
			return discount.Rule{}, errBadExpiry
		}
		t := r.GetExpiresAt().AsTime().UTC()
		out.ExpiresAt = &t
	}
	return out, nil
}

func toProto(r discount.Rule) *discountpb.Rule {
	out := &discountpb.Rule{
		RuleId: r.ID, Description: r.Description, ProductId: r.ProductID, Percent: r.Percent,
		BuyQuantity: r.BuyQuantity, FreeQuantity: r.FreeQuantity, ThresholdCents: r.ThresholdCents,
		CouponCode: r.CouponCode, UsageLimit: r.UsageLimit, Used: r.Used, Active: r.Active,
	}
	for k, v := range kinds {
		if v == r.Kind {
			out.Kind = k
		}
	}
	if r.ExpiresAt != nil {
		out.ExpiresAt = timestamppb.New(*r.ExpiresAt)
	}
	return out
}
