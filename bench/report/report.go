// Package report writes benchmark results as JSON, a Markdown table and an SVG bar chart.
package report

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Row is one line of a results table.
type Row struct {
	Name    string             `json:"name"`
	Metrics map[string]float64 `json:"metrics"`
	Note    string             `json:"note,omitempty"`
}

// Section is one table (one experiment).
type Section struct {
	Title   string   `json:"title"`
	Columns []string `json:"columns"` // metric keys, in order
	Rows    []Row    `json:"rows"`
	// Chart is the metric drawn as bars in the SVG (log scale); empty for none.
	Chart string `json:"chart,omitempty"`
	// Targets are lines like "persistent / short-lived >= 100x: met (412x)".
	Targets []string `json:"targets,omitempty"`
	// Notes explain the method or a result (a missed target's likely bottleneck).
	Notes []string `json:"notes,omitempty"`
}

// Machine describes where the numbers were taken.
type Machine struct {
	Time     string `json:"time"`
	Cores    int    `json:"cores"`
	MemoryMB int    `json:"memory_mb"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Kafka    string `json:"kafka"`
	Command  string `json:"command"`
}

// Report is everything one `make bench` measured.
type Report struct {
	Machine  Machine   `json:"machine"`
	Sections []Section `json:"sections"`
}

// NewMachine reads the machine facts.
func NewMachine(kafkaVersion, command string) Machine {
	return Machine{Time: time.Now().UTC().Format(time.RFC3339), Cores: runtime.NumCPU(), MemoryMB: memTotalMB(),
		Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Kafka: kafkaVersion, Command: command}
}

func memTotalMB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return kb / 1024
		}
	}
	return 0
}

// Markdown renders the report.
func (r Report) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# eventshop benchmarks\n\n%s; %d cores, %d MB; %s %s; Kafka %s; `%s`\n", m.Time, m.Cores, m.MemoryMB, m.Go, m.OS, m.Kafka, m.Command)
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n| run | %s |\n|---|%s\n", s.Title, strings.Join(s.Columns, " | "), strings.Repeat("---:|", len(s.Columns)))
		for _, row := range s.Rows {
			cells := make([]string, len(s.Columns))
			for i, c := range s.Columns {
				cells[i] = format(row.Metrics[c])
			}
			fmt.Fprintf(&b, "| %s | %s |\n", row.Name, strings.Join(cells, " | "))
		}
		for _, row := range s.Rows {
			if row.Note != "" {
				fmt.Fprintf(&b, "\n- %s: %s", row.Name, row.Note)
			}
		}
		b.WriteString("\n")
		if len(s.Targets) > 0 {
			b.WriteString("\nTargets:\n")
			for _, t := range s.Targets {
				fmt.Fprintf(&b, "- %s\n", t)
			}
		}
		if len(s.Notes) > 0 {
			b.WriteString("\nNotes:\n")
			for _, n := range s.Notes {
				fmt.Fprintf(&b, "- %s\n", n)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func format(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// SVG draws each section's chart metric as horizontal bars on a log scale.
func (r Report) SVG() string {
	const width, barH, left = 900, 26, 330
	var b strings.Builder
	y := 40
	var body strings.Builder
	for _, s := range r.Sections {
		if s.Chart == "" {
			continue
		}
		fmt.Fprintf(&body, `<text x="10" y="%d" font-size="15" font-weight="bold">%s (%s, log scale)</text>`+"\n", y, html.EscapeString(s.Title), html.EscapeString(s.Chart))
		y += 12
		maxV := 1.0
		for _, row := range s.Rows {
			maxV = math.Max(maxV, row.Metrics[s.Chart])
		}
		for _, row := range s.Rows {
			v := row.Metrics[s.Chart]
			w := 0.0
			if v > 1 {
				w = math.Log10(v) / math.Log10(maxV) * float64(width-left-120)
			}
			fmt.Fprintf(&body, `<text x="10" y="%d" font-size="12">%s</text><rect x="%d" y="%d" width="%.0f" height="%d" fill="#3b7dd8"/><text x="%.0f" y="%d" font-size="12">%s</text>`+"\n",
				y+17, html.EscapeString(row.Name), left, y+4, w, barH-8, float64(left)+w+6, y+17, format(v))
			y += barH
		}
		y += 24
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">`+"\n", width, y)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="22" font-size="13">%s</text>`+"\n", html.EscapeString(fmt.Sprintf("eventshop benchmarks, %s, %d cores", r.Machine.Time, r.Machine.Cores)))
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}

// Write saves results.json, results.md and results.svg into dir.
func (r Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{"results.json": js, "results.md": []byte(r.Markdown()), "results.svg": []byte(r.SVG())}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
