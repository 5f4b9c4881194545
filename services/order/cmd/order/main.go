// Command order runs the order service: it turns checkouts into orders, decides them from
// the inventory and discount outcomes, publishes order events through the outbox, and
// serves the OrderService gRPC API and its HTTP/JSON gateway.
// Configuration comes from the environment; see internal/app.Config. `order healthcheck`
// exits 0 when the running service is ready (the container health check).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/obs"
	"github.com/eventshop/eventshop/services/order/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "order:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := app.LoadConfig()
	if err != nil {
		return err
	}
	log, err := obs.NewLogger(os.Stdout, cfg.LogLevel, "order")
	if err != nil {
		return err
	}
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		return host.Probe(ctx, cfg.HTTPAddr)
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
