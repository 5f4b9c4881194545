package host

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"

	"github.com/eventshop/eventshop/pkg/server"
)

// servePprof runs the Go profiler's endpoints (/debug/pprof/) on their own listener, so
// they never share a port with the public API. It is off unless Config.PprofAddr is set;
// bind it to loopback.
func (h *Host) servePprof(ctx context.Context, addr string) error {
	ln, err := server.Listen(ctx, h.cfg.Name+" pprof", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: server.ReadHeaderTimeout}
	h.OnClose(func(context.Context) { _ = ln.Close() }) // when Run is never called
	h.Go(func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
		defer stop()
		h.log.Info("pprof listening", "addr", ln.Addr().String())
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("pprof: %w", err)
		}
		return nil
	})
	return nil
}
