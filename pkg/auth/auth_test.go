package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "test-secret-test-secret-test-secret-0123"

func testConfig() Config { return Config{Secret: testSecret} }

func newTestVerifier(t *testing.T) *Verifier {
	t.Helper()
	v, err := NewVerifier(testConfig())
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// validClaims returns claims the test verifier accepts; cases mutate a copy.
func validClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": "alice",
		"iss": DefaultIssuer,
		"aud": DefaultAudience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// forge builds a token with an arbitrary header, HMAC-SHA256-signed with key
// over header.payload whatever the header claims (algorithm-confusion tricks).
func forge(t *testing.T, header string, claims jwt.MapClaims, key []byte) string {
	t.Helper()
	enc := base64.RawURLEncoding
	payload, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SigningString()
	if err != nil {
		t.Fatalf("signing string: %v", err)
	}
	_, body, _ := strings.Cut(payload, ".")
	unsigned := enc.EncodeToString([]byte(header)) + "." + body
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestVerify(t *testing.T) {
	v := newTestVerifier(t)
	hs256 := jwt.SigningMethodHS256
	key := []byte(testSecret)
	now := time.Now()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims())
	valid := sign(t, hs256, key, validClaims())
	head, _, _ := strings.Cut(valid, ".")
	tampered := head + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","iss":"eventshop","aud":"eventshop","exp":9999999999}`)) + "." + valid[strings.LastIndex(valid, ".")+1:]
	sub64 := strings.Repeat("a", 64)

	tests := []struct {
		name    string
		token   string
		wantErr error // nil means the token must verify
		wantSub string
	}{
		{name: "valid", token: valid, wantSub: "alice"},
		{name: "valid 64-char sub", token: sign(t, hs256, key, with(validClaims(), "sub", sub64)), wantSub: sub64},
		{name: "valid sub with all allowed punctuation", token: sign(t, hs256, key, with(validClaims(), "sub", "user:a.b_c-d@example.com")), wantSub: "user:a.b_c-d@example.com"},
		{name: "aud array containing ours", token: sign(t, hs256, key, with(validClaims(), "aud", []string{"other", DefaultAudience})), wantSub: "alice"},
		{name: "expired within leeway", token: sign(t, hs256, key, with(validClaims(), "exp", now.Add(-10*time.Second).Unix())), wantSub: "alice"},
		{name: "nbf within leeway", token: sign(t, hs256, key, with(validClaims(), "nbf", now.Add(10*time.Second).Unix())), wantSub: "alice"},

		{name: "empty", token: "", wantErr: ErrMissingToken},
		{name: "garbage", token: "not-a-jwt", wantErr: ErrMalformed},
		{name: "garbage three segments", token: "a.b.c", wantErr: ErrMalformed},
		{name: "oversized", token: strings.Repeat("a", maxTokenLen+1), wantErr: ErrMalformed},
		{name: "exp is a string", token: sign(t, hs256, key, with(validClaims(), "exp", "tomorrow")), wantErr: ErrMalformed},
		{name: "expired beyond leeway", token: sign(t, hs256, key, with(validClaims(), "exp", now.Add(-2*time.Minute).Unix())), wantErr: ErrExpired},
		{name: "missing exp", token: sign(t, hs256, key, with(validClaims(), "exp", nil)), wantErr: ErrNoExpiry},
		{name: "nbf in future", token: sign(t, hs256, key, with(validClaims(), "nbf", now.Add(5*time.Minute).Unix())), wantErr: ErrNotYetValid},
		{name: "iat in future", token: sign(t, hs256, key, with(validClaims(), "iat", now.Add(5*time.Minute).Unix())), wantErr: ErrNotYetValid},
		{name: "wrong key", token: sign(t, hs256, []byte("another-secret-another-secret-another!!"), validClaims()), wantErr: ErrBadSignature},
		{name: "tampered payload", token: tampered, wantErr: ErrBadSignature},
		{name: "signature stripped", token: strings.TrimRight(valid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"), wantErr: ErrBadSignature},
		{name: "alg none", token: noneTok, wantErr: ErrUnsupportedAlgorithm},
		{name: "alg none forged header", token: forge(t, `{"alg":"none","typ":"JWT"}`, validClaims(), key), wantErr: ErrUnsupportedAlgorithm},
		{name: "HS512 with the right key", token: sign(t, jwt.SigningMethodHS512, key, validClaims()), wantErr: ErrUnsupportedAlgorithm},
		{name: "RS256 real signature", token: sign(t, jwt.SigningMethodRS256, rsaKey, validClaims()), wantErr: ErrUnsupportedAlgorithm},
		{name: "RS256 header over HMAC signature", token: forge(t, `{"alg":"RS256","typ":"JWT"}`, validClaims(), key), wantErr: ErrUnsupportedAlgorithm},
		{name: "lower-case hs256 header", token: forge(t, `{"alg":"hs256","typ":"JWT"}`, validClaims(), key), wantErr: ErrUnsupportedAlgorithm},
		{name: "no alg header", token: forge(t, `{"typ":"JWT"}`, validClaims(), key), wantErr: ErrUnsupportedAlgorithm},
		{name: "wrong issuer", token: sign(t, hs256, key, with(validClaims(), "iss", "someone-else")), wantErr: ErrWrongIssuer},
		{name: "missing issuer", token: sign(t, hs256, key, with(validClaims(), "iss", nil)), wantErr: ErrWrongIssuer},
		{name: "wrong audience", token: sign(t, hs256, key, with(validClaims(), "aud", "billing")), wantErr: ErrWrongAudience},
		{name: "missing audience", token: sign(t, hs256, key, with(validClaims(), "aud", nil)), wantErr: ErrWrongAudience},
		{name: "unicode sub", token: sign(t, hs256, key, with(validClaims(), "sub", "アリス")), wantErr: ErrInvalidSubject},
		{name: "65-char sub", token: sign(t, hs256, key, with(validClaims(), "sub", strings.Repeat("a", 65))), wantErr: ErrInvalidSubject},
		{name: "sub with space", token: sign(t, hs256, key, with(validClaims(), "sub", "alice bob")), wantErr: ErrInvalidSubject},
		{name: "sub with trailing newline", token: sign(t, hs256, key, with(validClaims(), "sub", "alice\n")), wantErr: ErrInvalidSubject},
		{name: "missing sub", token: sign(t, hs256, key, with(validClaims(), "sub", nil)), wantErr: ErrInvalidSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(tt.token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: unexpected error %v", err)
				}
				if got.UserID != tt.wantSub {
					t.Errorf("UserID = %q, want %q", got.UserID, tt.wantSub)
				}
				if got.ExpiresAt.IsZero() || got.ExpiresAt.Location() != time.UTC {
					t.Errorf("ExpiresAt = %v, want a UTC time", got.ExpiresAt)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token (UserID %q), want %v", got.UserID, tt.wantErr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %q, want %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("err %q does not wrap ErrUnauthenticated", err)
			}
			if got != (Claims{}) {
				t.Errorf("claims = %+v on error, want zero", got)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error message echoes the token")
			}
		})
	}
}

func TestRejectionMessagesDistinct(t *testing.T) {
	all := []error{ErrMissingToken, ErrNotBearer, ErrMalformed, ErrUnsupportedAlgorithm, ErrBadSignature,
		ErrNoExpiry, ErrExpired, ErrNotYetValid, ErrWrongIssuer, ErrWrongAudience, ErrInvalidSubject}
	seen := map[string]bool{}
	for _, e := range all {
		if e.Error() == "" || seen[e.Error()] {
			t.Errorf("message %q is empty or duplicated", e.Error())
		}
		seen[e.Error()] = true
		if !errors.Is(e, ErrUnauthenticated) {
			t.Errorf("%q does not wrap ErrUnauthenticated", e)
		}
	}
}

func TestVerifierCustomIssuerAudience(t *testing.T) {
	cfg := Config{Secret: testSecret, Issuer: "idp", Audience: "cart"}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Mint(cfg, "bob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(tok); err != nil || c.UserID != "bob" {
		t.Fatalf("Verify = %+v, %v; want bob", c, err)
	}
	// A token for the defaults must not pass a verifier configured otherwise.
	def, err := Mint(testConfig(), "bob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(def); !errors.Is(err, ErrWrongIssuer) {
		t.Fatalf("Verify(default-issuer token) err = %v, want %v", err, ErrWrongIssuer)
	}
}

func TestNewVerifierConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings; nil means success
	}{
		{name: "ok", cfg: Config{Secret: testSecret}},
		{name: "exactly 32 bytes", cfg: Config{Secret: strings.Repeat("k", 32)}},
		{name: "dev key in dev mode", cfg: Config{Secret: DevSigningKey, DevMode: true}},
		{name: "empty secret", cfg: Config{}, wantErr: []string{"AUTH_JWT_SECRET", "DEV_MODE"}},
		{name: "empty secret in dev mode", cfg: Config{DevMode: true}, wantErr: []string{"AUTH_JWT_SECRET", "DEV_MODE"}},
		{name: "31 bytes", cfg: Config{Secret: strings.Repeat("k", 31)}, wantErr: []string{"31 bytes", "32"}},
		{name: "dev key outside dev mode", cfg: Config{Secret: DevSigningKey}, wantErr: []string{"the development signing key is refused outside development mode"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if tt.wantErr == nil {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier = %v, %v; want a verifier", v, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewVerifier accepted %+v", tt.cfg)
			}
			if v != nil {
				t.Errorf("NewVerifier returned a verifier with error %v", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err %q does not mention %q", err, s)
				}
			}
			if tt.cfg.Secret != "" && strings.Contains(err.Error(), tt.cfg.Secret) {
				t.Errorf("err %q leaks the secret", err)
			}
			// Mint applies the same rules.
			if _, err := Mint(tt.cfg, "alice", time.Minute); err == nil {
				t.Errorf("Mint accepted %+v", tt.cfg)
			}
		})
	}
	if len(DevSigningKey) < MinSecretLen {
		t.Errorf("DevSigningKey is %d bytes, want >= %d", len(DevSigningKey), MinSecretLen)
	}
}

