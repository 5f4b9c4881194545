// Command discount runs the discount service: it keeps each cart's lines from the cart
// events, publishes the cart's discount after every change, redeems coupons exactly once
// per checkout, and serves the DiscountService API on gRPC and HTTP/JSON.
// Configuration comes from the environment; see internal/app.Config.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventshop/eventshop/pkg/obs"
	"github.com/eventshop/eventshop/services/discount/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "discount:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := app.LoadConfig()
	if err != nil {
		return err
	}
	log, err := obs.NewLogger(os.Stdout, cfg.LogLevel, "discount")
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
