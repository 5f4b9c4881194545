// Command inventory runs the inventory service: it reserves, releases and commits stock
// in reaction to cart events, publishes inventory events and product snapshots through
// the outbox, and serves the InventoryService gRPC API and its HTTP/JSON gateway.
// Configuration comes from the environment; see internal/app.Config.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventshop/eventshop/pkg/obs"
	"github.com/eventshop/eventshop/services/inventory/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := app.LoadConfig()
	if err != nil {
		return err
	}
	log, err := obs.NewLogger(os.Stdout, cfg.LogLevel, "inventory")
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
