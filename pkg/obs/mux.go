package obs

import "net/http"

// Mux returns a ServeMux serving GET /healthz and GET /readyz from h and
// GET /metrics from m, so a service can add its API routes next to them.
// The patterns carry the method so they coexist with catch-alls such as
// "/" or "GET /" that a service registers for its own routes.
func Mux(h *Health, m *Metrics) *http.ServeMux {
	mux := http.NewServeMux()
	hh := h.Handler()
	mux.Handle("GET /healthz", hh)
	mux.Handle("GET /readyz", hh)
	mux.Handle("GET /metrics", m.Handler())
	return mux
}
