// Command cart runs the cart service: the CartService gRPC API and its HTTP/JSON gateway,
// publishing cart events to Kafka through the outbox and one persistent producer.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventshop/eventshop/pkg/obs"
	"github.com/eventshop/eventshop/services/cart/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cart:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := app.LoadConfig()
	if err != nil {
		return err
	}
	log, err := obs.NewLogger(os.Stdout, cfg.LogLevel, "cart")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return err
	}
	err = a.Run(ctx)
	if err != nil {
		log.Error("stopped with error", "err", err)
	}
	return err
}

