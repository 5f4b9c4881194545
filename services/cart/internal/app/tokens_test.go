package app_test

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventshop/eventshop/pkg/auth"
)

func mintExpired(h *harness) (string, error) {
	claims := jwt.RegisteredClaims{Subject: "erin", Issuer: "eventshop", Audience: jwt.ClaimStrings{"eventshop"},
		IssuedAt: jwt.NewNumericDate(time.Now().Add(-2 * time.Hour)), ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour))}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(h.cfg.AuthConfig().Secret))
}

func mintWithKey(t *testing.T, key, user string) string {
	t.Helper()
	tok, err := auth.Mint(auth.Config{Secret: key, DevMode: true}, user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
