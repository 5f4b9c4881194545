package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventshop/eventshop/bench/cartload"
	"github.com/eventshop/eventshop/bench/e2elat"
	"github.com/eventshop/eventshop/bench/load"
	"github.com/eventshop/eventshop/bench/proc"
	"github.com/eventshop/eventshop/bench/report"
	"github.com/eventshop/eventshop/pkg/kafka"
)

var services = []string{"cart", "inventory", "discount", "order"}

// machineKey holds the whole machine's busy CPU among the per-process readings.
const machineKey = "whole machine"

// run is one cart load run and its outcome.
type loadRun struct {
	name, note string
	stats      load.Stats
}

// cartSections runs the cart load (withCart) and the memory sampling (withMemory) against
// the running stack and returns their report sections.
func cartSections(ctx context.Context, o options, withCart, withMemory bool) ([]report.Section, error) {
	if err := ready(ctx, o.cartHTTP); err != nil {
		return nil, fmt.Errorf("cart and memory sections need the running stack (make up): %w", err)
	}
	pids := map[string]int{}
	idle := map[string]float64{}
	if withMemory {
		for _, s := range services {
			pid, err := proc.PIDFile(o.pidDir, s)
			if err != nil {
				return nil, fmt.Errorf("memory: pid of %s (is `make up` running?): %w", s, err)
			}
			if idle[s], err = proc.RSS(pid); err != nil {
				return nil, err
			}
			pids[s] = pid
		}
	}
	httpc := cartload.NewHTTP(o.cartHTTP, o.workers+64)
	defer func() { _ = httpc.Close() }()
	grpcc, err := cartload.NewGRPC(o.cartGRPC)
	if err != nil {
		return nil, err
	}
	defer func() { _ = grpcc.Close() }()
	run := fmt.Sprintf("bench%d", time.Now().Unix()%1_000_000)
	var plans []*cartload.Plan
	plan := func(name string) *cartload.Plan {
		p := cartload.NewPlan(run+"-"+name, o.users)
		plans = append(plans, p)
		return p
	}
	defer func() {
		failed := 0
		for _, p := range plans {
			failed += p.Cleanup(context.WithoutCancel(ctx), httpc, 8)
		}
		if failed > 0 {
			fmt.Fprintf(os.Stderr, "cart: cleanup: %d lines not removed (their reservations expire after the hold time)\n", failed)
		}
	}()

	var runs []loadRun
	var e2es []e2eRun
	openLoop := func(rate float64, name, proto string, c cartload.Client, rec *cartload.Recorder) {
		fmt.Fprintf(os.Stderr, "cart: %s open loop %.0f/s for %s ...\n", proto, rate, o.duration)
		st := load.OpenLoop(ctx, rate, o.duration, 512, cartload.Op(c, plan(name), rec))
		runs = append(runs, loadRun{fmt.Sprintf("%s open loop %.0f/s", proto, rate), "latency from the scheduled send time", st})
	}
	var col *e2elat.Collector
	withE2E := func(rate float64, name string) error {
		rec := &cartload.Recorder{}
		openLoop(rate, name, "HTTP", httpc, rec)
		fmt.Fprintf(os.Stderr, "cart: matching %d accepted adds to inventory outcomes ...\n", len(rec.All()))
		r, err := e2elat.Wait(ctx, col, rec.All(), 60*time.Second)
		e2es = append(e2es, e2eRun{rate: rate, res: r})
		return err
	}
	if withCart {
		col = &e2elat.Collector{}
		stopReader, err := readOutcomes(ctx, o, run, col)
		if err != nil {
			return nil, err
		}
		defer stopReader()
		// Below saturation first, on a stack without backlog.
		if o.e2eRate > 0 && o.e2eRate != o.rate {
			if err := withE2E(o.e2eRate, "ho0"); err != nil {
				return nil, err
			}
		}
	}

	// The HTTP maximum-throughput run, with memory and CPU sampled while it runs: before
	// the runs above the stack's capacity, whose queues would still be in the heap.
	before := map[string]float64{}
	for s, pid := range pids {
		before[s], _ = proc.RSS(pid)
	}
	peak := sample(ctx, pids)
	cpu0 := cpuNow(o)
	fmt.Fprintf(os.Stderr, "cart: HTTP max throughput, %d workers for %s ...\n", o.workers, o.duration)
	st := load.ClosedLoop(ctx, o.workers, o.duration, cartload.Op(httpc, plan("hm"), nil))
	cpu := cpuShare(cpu0, cpuNow(o), st.Elapsed)
	peak.stop()
	heap := map[string]float64{}
	if withMemory {
		for s, base := range metricsURLs(o) {
			if mb, err := goHeapMB(ctx, base); err == nil {
				heap[s] = mb
			}
		}
	}
	httpMax := st
	runs = append(runs, loadRun{fmt.Sprintf("HTTP max, %d workers", o.workers), "closed loop", st})

	var overload *sampler
	if withCart {
		overload = sample(ctx, pids)
		if err := withE2E(o.rate, "ho1"); err != nil {
			return nil, err
		}
		openLoop(o.rate, "go", "gRPC", grpcc, nil)
		overload.stop()
		fmt.Fprintf(os.Stderr, "cart: gRPC max throughput, %d workers for %s ...\n", o.workers, o.duration)
		st := load.ClosedLoop(ctx, o.workers, o.duration, cartload.Op(grpcc, plan("gm"), nil))
		runs = append(runs, loadRun{fmt.Sprintf("gRPC max, %d workers", o.workers), "closed loop, one HTTP/2 connection", st})
	}

	var secs []report.Section
	if withCart {
		secs = append(secs, loadSection(o, runs, httpMax, cpu), e2eSection(o, e2es))
	}
	if withMemory {
		secs = append(secs, memorySection(o, idle, before, heap, peak, overload, cpu, httpMax))
	}
	return secs, nil
}

