// Package server builds the gRPC server, the grpc-gateway HTTP/JSON front and the HTTP
// server every eventshop service exposes, with the limits and error format they share.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eventshop/eventshop/pkg/postgres"
)

// Limits shared by every service's API.
const (
	MaxMessageBytes    = 1 << 20  // gRPC messages in either direction
	MaxBodyBytes       = 64 << 10 // HTTP request bodies
	MaxHeaderBytes     = 64 << 10 // HTTP request headers; gRPC metadata may be twice that (the gateway adds its own)
	MaxStreams         = 1000     // concurrent gRPC streams per connection
	ReadHeaderTimeout  = 5 * time.Second
	WriteTimeout       = 30 * time.Second // an HTTP response, from the end of its request's headers
	DefaultRPCTimeout  = 10 * time.Second // see Timeouts.Request
	DefaultIdleTimeout = 2 * time.Minute  // see Timeouts.HTTPIdle
)

// Timeouts are the configurable time limits of a service's API. Zero fields take the
// defaults.
type Timeouts struct {
	// Request bounds every gRPC request, and so every HTTP API call through the gateway
	// (default DefaultRPCTimeout): it is the deadline of a request that has none and caps
	// a longer one the client asks for, so no client holds a handler, and the database
	// connection it waits for or uses, longer than this. It must stay below WriteTimeout.
	Request time.Duration
	// HTTPIdle closes a keep-alive HTTP connection idle for this long between requests
	// (default DefaultIdleTimeout).
	HTTPIdle time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Request <= 0 {
		t.Request = DefaultRPCTimeout
	}
	if t.HTTPIdle <= 0 {
		t.HTTPIdle = DefaultIdleTimeout
	}
	return t
}

// HeaderIdempotencyKey is the HTTP header (and gRPC metadata key, lower-cased) that makes
// a mutating request safe to retry.
const HeaderIdempotencyKey = "Idempotency-Key"

// IdempotencyKey returns the request's Idempotency-Key metadata, or "".
func IdempotencyKey(ctx context.Context) string {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(strings.ToLower(HeaderIdempotencyKey)); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// FieldViolation is an InvalidArgument status naming the offending field, with a
// google.rpc.BadRequest detail that HTTP clients receive in the JSON body.
func FieldViolation(code codes.Code, field, desc string) error {
	st := status.New(code, field+": "+desc)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}}); err == nil {
		return d.Err()
	}
	return st.Err()
}

// GRPCOptions are the server options of every service: message and header size limits,
// keepalive enforcement and connection timeouts, the request deadline of t, and the
// interceptor chain given.
func GRPCOptions(log *slog.Logger, t Timeouts, unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) []grpc.ServerOption {
	t = t.withDefaults()
	chain := append(append([]grpc.UnaryServerInterceptor{recoverUnary(log), deadlineUnary(t.Request)}, unary...), logUnary(log))
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.MaxHeaderListSize(2 * MaxHeaderBytes),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute, Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(MaxStreams),
		grpc.ChainUnaryInterceptor(chain...),
		grpc.ChainStreamInterceptor(stream...),
	}
}

// recoverUnary turns a handler panic into codes.Internal (logged with its stack) so one
// bad request cannot take the process down with every other in-flight request.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return h(ctx, req)
	}
}

// deadlineUnary gives every request a deadline of at most d (a client's shorter one
// stays), so that database and Kafka calls below always have one and a client cannot
// hold a handler longer by asking for a longer deadline. A request that fails after its
// deadline passed reports DeadlineExceeded, whatever the call that was cut off said (a
// database statement canceled mid-flight reports its own error).
func deadlineUnary(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		resp, err := h(ctx, req)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			switch status.Code(err) {
			case codes.Internal, codes.Unknown, codes.Unavailable:
				err = status.Error(codes.DeadlineExceeded, "request deadline exceeded")
			}
		}
		return resp, err
	}
}

// ErrorStatus is the status of an error that no rule of the service maps: the request's
// deadline or cancellation; a database statement canceled by the server (statement or
// lock timeout: Unavailable, the client may retry later); anything else is Internal. The
// error's text never reaches the client: the server logs it (see GRPCOptions). Every
// service's error table ends with it.
func ErrorStatus(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return &causeError{status.New(codes.DeadlineExceeded, "request deadline exceeded"), err}
	case postgres.IsTimeout(err):
		return &causeError{status.New(codes.Unavailable, "the database is busy: try again later"), err}
	}
	return &causeError{status.New(codes.Internal, "internal error"), err}
}

