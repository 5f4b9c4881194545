package proc_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eventshop/eventshop/bench/proc"
)

func TestReadsThisProcess(t *testing.T) {
	pid := os.Getpid()
	mb, err := proc.RSS(pid)
	if err != nil || mb <= 1 || mb > 10_000 {
		t.Fatalf("RSS = %v, %v", mb, err)
	}
	// Burn CPU until the reading moves (it counts 10 ms ticks; the machine is shared).
	before, err := proc.CPUSeconds(pid, false)
	if err != nil {
		t.Fatal(err)
	}
	cpu := before
	for x, deadline := 0, time.Now().Add(30*time.Second); cpu <= before && time.Now().Before(deadline); x++ {
		_ = strconv.Itoa(x)
		if x%100_000 == 0 {
			if cpu, err = proc.CPUSeconds(pid, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if cpu <= before {
		t.Fatalf("CPUSeconds stayed at %v after 30 s of busy loop", cpu)
	}
	busy, total, err := proc.MachineCPU()
	if err != nil || busy <= 0 || total < busy {
		t.Fatalf("MachineCPU = %v, %v, %v", busy, total, err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "me.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := proc.PIDFile(dir, "me")
	if err != nil || got != pid {
		t.Fatalf("PIDFile = %d, %v; want %d", got, err, pid)
	}
	var peak proc.Peak
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	peak.Sample(ctx, map[string]int{"me": pid}, 10*time.Millisecond)
	if peak.Max("me") <= 1 || peak.Max("nobody") != 0 {
		t.Fatalf("peak me %v, nobody %v", peak.Max("me"), peak.Max("nobody"))
	}
}
