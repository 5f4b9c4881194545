// Package api translates OrderService gRPC calls (and, through grpc-gateway, HTTP/JSON
// calls) to the store, and its errors to status codes. No rules live here.
package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/server"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
	"github.com/eventshop/eventshop/services/order/internal/order"
)

// MaxListed bounds ListOrders: the API has no paging yet, so a user sees their newest
// MaxListed orders.
const MaxListed = 200

// Store is what the API reads.
type Store interface {
	Order(ctx context.Context, userID, orderID string) (order.Order, error)
	Orders(ctx context.Context, userID string, limit int) ([]order.Order, error)
}

// Server implements orderpb.OrderServiceServer.
type Server struct {
	orderpb.UnimplementedOrderServiceServer
	st Store
}

var _ orderpb.OrderServiceServer = (*Server)(nil)

// New returns the API over st.
func New(st Store) *Server { return &Server{st: st} }

func user(ctx context.Context) (string, error) {
	id, ok := auth.UserID(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "missing bearer token")
	}
	return id, nil
}

// ListOrders returns the caller's orders, newest first.
func (s *Server) ListOrders(ctx context.Context, _ *orderpb.ListOrdersRequest) (*orderpb.ListOrdersResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, err
	}
	os, err := s.st.Orders(ctx, uid, MaxListed)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &orderpb.ListOrdersResponse{Orders: make([]*orderpb.Order, len(os))}
	for i, o := range os {
		resp.Orders[i] = toProto(o)
	}
	return resp, nil
}

// GetOrder returns one of the caller's orders; another user's order is NotFound.
func (s *Server) GetOrder(ctx context.Context, req *orderpb.GetOrderRequest) (*orderpb.GetOrderResponse, error) {
	uid, err := user(ctx)
	if err != nil {
		return nil, err
	}
	if err := order.ValidateOrderID(req.GetOrderId()); err != nil {
		return nil, toStatus(err)
	}
	o, err := s.st.Order(ctx, uid, req.GetOrderId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &orderpb.GetOrderResponse{Order: toProto(o)}, nil
}

// toStatus is the one table from errors to gRPC codes (grpc-gateway maps those to HTTP
// statuses). Anything else (deadlines, database timeouts, the unknown) goes to
// server.ErrorStatus; an error's text is not shown to clients unless it is a domain one.
func toStatus(err error) error {
	var fe *order.FieldError
	switch {
	case errors.As(err, &fe):
		return server.FieldViolation(codes.InvalidArgument, fe.Field, fe.Msg)
	case errors.Is(err, order.ErrNotFound):
		return status.Error(codes.NotFound, "order not found")
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return server.ErrorStatus(err)
}

var statuses = map[order.Status]orderpb.OrderStatus{
	order.StatusPending:   orderpb.OrderStatus_ORDER_STATUS_PENDING,
	order.StatusConfirmed: orderpb.OrderStatus_ORDER_STATUS_CONFIRMED,
	order.StatusRejected:  orderpb.OrderStatus_ORDER_STATUS_REJECTED,
}

func toProto(o order.Order) *orderpb.Order {
	p := &orderpb.Order{
		OrderId: o.ID, UserId: o.UserID, CartId: o.CartID, CheckoutId: o.CheckoutID, Status: statuses[o.Status],
		Lines:         make([]*orderpb.OrderLine, len(o.Lines)),
		SubtotalCents: o.SubtotalCents, DiscountCents: o.DiscountCents, TotalCents: o.TotalCents, Reason: o.Reason,
		CreatedAt: timestamppb.New(o.CreatedAt), UpdatedAt: timestamppb.New(o.UpdatedAt),
	}
	for i, l := range o.Lines {
		p.Lines[i] = &orderpb.OrderLine{ProductId: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents, LineTotalCents: l.Total()}
	}
	return p
}
