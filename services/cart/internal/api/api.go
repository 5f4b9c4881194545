// Package api translates CartService gRPC calls (and, through grpc-gateway, HTTP/JSON
// calls) to the service package, and its errors to status codes. No rules live here.
package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/server"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	"github.com/eventshop/eventshop/services/cart/internal/cart"
	"github.com/eventshop/eventshop/services/cart/internal/service"
)

// Server implements cartpb.CartServiceServer.
type Server struct {
	cartpb.UnimplementedCartServiceServer
	svc *service.Service
}

var _ cartpb.CartServiceServer = (*Server)(nil)

// New returns the API over svc.
func New(svc *service.Service) *Server { return &Server{svc: svc} }

func user(ctx context.Context) (string, error) {
	id, ok := auth.UserID(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "missing bearer token")
	}
	return id, nil
}

// GetCart returns the caller's open cart.
func (s *Server) GetCart(ctx context.Context, _ *cartpb.GetCartRequest) (*cartpb.GetCartResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.GetCart(ctx, uid)
	if err != nil {
		return nil, toStatus(err)
	}
	return &cartpb.GetCartResponse{Cart: toProto(v)}, nil
}

// AddItem adds a quantity of a product to the caller's cart.
func (s *Server) AddItem(ctx context.Context, req *cartpb.AddItemRequest) (*cartpb.AddItemResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.AddItem(ctx, uid, server.IdempotencyKey(ctx), req.GetProductId(), req.GetQuantity())
	if err != nil {
		return nil, toStatus(err)
	}
	return &cartpb.AddItemResponse{Cart: toProto(v)}, nil
}

// RemoveItem removes a product's line from the caller's cart.
func (s *Server) RemoveItem(ctx context.Context, req *cartpb.RemoveItemRequest) (*cartpb.RemoveItemResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.RemoveItem(ctx, uid, server.IdempotencyKey(ctx), req.GetProductId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &cartpb.RemoveItemResponse{Cart: toProto(v)}, nil
}

// SetQuantity sets the quantity of a line in the caller's cart.
func (s *Server) SetQuantity(ctx context.Context, req *cartpb.SetQuantityRequest) (*cartpb.SetQuantityResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.SetQuantity(ctx, uid, server.IdempotencyKey(ctx), req.GetProductId(), req.GetQuantity())
	if err != nil {
		return nil, toStatus(err)
	}
	return &cartpb.SetQuantityResponse{Cart: toProto(v)}, nil
}

// ApplyCoupon sets the coupon code of the caller's cart.
func (s *Server) ApplyCoupon(ctx context.Context, req *cartpb.ApplyCouponRequest) (*cartpb.ApplyCouponResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.ApplyCoupon(ctx, uid, server.IdempotencyKey(ctx), req.GetCouponCode())
	if err != nil {
		return nil, toStatus(err)
	}
	return &cartpb.ApplyCouponResponse{Cart: toProto(v)}, nil
}

// Checkout checks the caller's cart out.
func (s *Server) Checkout(ctx context.Context, _ *cartpb.CheckoutRequest) (*cartpb.CheckoutResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.svc.Checkout(ctx, uid, server.IdempotencyKey(ctx))
	if err != nil {
		return nil, toStatus(err)
	}
	return &cartpb.CheckoutResponse{Cart: toProto(v), CheckoutId: v.CheckoutID, SubtotalCents: v.SubtotalCents}, nil
}

// toStatus is the one table from domain errors to gRPC codes (grpc-gateway maps those
// to HTTP statuses). Anything else (deadlines, database timeouts, the unknown) goes to
// server.ErrorStatus; an error's text is not shown to clients unless it is a domain one.
func toStatus(err error) error {
	var fe *cart.FieldError
	switch {
	case errors.As(err, &fe):
		return server.FieldViolation(codes.InvalidArgument, fe.Field, fe.Msg)
	case errors.Is(err, cart.ErrUnknownProduct):
		return server.FieldViolation(codes.NotFound, "product_id", "unknown product")
	case errors.Is(err, cart.ErrLineNotFound):
		return server.FieldViolation(codes.NotFound, "product_id", "product is not in the cart")
	case errors.Is(err, cart.ErrCartEmpty):
		return status.Error(codes.FailedPrecondition, "cart is empty: add an item before checking out")
	case errors.Is(err, cart.ErrTooManyLines):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, cart.ErrCheckedOut):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return server.ErrorStatus(err)
}

func toProto(v service.View) *cartpb.Cart {
	c := &cartpb.Cart{
		CartId:        v.CartID,
		UserId:        v.UserID,
		CouponCode:    v.CouponCode,
		SubtotalCents: v.SubtotalCents,
		DiscountCents: v.DiscountCents,
		TotalCents:    v.SubtotalCents - v.DiscountCents,
		Version:       v.Version,
		Status:        cartpb.CartStatus_CART_STATUS_OPEN,
		Lines:         make([]*cartpb.Cart_Line, len(v.Lines)),
	}
	if v.Status == cart.StatusCheckedOut {
		c.Status = cartpb.CartStatus_CART_STATUS_CHECKED_OUT
	}
	for _, p := range v.Problems {
		c.Problems = append(c.Problems, &cartpb.Cart_Problem{ProductId: p.ProductID, Message: p.Message})
	}
	for i, l := range v.Lines {
		c.Lines[i] = &cartpb.Cart_Line{ProductId: l.ProductID, Name: l.Name, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents, LineTotalCents: int64(l.Quantity) * l.UnitPriceCents}
	}
	return c
}
