package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	privateMethod = "/eventshop.cart.v1.CartService/AddItem"
	healthMethod  = "/grpc.health.v1.Health/Check"
)

func isPublic(m string) bool {
	return m == healthMethod || strings.HasPrefix(m, "/grpc.reflection.")
}

// authCases returns incoming-metadata authorization values and the expected
// outcome; wantMsg is the status message on rejection.
func authCases(t *testing.T) []struct {
	name    string
	md      metadata.MD
	wantMsg string // empty means authenticated as alice
} {
	t.Helper()
	tok, err := Mint(testConfig(), "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, err := Mint(Config{Secret: strings.Repeat("x", 40)}, "alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return []struct {
		name    string
		md      metadata.MD
		wantMsg string
	}{
		{name: "valid", md: metadata.Pairs("authorization", "Bearer "+tok)},
		{name: "lower-case scheme", md: metadata.Pairs("authorization", "bearer "+tok)},
		{name: "upper-case scheme", md: metadata.Pairs("authorization", "BEARER "+tok)},
		{name: "no metadata", md: nil, wantMsg: ErrMissingToken.Error()},
		{name: "other metadata only", md: metadata.Pairs("x-request-id", "1"), wantMsg: ErrMissingToken.Error()},
		{name: "empty header", md: metadata.Pairs("authorization", ""), wantMsg: ErrMissingToken.Error()},
		{name: "Bearer without token", md: metadata.Pairs("authorization", "Bearer"), wantMsg: ErrMissingToken.Error()},
		{name: "Bearer and spaces", md: metadata.Pairs("authorization", "Bearer   "), wantMsg: ErrMissingToken.Error()},
		{name: "Basic", md: metadata.Pairs("authorization", "Basic xyz"), wantMsg: ErrNotBearer.Error()},
		{name: "bare token without scheme", md: metadata.Pairs("authorization", tok), wantMsg: ErrNotBearer.Error()},
		{name: "two authorization values", md: metadata.Pairs("authorization", "Bearer "+tok, "authorization", "Bearer "+tok), wantMsg: ErrNotBearer.Error()},
		{name: "garbage token", md: metadata.Pairs("authorization", "Bearer garbage"), wantMsg: ErrMalformed.Error()},
		{name: "wrong key", md: metadata.Pairs("authorization", "Bearer "+wrongKey), wantMsg: ErrBadSignature.Error()},
	}
}

func incoming(md metadata.MD) context.Context {
	ctx := context.Background()
	if md != nil {
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	return ctx
}

func checkStatus(t *testing.T, err error, wantMsg string) {
	t.Helper()
	if wantMsg == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	st, ok := status.FromError(err)
	if !ok || err == nil {
		t.Fatalf("err = %v, want a status error", err)
	}
	if st.Code() != codes.Unauthenticated {
		t.Errorf("code = %v, want Unauthenticated", st.Code())
	}
	if st.Message() == "" || st.Message() != wantMsg {
		t.Errorf("message = %q, want %q", st.Message(), wantMsg)
	}
}

func TestUnaryServerInterceptor(t *testing.T) {
	icpt := UnaryServerInterceptor(newTestVerifier(t), isPublic)
	for _, tt := range authCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			var gotID string
			var gotOK bool
			handler := func(ctx context.Context, req any) (any, error) {
				called = true
				gotID, gotOK = UserID(ctx)
				return "resp", nil
			}
			resp, err := icpt(incoming(tt.md), "req", &grpc.UnaryServerInfo{FullMethod: privateMethod}, handler)
			checkStatus(t, err, tt.wantMsg)
			if tt.wantMsg != "" {
				if called {
					t.Errorf("handler was called on rejected request")
				}
				if resp != nil {
					t.Errorf("resp = %v, want nil", resp)
				}
				return
			}
			if !called || resp != "resp" {
				t.Fatalf("handler called = %v, resp = %v; want called and its response returned", called, resp)
			}
			if !gotOK || gotID != "alice" {
				t.Errorf("UserID in handler = %q, %v; want alice, true", gotID, gotOK)
			}
		})
	}
}

func TestUnaryServerInterceptorPublic(t *testing.T) {
	icpt := UnaryServerInterceptor(newTestVerifier(t), isPublic)
	called := false
	handler := func(ctx context.Context, req any) (any, error) {
		called = true
		if _, ok := UserID(ctx); ok {
			t.Errorf("public call carries a user id")
		}
		return "ok", nil
	}
	// No credentials at all: a public method still runs.
	if _, err := icpt(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: healthMethod}, handler); err != nil || !called {
		t.Fatalf("public method: err = %v, called = %v; want nil, true", err, called)
	}
	// nil public means nothing is public.
	called = false
	_, err := UnaryServerInterceptor(newTestVerifier(t), nil)(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: healthMethod}, handler)
	checkStatus(t, err, ErrMissingToken.Error())
	if called {
		t.Errorf("handler called with nil public and no token")
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

func TestStreamServerInterceptor(t *testing.T) {
	icpt := StreamServerInterceptor(newTestVerifier(t), isPublic)
	for _, tt := range authCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			var gotID string
			var gotOK bool
			handler := func(srv any, ss grpc.ServerStream) error {
				called = true
				gotID, gotOK = UserID(ss.Context())
				return nil
			}
			err := icpt(nil, fakeStream{ctx: incoming(tt.md)}, &grpc.StreamServerInfo{FullMethod: privateMethod, IsServerStream: true}, handler)
			checkStatus(t, err, tt.wantMsg)
			if tt.wantMsg != "" {
				if called {
					t.Errorf("handler was called on rejected stream")
				}
				return
			}
			if !called {
				t.Fatal("handler not called")
			}
			if !gotOK || gotID != "alice" {
				t.Errorf("UserID in stream ctx = %q, %v; want alice, true", gotID, gotOK)
			}
		})
	}
}

func TestStreamServerInterceptorPublic(t *testing.T) {
	icpt := StreamServerInterceptor(newTestVerifier(t), isPublic)
	for _, m := range []string{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", healthMethod} {
		called := false
		err := icpt(nil, fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: m}, func(any, grpc.ServerStream) error {
			called = true
			return nil
		})
		if err != nil || !called {
			t.Errorf("%s: err = %v, called = %v; want nil, true", m, err, called)
		}
	}
}

func TestInterceptorsNeedVerifier(t *testing.T) {
	for name, f := range map[string]func(){
		"unary":  func() { UnaryServerInterceptor(nil, isPublic) },
		"stream": func() { StreamServerInterceptor(nil, isPublic) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic for nil verifier", name)
				}
			}()
			f()
		}()
	}
}
