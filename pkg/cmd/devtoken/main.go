// Command devtoken prints a bearer JWT for calling the eventshop APIs during
// local development only. It is not a production identity provider.
//
// The token is signed with AUTH_JWT_SECRET when that is set (it must satisfy
// the same rules the services apply), otherwise with the public
// auth.DevSigningKey, which services accept only with DEV_MODE=true.
//
//	go run ./cmd/devtoken -sub alice -ttl 24h
//	curl -H "Authorization: Bearer $(go run ./cmd/devtoken -sub alice)" ...
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/eventshop/eventshop/pkg/auth"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "devtoken:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "user id to put in the token subject (required; [A-Za-z0-9._@:-], 1-64 chars)")
	ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime")
	issuer := fs.String("issuer", auth.DefaultIssuer, "token issuer (iss)")
	audience := fs.String("audience", auth.DefaultAudience, "token audience (aud)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *sub == "" {
		return errors.New("-sub is required")
	}
	if !auth.ValidUserID(*sub) {
		return fmt.Errorf("-sub %q must be 1-64 characters of A-Z a-z 0-9 . _ @ : -", *sub)
	}

	secret := getenv("AUTH_JWT_SECRET")
	if secret == "" {
		secret = auth.DevSigningKey
		fmt.Fprintln(stderr, "devtoken: AUTH_JWT_SECRET not set; signing with the development key (services must run with DEV_MODE=true)")
	}
	cfg := auth.Config{Secret: secret, Issuer: *issuer, Audience: *audience, DevMode: true}
	token, err := auth.Mint(cfg, *sub, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}
