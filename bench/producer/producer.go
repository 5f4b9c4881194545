// Package producer measures publishing to Kafka three ways on the same broker, payload and
// settings: a short-lived producer per message (the anti-pattern eventshop retires), the
// persistent producer of pkg/kafka, and Apache Kafka's own ProducerPerformance tool.
package producer

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventshop/eventshop/pkg/kafka"
)

// Settings are shared by every run so the comparison is fair.
type Settings struct {
	Brokers     string
	Topic       string
	RecordSize  int           // payload bytes
	Linger      time.Duration // linger.ms
	Compression string        // compression.type
}

// Result is one measured run.
type Result struct {
	Name        string  `json:"name"`
	Messages    int     `json:"messages"`
	Seconds     float64 `json:"seconds"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
	P50Millis   float64 `json:"p50_ms"`
	P99Millis   float64 `json:"p99_ms"`
	Errors      int     `json:"errors"`
	Description string  `json:"description"`
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return float64(sorted[i].Microseconds()) / 1000
}

func finish(r Result, elapsed time.Duration, lat []time.Duration, size int) Result {
	slices.Sort(lat)
	r.Seconds = elapsed.Seconds()
	r.MsgsPerSec = float64(r.Messages) / elapsed.Seconds()
	r.MBPerSec = r.MsgsPerSec * float64(size) / (1 << 20)
	r.P50Millis = percentile(lat, 0.50)
	r.P99Millis = percentile(lat, 0.99)
	return r
}

func config(s Settings) kafka.ProducerConfig {
	return kafka.ProducerConfig{Brokers: s.Brokers, ClientID: "bench", Linger: s.Linger, Compression: s.Compression}
}

// ShortLived creates, connects, sends one message (waiting for its ack), flushes and
// closes a producer for every message: what a handler that builds its own producer does.
func ShortLived(ctx context.Context, s Settings, n int) (Result, error) {
	value := payload(s.RecordSize)
	lat := make([]time.Duration, 0, n)
	r := Result{Name: "short-lived producer (one per message)", Messages: n,
		Description: "create + connect + metadata, send 1, wait for ack, flush, close; per message"}
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		p, err := kafka.NewProducer(ctx, config(s), nil)
		if err != nil {
			return r, fmt.Errorf("message %d: %w", i, err)
		}
		if err := p.Publish(ctx, kafka.Message{Topic: s.Topic, Key: []byte(strconv.Itoa(i)), Value: value}); err != nil {
			r.Errors++
		}
		if _, err := p.Close(ctx); err != nil {
			r.Errors++
		}
		lat = append(lat, time.Since(t0))
	}
	return finish(r, time.Since(start), lat, s.RecordSize), nil
}

// Persistent sends n messages through one long-lived producer, as fast as the caller
// can hand them over, and measures each message's time from Produce to acknowledgement.
func Persistent(ctx context.Context, s Settings, n int) (Result, error) {
	p, err := kafka.NewProducer(ctx, config(s), nil)
	if err != nil {
		return Result{}, err
	}
	defer func() { _, _ = p.Close(ctx) }()
	value := payload(s.RecordSize)
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		err := p.PublishAsync(ctx, kafka.Message{Topic: s.Topic, Key: []byte(strconv.Itoa(i)), Value: value}, func(err error) {
			lat[i] = time.Since(t0)
			if err != nil {
				errs.Add(1)
			}
			wg.Done()
		})
		if err != nil {
			return Result{}, fmt.Errorf("message %d: %w", i, err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := Result{Name: "persistent producer (pkg/kafka)", Messages: n, Errors: int(errs.Load()),
		Description: "one producer for the process; PublishAsync, latency = produce to broker ack"}
	return finish(r, elapsed, lat, s.RecordSize), nil
}

var perfLine = regexp.MustCompile(`^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th`)

// Java runs org.apache.kafka.tools.ProducerPerformance (from the kafka-tools jar on
// classpath) with the same record count, size, acks, idempotence, linger and compression.
func Java(ctx context.Context, s Settings, n int, javaBin, classpath string) (Result, error) {
	args := []string{"-Xmx512m", "-cp", classpath, "org.apache.kafka.tools.ProducerPerformance",
		"--topic", s.Topic, "--num-records", strconv.Itoa(n), "--record-size", strconv.Itoa(s.RecordSize), "--throughput", "-1",
		"--producer-props", "bootstrap.servers=" + s.Brokers, "acks=all", "enable.idempotence=true",
		"linger.ms=" + strconv.FormatInt(s.Linger.Milliseconds(), 10), "compression.type=" + s.Compression, "client.id=bench-java"}
	cmd := exec.CommandContext(ctx, javaBin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("ProducerPerformance: %w\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	var last []string
	for sc.Scan() {
		if m := perfLine.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			last = m
		}
	}
	if last == nil {
		return Result{}, fmt.Errorf("ProducerPerformance printed no summary line:\n%s", out)
	}
	f := func(i int) float64 { v, _ := strconv.ParseFloat(last[i], 64); return v }
	msgs, _ := strconv.Atoi(last[1])
	return Result{Name: "Apache Kafka ProducerPerformance (Java)", Messages: msgs, MsgsPerSec: f(2), MBPerSec: f(3),
		Seconds: float64(msgs) / f(2), P50Millis: f(6), P99Millis: f(8),
		Description: "org.apache.kafka.tools.ProducerPerformance, same broker and settings"}, nil
}
