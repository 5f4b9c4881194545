package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/auth"
)

func TestRun(t *testing.T) {
	const secret = "a-real-secret-a-real-secret-a-real-secret"
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		verify  auth.Config // config a service would use; ignored on error
		wantErr string
	}{
		{name: "dev key", args: []string{"-sub", "alice"}, verify: auth.Config{Secret: auth.DevSigningKey, DevMode: true}},
		{name: "env secret", args: []string{"-sub", "alice", "-ttl", "1h"}, env: map[string]string{"AUTH_JWT_SECRET": secret}, verify: auth.Config{Secret: secret}},
		{name: "custom issuer and audience", args: []string{"-sub", "alice", "-issuer", "idp", "-audience", "cart"}, verify: auth.Config{Secret: auth.DevSigningKey, DevMode: true, Issuer: "idp", Audience: "cart"}},
		{name: "missing sub", args: nil, wantErr: "-sub is required"},
		{name: "unicode sub", args: []string{"-sub", "アリス"}, wantErr: "must be 1-64"},
		{name: "65-char sub", args: []string{"-sub", strings.Repeat("a", 65)}, wantErr: "must be 1-64"},
		{name: "zero ttl", args: []string{"-sub", "alice", "-ttl", "0s"}, wantErr: "lifetime"},
		{name: "short env secret", args: []string{"-sub", "alice"}, env: map[string]string{"AUTH_JWT_SECRET": "short"}, wantErr: "at least 32"},
		{name: "stray argument", args: []string{"-sub", "alice", "extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				if stdout.Len() != 0 {
					t.Errorf("printed %q on error", stdout.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.NewVerifier(tt.verify)
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(strings.TrimSpace(stdout.String()))
			if err != nil {
				t.Fatalf("printed token does not verify: %v", err)
			}
			if c.UserID != "alice" || time.Until(c.ExpiresAt) <= 0 {
				t.Errorf("claims = %+v, want alice, unexpired", c)
			}
		})
	}
}
