// Package auth verifies the bearer JWTs that callers present to the
// eventshop gRPC APIs (and, through grpc-gateway, the HTTP APIs).
//
// Tokens are HS256-signed with a shared secret, must carry an expiry, and
// must name the configured issuer and audience. The subject ("sub") is the
// user id and is made available to handlers through [UserID].
//
// The package does not read the environment: services load [Config] in main
// (AUTH_JWT_SECRET, DEV_MODE) and pass it in.
package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DevSigningKey is the well-known development HMAC key. It is public, so
// [NewVerifier] and [Mint] refuse it unless [Config.DevMode] is set.
const DevSigningKey = "eventshop-development-signing-key-not-for-production"

const (
	// DefaultIssuer is the issuer used when [Config.Issuer] is empty.
	DefaultIssuer = "eventshop"
	// DefaultAudience is the audience used when [Config.Audience] is empty.
	DefaultAudience = "eventshop"
	// MinSecretLen is the minimum HMAC key length in bytes (RFC 7518 §3.2).
	MinSecretLen = 32
	// Leeway is the clock skew tolerated on exp, nbf and iat.
	Leeway = 30 * time.Second
	// maxTokenLen bounds the work done on a hostile token before rejecting it.
	maxTokenLen = 8 << 10
)

// subjectRE is the accepted shape of a user id (the "sub" claim).
var subjectRE = regexp.MustCompile(`^[A-Za-z0-9._@:-]{1,64}$`)

// ErrUnauthenticated is wrapped by every error [Verifier.Verify] and the
// interceptors return for a rejected credential. Test with errors.Is.
var ErrUnauthenticated = errors.New("unauthenticated")

// Rejection reasons. Each wraps [ErrUnauthenticated]; none contains the token.
var (
	ErrMissingToken         = rejection("missing bearer token")
	ErrNotBearer            = rejection("authorization is not a bearer token")
	ErrMalformed            = rejection("malformed token")
	ErrUnsupportedAlgorithm = rejection("unsupported token signing algorithm")
	ErrBadSignature         = rejection("invalid token signature")
	ErrNoExpiry             = rejection("token has no expiry")
	ErrExpired              = rejection("token has expired")
	ErrNotYetValid          = rejection("token is not valid yet")
	ErrWrongIssuer          = rejection("token issuer is not accepted")
	ErrWrongAudience        = rejection("token audience is not accepted")
	ErrInvalidSubject       = rejection("token subject is not a valid user id")
)

// authError is a rejection reason whose message is safe to send to the
// caller.
type authError struct{ msg string }

func rejection(msg string) error { return &authError{msg: msg} }

func (e *authError) Error() string { return e.msg }
func (e *authError) Unwrap() error { return ErrUnauthenticated }

// Config configures token verification and minting.
type Config struct {
	// Secret is the HMAC-SHA256 key, at least MinSecretLen bytes.
	Secret string
	// Issuer is the required "iss" claim; DefaultIssuer when empty.
	Issuer string
	// Audience is the required "aud" claim; DefaultAudience when empty.
	Audience string
	// DevMode allows DevSigningKey as Secret.
	DevMode bool
}

// withDefaults returns cfg with the issuer and audience defaults applied, or
// an error when the secret is unusable.
func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.Secret == "":
		return cfg, errors.New("auth: no JWT signing secret: set AUTH_JWT_SECRET (at least 32 bytes), or DEV_MODE=true to use the development key")
	case len(cfg.Secret) < MinSecretLen:
		return cfg, fmt.Errorf("auth: JWT signing secret is %d bytes, need at least %d", len(cfg.Secret), MinSecretLen)
	case cfg.Secret == DevSigningKey && !cfg.DevMode:
		return cfg, errors.New("auth: the development signing key is refused outside development mode")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	return cfg, nil
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	key      []byte
	issuer   string
	audience string
	parser   *jwt.Parser
	now      func() time.Time
}

