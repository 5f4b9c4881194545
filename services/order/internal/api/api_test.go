package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/services/order/internal/order"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{order.ValidateOrderID("x"), codes.InvalidArgument, "order_id: must be a UUID"},
		{fmt.Errorf("load: %w", order.ErrNotFound), codes.NotFound, "order not found"},
		{fmt.Errorf("load: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "request deadline exceeded"},
		{context.Canceled, codes.Canceled, "request canceled"},
		{status.Error(codes.Unauthenticated, "missing bearer token"), codes.Unauthenticated, "missing bearer token"},
		{errors.New("pq: connection refused to 10.0.0.5"), codes.Internal, "internal error"},
	}
	for _, tc := range tests {
		st := status.Convert(toStatus(tc.err))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("toStatus(%v) = %v %q, want %v %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
		if strings.Contains(st.Message(), "10.0.0.5") {
			t.Errorf("internal details leaked: %q", st.Message())
		}
	}
}