// causeError is a status for the client that keeps its cause for the server's log.
type causeError struct {
	st    *status.Status
	cause error
}

func (e *causeError) Error() string              { return e.st.Err().Error() }
func (e *causeError) GRPCStatus() *status.Status { return e.st }
func (e *causeError) Unwrap() error              { return e.cause }

// logUnary logs the cause of a request that failed with ErrorStatus: Internal at error
// level, a deadline or a busy database as a warning.
func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		var ce *causeError
		if errors.As(err, &ce) {
			level := slog.LevelWarn
			if ce.st.Code() == codes.Internal {
				level = slog.LevelError
			}
			log.Log(ctx, level, "request failed", "method", info.FullMethod, "code", ce.st.Code().String(), "err", ce.cause)
		}
		return resp, err
	}
}

// Gateway returns the grpc-gateway mux for a service and the loopback client connection
// it forwards through (close it at shutdown). Requests go through the gRPC server's
// interceptors (auth, limits, metrics) exactly like native gRPC calls. Unknown JSON fields
// are rejected, so a client cannot smuggle in, say, a price.
func Gateway(ctx context.Context, grpcAddr string, register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error) (*runtime.ServeMux, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient(grpcAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)))
	if err != nil {
		return nil, nil, fmt.Errorf("server: gateway client for %s: %w", grpcAddr, err)
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			if strings.EqualFold(h, HeaderIdempotencyKey) {
				return strings.ToLower(HeaderIdempotencyKey), true
			}
			return runtime.DefaultHeaderMatcher(h)
		}),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
	)
	if err := register(ctx, mux, conn); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("server: register gateway: %w", err)
	}
	return mux, conn, nil
}

// ErrorBody is the JSON body of every HTTP error.
type ErrorBody struct {
	Code    int    `json:"code"`
	Status  string `json:"status"`
	Message string `json:"message"`
	// Field names the offending request field of a validation error.
	Field string `json:"field,omitempty"`
}

func errorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	st := status.Convert(err)
	body := ErrorBody{Code: int(st.Code()), Status: codeName(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			body.Field = br.GetFieldViolations()[0].GetField()
		}
	}
	httpStatus := runtime.HTTPStatusFromCode(st.Code())
	if st.Code() == codes.FailedPrecondition {
		httpStatus = http.StatusConflict // the resource's state forbids it (empty cart): 409, not 400
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || strings.Contains(st.Message(), "http: request body too large") {
		httpStatus = http.StatusRequestEntityTooLarge
		body = ErrorBody{Code: int(codes.InvalidArgument), Status: codeName(codes.InvalidArgument), Message: fmt.Sprintf("body: larger than %d bytes", MaxBodyBytes), Field: "body"}
	} else if st.Code() == codes.InvalidArgument && body.Field == "" {
		body.Field = "body" // malformed JSON, wrong types: the gateway's decoder names the field in the message
	}
	WriteError(w, httpStatus, body)
}

func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	msg := http.StatusText(code)
	grpcCode := codes.NotFound
	if code == http.StatusMethodNotAllowed {
		grpcCode = codes.Unimplemented
	}
	WriteError(w, code, ErrorBody{Code: int(grpcCode), Status: codeName(grpcCode), Message: msg + ": " + r.Method + " " + r.URL.Path})
}

// WriteError writes body as the JSON error response with status code.
func WriteError(w http.ResponseWriter, code int, body ErrorBody) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// LimitBody refuses bodies over MaxBodyBytes with 413 and a JSON error before they reach
// the handler (declared length), and cuts off undeclared ones while they are read.
func LimitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			WriteError(w, http.StatusRequestEntityTooLarge, ErrorBody{Code: int(codes.InvalidArgument), Status: codeName(codes.InvalidArgument), Message: fmt.Sprintf("body: larger than %d bytes", MaxBodyBytes), Field: "body"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// HTTPServer returns an http.Server with the limits every service uses, so a slow or
// idle client cannot hold a connection forever: headers within ReadHeaderTimeout, the
// whole request within 15s, the response within WriteTimeout, keep-alive connections closed after
// t.HTTPIdle.
func HTTPServer(h http.Handler, t Timeouts) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       t.HTTPIdle,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Listen opens a TCP listener with a clear error when the address is taken.
func Listen(ctx context.Context, what, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w (is another process using the port?)", what, addr, err)
	}
	return ln, nil
}

// codeName is the canonical upper-case name of a code, e.g. INVALID_ARGUMENT.
func codeName(c codes.Code) string { return rpccode.Code(c).String() }
