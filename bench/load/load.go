// Package load drives a request function at a fixed rate (open loop) or as fast as N
// workers can (closed loop) and summarises the latencies.
//
// The open loop schedules request i at start + i/rate and measures its latency from that
// scheduled time, not from when it was actually sent: when the target (or the generator)
// falls behind, the queueing delay shows in the percentiles instead of being hidden
// (coordinated omission).
package load

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Op sends request number i and returns its error, if any.
type Op func(ctx context.Context, i int) error

// Stats summarises one run. Latencies are in milliseconds.
type Stats struct {
	Requests   int
	Errors     int
	Elapsed    time.Duration
	PerSec     float64
	P50, P95   float64
	P99, Max   float64
	FirstError string
}

// recorder collects latencies from concurrent requests.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	errors   int
	firstErr string
}

func (r *recorder) add(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, d)
	if err != nil {
		r.errors++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
	}
}

func (r *recorder) stats(elapsed time.Duration) Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Requests: len(r.lat), Errors: r.errors, Elapsed: elapsed, FirstError: r.firstErr}
	if elapsed > 0 {
		s.PerSec = float64(len(r.lat)) / elapsed.Seconds()
	}
	lat := slices.Clone(r.lat)
	slices.Sort(lat)
	s.P50, s.P95, s.P99 = Percentile(lat, 50), Percentile(lat, 95), Percentile(lat, 99)
	if len(lat) > 0 {
		s.Max = ms(lat[len(lat)-1])
	}
	return s
}

// Percentile returns the p-th percentile (nearest rank) of sorted, in milliseconds; 0
// for an empty slice.
func Percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return ms(sorted[rank])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// OpenLoop sends rate requests per second for d, each on its own goroutine at its
// scheduled time, at most maxInFlight at once (a request that finds no free slot waits,
// and the wait counts in its latency). It returns when every request has finished.
func OpenLoop(ctx context.Context, rate float64, d time.Duration, maxInFlight int, op Op) Stats {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	slots := make(chan struct{}, max(1, maxInFlight))
	var rec recorder
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		scheduled := start.Add(time.Duration(i) * interval)
		if wait := time.Until(scheduled); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			err := op(ctx, i)
			rec.add(time.Since(scheduled), err)
		})
	}
	wg.Wait()
	return rec.stats(time.Since(start))
}

// ClosedLoop runs workers goroutines that each send their next request as soon as the
// previous one answered, for d. Request numbers are unique across workers.
func ClosedLoop(ctx context.Context, workers int, d time.Duration, op Op) Stats {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var rec recorder
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				t := time.Now()
				err := op(context.WithoutCancel(ctx), i)
				rec.add(time.Since(t), err)
			}
		})
	}
	wg.Wait()
	return rec.stats(time.Since(start))
}
