// Package proc reads the resident memory and CPU time of processes from /proc, and keeps
// the peak memory while load runs.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RSS returns the resident set size of pid in MB (VmRSS of /proc/<pid>/status).
func RSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss of %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				return 0, fmt.Errorf("rss of %d: %q: %w", pid, line, err)
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, fmt.Errorf("rss of %d: no VmRSS line", pid)
}

// PIDFile reads a pid file such as $EVENTSHOP_WORK/pids/cart.pid.
func PIDFile(dir, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file of %s: %w", name, err)
	}
	return pid, nil
}

// Peak samples the RSS of pids every interval until ctx ends, keeping each one's maximum.
type Peak struct {
	mu   sync.Mutex
	peak map[string]float64
}

// Sample runs until ctx is done.
func (p *Peak) Sample(ctx context.Context, pids map[string]int, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for name, pid := range pids {
			if mb, err := RSS(pid); err == nil {
				p.mu.Lock()
				if p.peak == nil {
					p.peak = map[string]float64{}
				}
				p.peak[name] = max(p.peak[name], mb)
				p.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Max returns the highest RSS seen for name, in MB.
func (p *Peak) Max(name string) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak[name]
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// CPUSeconds returns the user+system CPU time pid has used, and, with children, that of
// its direct children too (PostgreSQL's backends are children of the postmaster).
func CPUSeconds(pid int, children bool) (float64, error) {
	total, _, err := cpuOf(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	if !children {
		return total, nil
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		t, pp, err := cpuOf(f)
		if err == nil && pp == pid {
			total += t
		}
	}
	return total, nil
}

// cpuOf parses a /proc/<pid>/stat file: utime+stime in seconds, and the parent pid.
func cpuOf(path string) (float64, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it are plain.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("%s: no command name", path)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%s: %d fields", path, len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseFloat(f[11], 64)
	st, err3 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return (ut + st) / clockTicks, ppid, nil
}

// MachineCPU returns the busy and total CPU seconds of the whole machine so far, summed
// over its cores (the "cpu" line of /proc/stat; idle and iowait count as not busy).
func MachineCPU() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy / clockTicks, total / clockTicks, nil
}
