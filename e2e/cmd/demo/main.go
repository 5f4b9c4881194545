// Command demo plays the seed scenario against the running local stack (`make up`) through
// the services' public HTTP APIs and prints stock, discount and orders as tables. It exits
// non-zero when the expected outcome is not reached. Tokens are signed with AUTH_JWT_SECRET,
// or the development key (the stack of `make up` runs with DEV_MODE=true).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/eventshop/eventshop/e2e/demo"
	"github.com/eventshop/eventshop/pkg/auth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	secret := os.Getenv("AUTH_JWT_SECRET")
	if secret == "" {
		secret = auth.DevSigningKey
	}
	_, err := demo.Run(ctx, demo.LocalEndpoints, auth.Config{Secret: secret, DevMode: true}, os.Stdout)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("\ndemo: expected outcome reached")
}
