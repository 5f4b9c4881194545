package obs

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// NewLogger returns a log/slog logger writing JSON to w at the given level,
// with the attribute service=<service> on every record.
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
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})
	return slog.New(h).With(slog.String("service", service)), nil
}