// sampler records the peak RSS of each service from sample until stop.
type sampler struct {
	proc.Peak
	stop func()
}

func sample(ctx context.Context, pids map[string]int) *sampler {
	sp := &sampler{}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sp.Sample(sctx, pids, 250*time.Millisecond); close(done) }()
	sp.stop = func() { cancel(); <-done }
	return sp
}

// metricsURLs returns each service's HTTP base URL: the cart's from -cart-http, the
// others' from -service-http.
func metricsURLs(o options) map[string]string {
	out := map[string]string{"cart": o.cartHTTP}
	for kv := range strings.SplitSeq(o.serviceHTTP, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			out[k] = v
		}
	}
	return out
}

// goHeapMB reads go_memstats_heap_inuse_bytes from base/metrics, in MB.
func goHeapMB(ctx context.Context, base string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("%s/metrics: %w", base, err)
			}
			return f / (1 << 20), nil
		}
	}
	return 0, fmt.Errorf("%s/metrics: no go_memstats_heap_inuse_bytes", base)
}

// ready checks that the cart at base answers /readyz.
func ready(ctx context.Context, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cart %s: %w", base, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cart %s/readyz: %s", base, resp.Status)
	}
	return nil
}

// readOutcomes collects the inventory's outcomes from the stack's inventory topic under a
// group of its own, from the earliest offset, until the returned stop is called.
func readOutcomes(ctx context.Context, o options, run string, col *e2elat.Collector) (stop func(), err error) {
	log := slog.New(slog.DiscardHandler)
	pr, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: o.brokers, ClientID: "bench-e2e"}, log)
	if err != nil {
		return nil, err
	}
	r, err := kafka.NewRunner(kafka.ConsumerConfig{Brokers: o.brokers, GroupID: run + "-e2e", Topics: []string{o.invTopic}}, pr, col.Handler(), log)
	if err != nil {
		_, _ = pr.Close(ctx)
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	return func() {
		cancel()
		<-done
		_, _ = pr.Close(context.WithoutCancel(ctx))
	}, nil
}

func loadSection(o options, runs []loadRun, httpMax load.Stats, cpu map[string]float64) report.Section {
	sec := report.Section{
		Title:   fmt.Sprintf("Cart AddItem load against the running stack: %d users per run, quantity 1, %s per run", o.users, o.duration),
		Columns: []string{"requests", "req_per_sec", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors"},
		Chart:   "req_per_sec",
	}
	for _, r := range runs {
		note := r.note
		if r.stats.FirstError != "" {
			note += "; first error: " + strings.TrimSpace(r.stats.FirstError)
		}
		sec.Rows = append(sec.Rows, report.Row{Name: r.name, Note: note, Metrics: map[string]float64{
			"requests": float64(r.stats.Requests), "req_per_sec": r.stats.PerSec, "p50_ms": r.stats.P50, "p95_ms": r.stats.P95,
			"p99_ms": r.stats.P99, "max_ms": r.stats.Max, "errors": float64(r.stats.Errors)}})
	}
	met := httpMax.PerSec >= 3000 && httpMax.P99 <= 25 && httpMax.Errors == 0
	sec.Targets = append(sec.Targets, target(fmt.Sprintf("cart HTTP AddItem >= 3,000 req/s with p99 <= 25 ms (max-throughput run): %.0f req/s, p99 %.1f ms, %d errors",
		httpMax.PerSec, httpMax.P99, httpMax.Errors), met))
	sec.Notes = append(sec.Notes,
		"open loop: request i is due at start + i/rate whatever happened to the others; its latency runs from that due time, so a stall shows as queueing instead of being hidden (no coordinated omission)",
		"the load generator runs on the same machine and shares its cores with the services, PostgreSQL and Kafka",
		cpuNote(cpu))
	if !met {
		sec.Notes = append(sec.Notes, "likely bottleneck of the missed target: "+bottleneck(cpu))
	}
	if o.smoke {
		sec.Targets = append(sec.Targets, "smoke run: counts too small for the targets to mean anything")
	}
	return sec
}

// e2eRun is the end-to-end latency of one open-loop run.
type e2eRun struct {
	rate float64
	res  e2elat.Result
}

func e2eSection(o options, runs []e2eRun) report.Section {
	sec := report.Section{
		Title:   "End-to-end latency: cart API response to inventory reservation commit (HTTP open loop)",
		Columns: []string{"matched", "unmatched", "p50_ms", "p99_ms", "max_ms"},
	}
	for _, run := range runs {
		r := run.res
		sec.Rows = append(sec.Rows, report.Row{Name: fmt.Sprintf("AddItem -> StockReserved/ReservationRejected at %.0f/s", run.rate), Metrics: map[string]float64{
			"matched": float64(r.Matched), "unmatched": float64(r.Unmatched), "p50_ms": r.P50, "p99_ms": r.P99, "max_ms": r.Max}})
		if run.rate == o.rate {
			sec.Targets = append(sec.Targets, target(fmt.Sprintf("end-to-end p99 <= 100 ms at %.0f req/s: p99 %.1f ms (%d matched, %d unmatched)", o.rate, r.P99, r.Matched, r.Unmatched),
				r.P99 <= 100 && r.Matched > 0 && r.Unmatched == 0))
		}
	}
	if len(runs) > 1 {
		sec.Notes = append(sec.Notes, fmt.Sprintf("the %.0f/s run comes first, on a stack without backlog, below what the stack sustains (see the max-throughput runs): it shows the pipeline's own latency; the %.0f/s run follows the HTTP max-throughput run, and a rate above the stack's ceiling measures the queue in front of it", o.e2eRate, o.rate))
	}
	sec.Notes = append(sec.Notes,
		"method: each accepted AddItem is recorded with the cart id, cart version and product from the API's answer and the time the answer arrived; "+
			"the inventory announces every ItemAdded's outcome (StockReserved or ReservationRejected) in the transaction that applies it, with occurred_at set there; "+
			"per cart and product the k-th outcome (inventory aggregate_version order) is the k-th add (cart version order), since a cart's events stay on one partition and each ItemAdded yields exactly one outcome; "+
			"latency = occurred_at - answer arrival, both on this machine's clock; the path is cart outbox commit -> relay (LISTEN/NOTIFY) -> Kafka (acks=all) -> inventory consumer -> inventory transaction",
		"rejections are expected once the run has reserved a product's whole stock: they take the same path and commit in the same kind of transaction; the bench removes its lines afterwards, which releases what it reserved")
	return sec
}

func memorySection(o options, idle, before, heap map[string]float64, peak, overload *sampler, cpu map[string]float64, run load.Stats) report.Section {
	sec := report.Section{
		Title:   fmt.Sprintf("Resident memory (VmRSS) of each service: idle, and peak during the HTTP max-throughput run (%d workers)", o.workers),
		Columns: []string{"idle_mb", "before_max_mb", "load_mb", "go_heap_inuse_mb", "cpu_pct_under_load"},
	}
	if overload != nil {
		sec.Columns = append(sec.Columns, "overload_mb")
	}
	worst, worstName := 0.0, ""
	for _, s := range services {
		mb := peak.Max(s)
		if mb > worst {
			worst, worstName = mb, s
		}
		m := map[string]float64{"idle_mb": idle[s], "before_max_mb": before[s], "load_mb": mb, "go_heap_inuse_mb": heap[s], "cpu_pct_under_load": cpu[s]}
		if overload != nil {
			m["overload_mb"] = overload.Max(s)
		}
		sec.Rows = append(sec.Rows, report.Row{Name: s, Metrics: m})
	}
	sec.Targets = append(sec.Targets, target(fmt.Sprintf("each service <= 60 MB resident under load: largest %s %.1f MB", worstName, worst), worst > 0 && worst <= 60))
	sec.Notes = append(sec.Notes, "RSS read from /proc/<pid>/status every 250 ms; pids from "+o.pidDir+"; idle_mb before any load, before_max_mb just before the max-throughput run; cpu_pct is the share of one core over the run",
		fmt.Sprintf("the load: %d AddItems in %s, %.0f req/s, p99 %.1f ms, %d errors; %s", run.Requests, run.Elapsed.Round(time.Millisecond), run.PerSec, run.P99, run.Errors, cpuNote(cpu)),
		"go_heap_inuse_mb is go_memstats_heap_inuse_bytes from each service's /metrics right after the run; the rest of the RSS is the binary's mapped code (about 25 MB, librdkafka is linked in), librdkafka's C buffers (consumer pre-fetch is capped at 8 MB per group), stacks and heap the Go runtime has not yet returned to the OS")
	if overload != nil {
		sec.Notes = append(sec.Notes, fmt.Sprintf("overload_mb is the peak during the HTTP and gRPC open-loop runs at %.0f/s, above what the stack sustains: up to 512 requests then wait in each service's queue, and their goroutines and buffers grow the heap; the Go runtime returns that memory to the OS only gradually afterwards", o.rate))
	}
	return sec
}

// cpuNow reads the CPU seconds used so far by each service, PostgreSQL (the postmaster and
// its backends), Kafka and this process.
func cpuNow(o options) map[string]float64 {
	out := map[string]float64{}
	for _, s := range append(slices.Clone(services), "postgres", "kafka") {
		pid, err := proc.PIDFile(o.pidDir, s)
		if err != nil {
			continue
		}
		if sec, err := proc.CPUSeconds(pid, s == "postgres"); err == nil {
			out[s] = sec
		}
	}
	if sec, err := proc.CPUSeconds(os.Getpid(), false); err == nil {
		out["bench client"] = sec
	}
	if busy, _, err := proc.MachineCPU(); err == nil {
		out[machineKey] = busy
	}
	return out
}

// cpuShare turns two readings into percent of one core over elapsed.
func cpuShare(before, after map[string]float64, elapsed time.Duration) map[string]float64 {
	out := map[string]float64{}
	for k, a := range after {
		if b, ok := before[k]; ok && elapsed > 0 {
			out[k] = (a - b) / elapsed.Seconds() * 100
		}
	}
	return out
}

func cpuNote(cpu map[string]float64) string {
	if len(cpu) == 0 {
		return "CPU during the HTTP max run: not measured (no pid files)"
	}
	keys := make([]string, 0, len(cpu))
	total := 0.0
	for k, v := range cpu {
		if k == machineKey {
			continue
		}
		keys = append(keys, k)
		total += v
	}
	slices.SortFunc(keys, func(a, b string) int { return int(cpu[b] - cpu[a]) })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, cpu[k]))
	}
	return fmt.Sprintf("CPU during the HTTP max run, in %% of one core (the machine has %d): %s; sum %.0f%%; whole machine busy %.0f%% (the rest is other processes)",
		report.NewMachine("", "").Cores, strings.Join(parts, ", "), total, cpu[machineKey])
}

// bottleneck names the likely limit from the CPU shares measured during the max run.
func bottleneck(cpu map[string]float64) string {
	cores := float64(report.NewMachine("", "").Cores)
	top, topV := "", 0.0
	for k, v := range cpu {
		if k != machineKey && v > topV {
			top, topV = k, v
		}
	}
	if total := cpu[machineKey]; total >= cores*100*0.85 {
		return fmt.Sprintf("the machine's CPU: it was %.0f%% busy of %.0f%%, so the run is CPU-bound on shared cores (largest of ours: %s at %.0f%%); "+
			"each AddItem costs an HTTP->gRPC gateway hop, a JWT check, a PostgreSQL transaction writing the cart and an outbox row, the relay's publish and mark-sent, and downstream the three consumers' transactions, all on the same 2 cores",
			total, cores*100, top, topV)
	}
	return fmt.Sprintf("not CPU (the machine was %.0f%% busy of %.0f%%): waiting, most likely PostgreSQL commit latency and the cart's connection pool (DATABASE_MAX_CONNS, 20 by default); largest CPU user of ours %s at %.0f%%", cpu[machineKey], cores*100, top, topV)
}