// NewVerifier returns a Verifier for cfg, or an error when the secret is
// missing, shorter than MinSecretLen, or is DevSigningKey outside dev mode.
func NewVerifier(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Verifier{
		key:      []byte(cfg.Secret),
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		// Claims are validated in Verify so each failure gets its own reason.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithStrictDecoding(),
			jwt.WithoutClaimsValidation(),
		),
		now: time.Now,
	}, nil
}

// Claims are the verified facts of a token.
type Claims struct {
	// UserID is the token subject.
	UserID string
	// ExpiresAt is the token expiry, in UTC.
	ExpiresAt time.Time
}

// Verify checks raw (a compact JWT, without the "Bearer " prefix) and returns
// its claims. The token must be HS256-signed with the configured key, carry
// exp, name the configured issuer and audience, and have a subject matching
// ^[A-Za-z0-9._@:-]{1,64}$. exp, nbf and iat are checked with Leeway.
// Every error wraps ErrUnauthenticated and is one of the Err* reasons above.
func (v *Verifier) Verify(raw string) (Claims, error) {
	if raw == "" {
		return Claims{}, ErrMissingToken
	}
	if len(raw) > maxTokenLen {
		return Claims{}, ErrMalformed
	}

	var rc jwt.RegisteredClaims
	tok, err := v.parser.ParseWithClaims(raw, &rc, func(t *jwt.Token) (any, error) {
		// Belt and braces: WithValidMethods already pins the algorithm.
		if t.Method != jwt.SigningMethodHS256 {
			return nil, errors.New("unexpected signing method")
		}
		return v.key, nil
	})
	switch {
	case err == nil && tok.Valid:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Claims{}, ErrMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// Unknown or missing alg, or the keyfunc refused the method.
		return Claims{}, ErrUnsupportedAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && tok.Method != jwt.SigningMethodHS256 {
			return Claims{}, ErrUnsupportedAlgorithm
		}
		return Claims{}, ErrBadSignature
	default:
		return Claims{}, ErrMalformed
	}

	now := v.now()
	switch {
	case rc.ExpiresAt == nil:
		return Claims{}, ErrNoExpiry
	case !now.Before(rc.ExpiresAt.Add(Leeway)):
		return Claims{}, ErrExpired
	case rc.NotBefore != nil && now.Before(rc.NotBefore.Add(-Leeway)):
		return Claims{}, ErrNotYetValid
	case rc.IssuedAt != nil && now.Before(rc.IssuedAt.Add(-Leeway)):
		return Claims{}, ErrNotYetValid
	case rc.Issuer != v.issuer:
		return Claims{}, ErrWrongIssuer
	case !slices.Contains(rc.Audience, v.audience):
		return Claims{}, ErrWrongAudience
	case !subjectRE.MatchString(rc.Subject):
		return Claims{}, ErrInvalidSubject
	}
	return Claims{UserID: rc.Subject, ExpiresAt: rc.ExpiresAt.UTC()}, nil
}

// ValidUserID reports whether id is acceptable as a token subject.
func ValidUserID(id string) bool { return subjectRE.MatchString(id) }

// Mint returns an HS256 token for userID that expires after ttl, with sub,
// iss, aud, iat and exp set from cfg. It applies the same secret rules as
// NewVerifier. It exists for the devtoken command and tests; production
// tokens come from the identity provider.
func Mint(cfg Config, userID string, ttl time.Duration) (string, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return "", err
	}
	if !ValidUserID(userID) {
		return "", fmt.Errorf("auth: user id %q must match %s", userID, subjectRE)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("auth: token lifetime must be positive, got %s", ttl)
	}
	now := time.Now().UTC().Truncate(time.Second)
	claims := jwt.RegisteredClaims{
		Subject:   userID,
		Issuer:    cfg.Issuer,
		Audience:  jwt.ClaimStrings{cfg.Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(cfg.Secret))
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

type userIDKey struct{}

// WithUserID returns a copy of ctx carrying the authenticated user id.
func WithUserID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, userIDKey{}, id)
}

// UserID returns the authenticated user id stored in ctx by the
// interceptors (or WithUserID), and whether there was one.
func UserID(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(userIDKey{}).(string)
	return id, ok && id != ""
}