func TestMint(t *testing.T) {
	v := newTestVerifier(t)
	before := time.Now()
	tok, err := Mint(testConfig(), "alice", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(minted) = %v", err)
	}
	if c.UserID != "alice" {
		t.Errorf("UserID = %q, want alice", c.UserID)
	}
	if lo, hi := before.Add(2*time.Hour-time.Second), time.Now().Add(2*time.Hour); c.ExpiresAt.Before(lo) || c.ExpiresAt.After(hi) {
		t.Errorf("ExpiresAt = %v, want within [%v, %v]", c.ExpiresAt, lo, hi)
	}
	var rc jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &rc); err != nil {
		t.Fatal(err)
	}
	if rc.IssuedAt == nil || rc.Issuer != DefaultIssuer || len(rc.Audience) != 1 || rc.Audience[0] != DefaultAudience {
		t.Errorf("minted claims = %+v, want iat, iss and aud set", rc)
	}

	for _, bad := range []struct {
		name string
		sub  string
		ttl  time.Duration
	}{
		{"empty sub", "", time.Hour},
		{"unicode sub", "アリス", time.Hour},
		{"65-char sub", strings.Repeat("a", 65), time.Hour},
		{"zero ttl", "alice", 0},
		{"negative ttl", "alice", -time.Hour},
	} {
		if tok, err := Mint(testConfig(), bad.sub, bad.ttl); err == nil {
			t.Errorf("%s: Mint = %q, want error", bad.name, tok)
		}
	}
}

func TestUserIDContext(t *testing.T) {
	ctx := t.Context()
	if id, ok := UserID(ctx); ok || id != "" {
		t.Errorf("UserID(empty ctx) = %q, %v; want none", id, ok)
	}
	if id, ok := UserID(WithUserID(ctx, "alice")); !ok || id != "alice" {
		t.Errorf("UserID = %q, %v; want alice, true", id, ok)
	}
	if _, ok := UserID(WithUserID(ctx, "")); ok {
		t.Errorf("UserID reported an empty id as present")
	}
}
