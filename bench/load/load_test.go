package load_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/eventshop/eventshop/bench/load"
)

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct{ p, want float64 }{{50, 50}, {95, 95}, {99, 99}, {100, 100}, {0, 1}} {
		if got := load.Percentile(lat, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := load.Percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %v", got)
	}
}

// TestOpenLoopShowsQueueing: a target slower than the schedule with one request in
// flight at a time makes later requests wait; measured from the scheduled time, the
// wait must show in the tail (a closed-loop measurement would report ~20 ms for all).
func TestOpenLoopShowsQueueing(t *testing.T) {
	op := func(context.Context, int) error { time.Sleep(20 * time.Millisecond); return nil }
	st := load.OpenLoop(context.Background(), 100, 500*time.Millisecond, 1, op)
	if st.Requests != 50 || st.Errors != 0 {
		t.Fatalf("requests %d errors %d, want 50 and 0", st.Requests, st.Errors)
	}
	// Request 49 is due at 490 ms but cannot start before 49*20 = 980 ms.
	if st.Max < 400 {
		t.Fatalf("max latency %.1f ms: the queueing delay was hidden", st.Max)
	}
	if st.P50 < 20 {
		t.Fatalf("p50 %.1f ms is below the service time", st.P50)
	}
}

func TestOpenLoopKeepsRateAndCountsErrors(t *testing.T) {
	boom := errors.New("boom")
	var mu sync.Mutex
	seen := map[int]bool{}
	op := func(_ context.Context, i int) error {
		mu.Lock()
		seen[i] = true
		mu.Unlock()
		if i%10 == 0 {
			return boom
		}
		return nil
	}
	st := load.OpenLoop(context.Background(), 200, 500*time.Millisecond, 16, op)
	if st.Requests != 100 || len(seen) != 100 || st.Errors != 10 || st.FirstError != "boom" {
		t.Fatalf("requests %d distinct %d errors %d first %q", st.Requests, len(seen), st.Errors, st.FirstError)
	}
	if st.Elapsed < 490*time.Millisecond {
		t.Fatalf("100 requests at 200/s took %s: the schedule was not kept", st.Elapsed)
	}
	if st.P99 > 200 {
		t.Fatalf("p99 %.1f ms for an instant target", st.P99)
	}
}

func TestClosedLoop(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]bool{}
	op := func(_ context.Context, i int) error {
		mu.Lock()
		dup := seen[i]
		seen[i] = true
		mu.Unlock()
		if dup {
			return errors.New("request number reused")
		}
		time.Sleep(5 * time.Millisecond)
		return nil
	}
	st := load.ClosedLoop(context.Background(), 4, 300*time.Millisecond, op)
	if st.Errors != 0 {
		t.Fatal(st.FirstError)
	}
	// 4 workers x 300 ms / 5 ms = 240 at best; a loaded machine does fewer.
	if st.Requests < 20 || st.Requests > 260 || st.PerSec <= 0 || st.P50 < 5 {
		t.Fatalf("implausible %+v", st)
	}
}
