// Package api translates InventoryService gRPC calls (and, through grpc-gateway,
// HTTP/JSON calls) to the service package, and its errors to status codes. No rules
// live here beyond who is an administrator.
package api

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/server"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/inventory/internal/service"
	"github.com/eventshop/eventshop/services/inventory/internal/stock"
)

// Server implements inventorypb.InventoryServiceServer.
type Server struct {
	inventorypb.UnimplementedInventoryServiceServer
	svc    *service.Service
	admins map[string]bool
}

var _ inventorypb.InventoryServiceServer = (*Server)(nil)

// New returns the API over svc; admins may call Restock and UpdatePrice.
func New(svc *service.Service, admins []string) *Server {
	s := &Server{svc: svc, admins: map[string]bool{}}
	for _, a := range admins {
		if a = strings.TrimSpace(a); a != "" {
			s.admins[a] = true
		}
	}
	return s
}

func (s *Server) user(ctx context.Context) (string, error) {
	id, ok := auth.UserID(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "missing bearer token")
	}
	return id, nil
}

func (s *Server) admin(ctx context.Context) error {
	id, err := s.user(ctx)
	if err != nil {
		return err
	}
	if !s.admins[id] {
		return status.Error(codes.PermissionDenied, "only administrators may change products")
	}
	return nil
}

// ListProducts returns the catalog with its stock.
func (s *Server) ListProducts(ctx context.Context, _ *inventorypb.ListProductsRequest) (*inventorypb.ListProductsResponse, error) {
	if _, err := s.user(ctx); err != nil {
		return nil, err
	}
	ps, err := s.svc.ListProducts(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &inventorypb.ListProductsResponse{Products: make([]*inventorypb.Product, len(ps))}
	for i, p := range ps {
		out.Products[i] = toProto(p)
	}
	return out, nil
}

// GetProduct returns one product with its stock.
func (s *Server) GetProduct(ctx context.Context, req *inventorypb.GetProductRequest) (*inventorypb.GetProductResponse, error) {
	if _, err := s.user(ctx); err != nil {
		return nil, err
	}
	p, err := s.svc.GetProduct(ctx, req.GetProductId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &inventorypb.GetProductResponse{Product: toProto(p)}, nil
}

// Restock adds units to a product's available stock (administrators only).
func (s *Server) Restock(ctx context.Context, req *inventorypb.RestockRequest) (*inventorypb.RestockResponse, error) {
	if err := s.admin(ctx); err != nil {
		return nil, err
	}
	p, err := s.svc.Restock(ctx, req.GetProductId(), req.GetQuantity())
	if err != nil {
		return nil, toStatus(err)
	}
	return &inventorypb.RestockResponse{Product: toProto(p)}, nil
}

// UpdatePrice sets a product's unit price (administrators only).
func (s *Server) UpdatePrice(ctx context.Context, req *inventorypb.UpdatePriceRequest) (*inventorypb.UpdatePriceResponse, error) {
	if err := s.admin(ctx); err != nil {
		return nil, err
	}
	p, err := s.svc.UpdatePrice(ctx, req.GetProductId(), req.GetPriceCents())
	if err != nil {
		return nil, toStatus(err)
	}
	return &inventorypb.UpdatePriceResponse{Product: toProto(p)}, nil
}

// toStatus is the one table from domain errors to gRPC codes (grpc-gateway maps those
// to HTTP statuses). Anything else (deadlines, database timeouts, the unknown) goes to
// server.ErrorStatus; an error's text is not shown to clients unless it is a domain one.
func toStatus(err error) error {
	var fe *stock.FieldError
	switch {
	case errors.As(err, &fe):
		return server.FieldViolation(codes.InvalidArgument, fe.Field, fe.Msg)
	case errors.Is(err, stock.ErrUnknownProduct):
		return server.FieldViolation(codes.NotFound, "product_id", "unknown product")
	case errors.Is(err, stock.ErrStockLimit):
		return server.FieldViolation(codes.FailedPrecondition, "quantity", err.Error())
	}
	return server.ErrorStatus(err)
}

func toProto(p stock.Product) *inventorypb.Product {
	return &inventorypb.Product{ProductId: p.ID, Name: p.Name, PriceCents: p.PriceCents, Available: p.Available, Reserved: p.Reserved, Sold: p.Sold}
}
