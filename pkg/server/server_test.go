package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDeadlineUnaryBoundsEveryRequest(t *testing.T) {
	const d = 200 * time.Millisecond
	intercept := deadlineUnary(d)
	info := &grpc.UnaryServerInfo{FullMethod: "/x.v1.X/Y"}
	left := func(ctx context.Context) time.Duration {
		t.Helper()
		var got time.Duration
		_, _ = intercept(ctx, nil, info, func(ctx context.Context, _ any) (any, error) {
			dl, ok := ctx.Deadline()
			if !ok {
				t.Fatal("handler ran without a deadline")
			}
			got = time.Until(dl)
			return nil, nil
		})
		return got
	}
	long, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	for name, c := range map[string]struct {
		ctx      context.Context
		min, max time.Duration
	}{
		"no client deadline":      {context.Background(), d / 2, d},
		"client asks for an hour": {long, d / 2, d},
		"shorter client deadline": {short, 0, 50 * time.Millisecond},
	} {
		if got := left(c.ctx); got < c.min || got > c.max {
			t.Errorf("%s: handler deadline in %s, want %s..%s", name, got, c.min, c.max)
		}
	}

	// A failure after the deadline passed reports the deadline, not what was cut off;
	// a client error stays what it is.
	for _, c := range []struct {
		handlerErr error
		want       codes.Code
	}{
		{status.Error(codes.Internal, "internal error"), codes.DeadlineExceeded},
		{status.Error(codes.Unavailable, "the database is busy"), codes.DeadlineExceeded},
		{status.Error(codes.InvalidArgument, "quantity"), codes.InvalidArgument},
	} {
		_, err := intercept(context.Background(), nil, info, func(ctx context.Context, _ any) (any, error) {
			<-ctx.Done()
			return nil, c.handlerErr
		})
		if status.Code(err) != c.want {
			t.Errorf("handler error %v after the deadline became %v, want %v", c.handlerErr, err, c.want)
		}
	}
}

func TestErrorStatusHidesCauses(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("begin: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("lock user: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("lock user: %w", &pq.Error{Code: "57014", Message: "canceling statement due to statement timeout"}), codes.Unavailable},
		{fmt.Errorf("reserve: %w", &pq.Error{Code: "55P03", Message: "could not obtain lock on row in relation \"stock\""}), codes.Unavailable},
		{fmt.Errorf("load cart: %w", &pq.Error{Code: "42P01", Message: "relation \"carts\" does not exist"}), codes.Internal},
		{errors.New("dial tcp 10.0.0.7:5432: connection refused"), codes.Internal},
	} {
		st := status.Convert(ErrorStatus(c.err))
		if st.Code() != c.code {
			t.Errorf("ErrorStatus(%v) = %v, want %v", c.err, st.Code(), c.code)
		}
		if len(st.Details()) > 0 || st.Message() == c.err.Error() || st.Message() == "" {
			t.Errorf("ErrorStatus(%v) message %q: want a fixed message, not the cause", c.err, st.Message())
		}
	}
}

func TestLogUnaryLogsTheCauseTheClientDoesNotSee(t *testing.T) {
	var logs bytes.Buffer
	intercept := logUnary(slog.New(slog.NewJSONHandler(&logs, nil)))
	cause := fmt.Errorf("lock user: %w", &pq.Error{Code: "57014", Message: "canceling statement due to statement timeout"})
	_, err := intercept(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x.v1.X/Y"}, func(context.Context, any) (any, error) {
		return nil, ErrorStatus(cause)
	})
	if st := status.Convert(err); st.Code() != codes.Unavailable || strings.Contains(st.Message(), "statement") {
		t.Fatalf("client sees %v %q", st.Code(), st.Message())
	}
	if !strings.Contains(logs.String(), "canceling statement due to statement timeout") || !strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Fatalf("log %q does not carry the cause as a warning", logs.String())
	}
}
