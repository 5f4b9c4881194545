package obs

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLoggerLevels(t *testing.T) {
	tests := []struct {
		level     string
		wantErr   bool
		wantDebug bool // a Debug record is emitted
		wantInfo  bool // an Info record is emitted
	}{
		{level: "debug", wantDebug: true, wantInfo: true},
		{level: "info", wantInfo: true},
		{level: " INFO ", wantInfo: true},
		{level: "warn"},
		{level: "error"},
		{level: "", wantErr: true},
		{level: "verbose", wantErr: true},
		{level: "warning", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, tt.level, "cart")
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewLogger(%q) = nil error, want an error", tt.level)
				}
				if !strings.Contains(err.Error(), "LOG_LEVEL") {
					t.Errorf("error %q does not name LOG_LEVEL", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewLogger(%q): %v", tt.level, err)
			}
			log.Debug("d")
			log.Info("i")
			out := buf.String()
			if got := strings.Contains(out, `"msg":"d"`); got != tt.wantDebug {
				t.Errorf("debug emitted = %v, want %v; output %q", got, tt.wantDebug, out)
			}
			if got := strings.Contains(out, `"msg":"i"`); got != tt.wantInfo {
				t.Errorf("info emitted = %v, want %v; output %q", got, tt.wantInfo, out)
			}
		})
	}
}

func TestNewLoggerEmitsJSONWithService(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "info", "inventory")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("reserved", "event_id", "e-1")

	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("output is not one JSON object: %v; output %q", err, buf.String())
	}
	want := map[string]any{"level": "INFO", "msg": "reserved", "service": "inventory", "event_id": "e-1"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("record[%q] = %v, want %v; record %v", k, rec[k], v, rec)
		}
	}
	if _, ok := rec["time"]; !ok {
		t.Errorf("record has no time: %v", rec)
	}
}
