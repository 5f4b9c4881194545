package auth

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// authorizationKey is the metadata key carrying the credential. grpc-gateway
// forwards the HTTP Authorization header under this (lower-case) key.
const authorizationKey = "authorization"

// UnaryServerInterceptor rejects unary calls without a valid bearer token in
// the "authorization" metadata ("Bearer <jwt>", scheme case-insensitive) with
// codes.Unauthenticated and the rejection reason, without calling the
// handler. On success the handler's context carries the user id (see
// UserID). Calls for which public(fullMethod) is true (health, reflection)
// skip authentication; public may be nil. v must not be nil.
func UnaryServerInterceptor(v *Verifier, public func(fullMethod string) bool) grpc.UnaryServerInterceptor {
	mustVerifier(v)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if public != nil && public(info.FullMethod) {
			return handler(ctx, req)
		}
		ctx, err := authenticate(ctx, v)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming calls
// (reflection and health Watch are streams, so list them in public).
func StreamServerInterceptor(v *Verifier, public func(fullMethod string) bool) grpc.StreamServerInterceptor {
	mustVerifier(v)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if public != nil && public(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx, err := authenticate(ss.Context(), v)
		if err != nil {
			return err
		}
		return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
	}
}

// mustVerifier fails at wiring time rather than on the first request.
func mustVerifier(v *Verifier) {
	if v == nil {
		panic("auth: interceptor needs a non-nil *Verifier")
	}
}

// authenticate verifies the bearer token in ctx's incoming metadata and
// returns ctx with the user id, or a codes.Unauthenticated status error.
func authenticate(ctx context.Context, v *Verifier) (context.Context, error) {
	raw, err := bearerToken(ctx)
	if err == nil {
		var c Claims
		if c, err = v.Verify(raw); err == nil {
			return WithUserID(ctx, c.UserID), nil
		}
	}
	return ctx, status.Error(codes.Unauthenticated, err.Error())
}

// bearerToken extracts the token from a single "authorization" value of the
// form "Bearer <token>".
func bearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(authorizationKey)
	switch len(vals) {
	case 0:
		return "", ErrMissingToken
	case 1:
	default:
		// Ambiguous: refuse rather than pick one.
		return "", ErrNotBearer
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if scheme != "" && !strings.EqualFold(scheme, "bearer") {
		return "", ErrNotBearer
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", ErrMissingToken
	}
	return token, nil
}

// authedStream overrides the stream context with the authenticated one.
type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }
