package obs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns a log/slog logger writing JSON to w at the given level,
// with the attribute service=<service> on every record and, when the record's
// context carries a span (log with InfoContext and friends), trace_id and span_id.
//
// level is one of "debug", "info", "warn" or "error" (case-insensitive,
// surrounding spaces ignored); anything else, including the empty string, is
// an error naming LOG_LEVEL so that a misconfigured service fails at start
// instead of logging at a level nobody asked for.
func NewLogger(w io.Writer, level string, service string) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, fmt.Errorf("obs: LOG_LEVEL %q: want one of debug, info, warn, error", level)
	}
	h := TraceHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
	return slog.New(h).With(slog.String("service", service)), nil
}

// TraceHandler wraps h so that records logged with a context carrying a valid span
// get the attributes trace_id and span_id (W3C hex), linking logs to traces.
func TraceHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (t traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return t.Handler.Handle(ctx, r)
}

func (t traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{t.Handler.WithAttrs(attrs)}
}

func (t traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{t.Handler.WithGroup(name)}
}
