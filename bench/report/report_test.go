package report_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/bench/report"
)

func TestWriteProducesJSONMarkdownAndSVG(t *testing.T) {
	r := report.Report{Machine: report.NewMachine("4.1.1", "bench -smoke"), Sections: []report.Section{{
		Title: "Producers", Columns: []string{"msgs_per_sec", "p99_ms"}, Chart: "msgs_per_sec",
		Rows:    []report.Row{{Name: "short", Metrics: map[string]float64{"msgs_per_sec": 5, "p99_ms": 210}}, {Name: "persistent", Metrics: map[string]float64{"msgs_per_sec": 90000, "p99_ms": 12.5}}},
		Targets: []string{"met: ratio 18000x"},
	}}}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	for _, want := range []string{"| run | msgs_per_sec | p99_ms |", "| persistent | 90000 | 12.50 |", "met: ratio 18000x", "cores"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	var back report.Report
	js, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	if err := json.Unmarshal(js, &back); err != nil || len(back.Sections) != 1 || back.Sections[0].Rows[1].Metrics["msgs_per_sec"] != 90000 {
		t.Fatalf("results.json does not round-trip: %v %s", err, js)
	}
	svg, _ := os.ReadFile(filepath.Join(dir, "results.svg"))
	if !strings.HasPrefix(string(svg), "<svg") || strings.Count(string(svg), "<rect") != 3 {
		t.Fatalf("results.svg should hold a background and two bars:\n%s", svg)
	}
}
