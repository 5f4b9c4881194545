package host_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// TestPprofServedOnlyWhenConfiguredAndStopsWithTheHost: /debug/pprof/ answers on its own
// address while the host runs, is absent from the API port, and goes away at shutdown.
func TestPprofServedOnlyWhenConfiguredAndStopsWithTheHost(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	ctx := testkit.Context(t, 30*time.Second)
	h, err := host.New(ctx, host.Config{Name: "pprof", HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Auth: auth.Config{Secret: auth.DevSigningKey, DevMode: true}, PprofAddr: addr}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx) }()

	get := func(url string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	testkit.Eventually(t, 10*time.Second, "pprof answers", func() bool {
		code, err := get("http://" + addr + "/debug/pprof/cmdline")
		return err == nil && code == http.StatusOK
	})
	if code, err := get("http://" + h.HTTPAddr() + "/debug/pprof/cmdline"); err != nil || code == http.StatusOK {
		t.Fatalf("pprof reachable on the API port: %d %v", code, err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := get("http://" + addr + "/debug/pprof/cmdline"); err == nil {
		t.Fatal("pprof still answers after shutdown")
	}
}
