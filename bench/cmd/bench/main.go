// Command bench measures eventshop on the local stack and writes bench/results/results.{json,md,svg}.
//
//	go run ./cmd/bench                 # everything, the counts of `make bench`
//	go run ./cmd/bench -smoke          # tiny counts, to check the harness still works
//	go run ./cmd/bench -sections cart,memory
//
// Sections: producer (short-lived vs persistent vs Kafka's ProducerPerformance), cart (cart
// API load over HTTP and gRPC, open loop and maximum throughput, and the end-to-end
// latency to the inventory's reservation), consumer (inventory events applied per second,
// on a self-started inventory process, fresh database and topics) and memory (RSS of each
// service idle and under the maximum-throughput load).
//
// It expects the infrastructure of `make infra-up` (EVENTSHOP_KAFKA_BROKERS,
// EVENTSHOP_POSTGRES_URL), for the Java comparison the Kafka classpath cached by
// scripts/kafka.sh (EVENTSHOP_KAFKA_CLASSPATH), and for cart and memory the running `make
// up` stack (pids in $EVENTSHOP_WORK/pids). Load is bounded in count and time and goes to
// loopback only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/eventshop/eventshop/bench/producer"
	"github.com/eventshop/eventshop/bench/report"
	"github.com/eventshop/eventshop/pkg/kafka"
)

type options struct {
	brokers    string
	classpath  string
	out        string
	short      int
	persistent int
	size       int
	smoke      bool
	kafkaVer   string

	sections    string
	postgresURL string
	repoRoot    string
	cartHTTP    string
	cartGRPC    string
	serviceHTTP string
	invTopic    string
	pidDir      string
	rate        float64
	e2eRate     float64
	duration    time.Duration
	workers     int
	users       int
	consumerN   int
}

func main() {
	var o options
	flag.StringVar(&o.brokers, "brokers", env("EVENTSHOP_KAFKA_BROKERS", "127.0.0.1:19092"), "Kafka bootstrap servers")
	flag.StringVar(&o.classpath, "kafka-classpath", env("EVENTSHOP_KAFKA_CLASSPATH", ".work/kafka/classpath.txt"), "file holding the Kafka jars' classpath (for ProducerPerformance)")
	flag.StringVar(&o.out, "out", "bench/results", "directory for results.json, results.md, results.svg")
	flag.IntVar(&o.short, "short-lived", 300, "messages for the short-lived producer")
	flag.IntVar(&o.persistent, "messages", 200_000, "messages for the persistent producer and ProducerPerformance")
	flag.IntVar(&o.size, "record-size", 200, "payload bytes per message")
	flag.BoolVar(&o.smoke, "smoke", false, "tiny counts: check that the harness works, not how fast")
	flag.StringVar(&o.kafkaVer, "kafka-version", "4.1.1", "broker version, for the report")
	flag.StringVar(&o.sections, "sections", "producer,cart,consumer,memory", "comma-separated sections to run")
	flag.StringVar(&o.postgresURL, "postgres", env("EVENTSHOP_POSTGRES_URL", "postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable"), "PostgreSQL server URL (consumer section creates a database there)")
	flag.StringVar(&o.repoRoot, "repo", ".", "repository root (to build the inventory command)")
	flag.StringVar(&o.cartHTTP, "cart-http", "http://127.0.0.1:8081", "cart HTTP base URL of the running stack")
	flag.StringVar(&o.cartGRPC, "cart-grpc", "127.0.0.1:9081", "cart gRPC address of the running stack")
	flag.StringVar(&o.serviceHTTP, "service-http", "inventory=http://127.0.0.1:8082,order=http://127.0.0.1:8083,discount=http://127.0.0.1:8084", "HTTP base URLs of the other services (for /metrics)")
	flag.StringVar(&o.invTopic, "inventory-topic", "inventory.events.v1", "inventory events topic of the running stack")
	flag.StringVar(&o.pidDir, "pids", filepath.Join(env("EVENTSHOP_WORK", ".work"), "pids"), "pid files of the running stack")
	flag.Float64Var(&o.rate, "rate", 500, "open-loop requests per second")
	flag.Float64Var(&o.e2eRate, "e2e-rate", 100, "open-loop rate of a first run below saturation, for end-to-end latency (0: none)")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of each cart load run")
	flag.IntVar(&o.workers, "workers", 32, "closed-loop workers of the maximum-throughput run")
	flag.IntVar(&o.users, "users", 200, "simulated users per cart load run")
	flag.IntVar(&o.consumerN, "consumer-events", 20_000, "cart events the consumer section applies")
	flag.Parse()
	if o.smoke {
		o.short, o.persistent = 5, 500
		o.rate, o.e2eRate, o.duration, o.workers, o.users, o.consumerN = 50, 20, 2*time.Second, 4, 20, 200
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, o options) error {
	rep := report.Report{Machine: report.NewMachine(o.kafkaVer, strings.Join(os.Args, " "))}
	want := map[string]bool{}
	for s := range strings.SplitSeq(o.sections, ",") {
		switch s = strings.TrimSpace(s); s {
		case "producer", "cart", "consumer", "memory":
			want[s] = true
		default:
			return fmt.Errorf("unknown section %q (want producer, cart, consumer, memory)", s)
		}
	}
	if want["producer"] {
		sec, err := producerSection(ctx, o)
		if err != nil {
			return err
		}
		rep.Sections = append(rep.Sections, sec)
	}
	if want["cart"] || want["memory"] {
		secs, err := cartSections(ctx, o, want["cart"], want["memory"])
		if err != nil {
			return err
		}
		rep.Sections = append(rep.Sections, secs...)
	}
	if want["consumer"] {
		sec, err := consumerSection(ctx, o)
		if err != nil {
			return err
		}
		rep.Sections = append(rep.Sections, sec)
	}
	if err := rep.Write(o.out); err != nil {
		return err
	}
	fmt.Print(rep.Markdown())
	fmt.Printf("\nwritten to %s/results.{json,md,svg}\n", o.out)
	return nil
}

func producerSection(ctx context.Context, o options) (report.Section, error) {
	topic := fmt.Sprintf("bench.producer.%d", time.Now().UnixNano())
	if err := kafka.EnsureTopics(ctx, o.brokers, kafka.TopicSpec{Name: topic, Partitions: 6}); err != nil {
		return report.Section{}, err
	}
	defer func() { _ = kafka.DeleteTopics(context.WithoutCancel(ctx), o.brokers, topic) }()
	s := producer.Settings{Brokers: o.brokers, Topic: topic, RecordSize: o.size, Linger: 5 * time.Millisecond, Compression: "lz4"}

	fmt.Fprintf(os.Stderr, "producer: short-lived x%d ...\n", o.short)
	short, err := producer.ShortLived(ctx, s, o.short)
	if err != nil {
		return report.Section{}, err
	}
	fmt.Fprintf(os.Stderr, "producer: persistent x%d ...\n", o.persistent)
	pers, err := producer.Persistent(ctx, s, o.persistent)
	if err != nil {
		return report.Section{}, err
	}
	results := []producer.Result{short, pers}
	var java *producer.Result
	if cp, err := os.ReadFile(o.classpath); err == nil {
		if javaBin, err := exec.LookPath("java"); err == nil {
			fmt.Fprintf(os.Stderr, "producer: Java ProducerPerformance x%d ...\n", o.persistent)
			j, err := producer.Java(ctx, s, o.persistent, javaBin, strings.TrimSpace(string(cp)))
			if err != nil {
				return report.Section{}, err
			}
			java = &j
			results = append(results, j)
		}
	} else {
		fmt.Fprintf(os.Stderr, "producer: no Kafka classpath at %s (run scripts/kafka.sh classpath): skipping ProducerPerformance\n", o.classpath)
	}

	sec := report.Section{
		Title:   fmt.Sprintf("Producers: %d-byte records, acks=all, idempotence on, linger 5 ms, lz4, same broker", o.size),
		Columns: []string{"messages", "msgs_per_sec", "mb_per_sec", "p50_ms", "p99_ms", "errors"},
		Chart:   "msgs_per_sec",
	}
	for _, r := range results {
		sec.Rows = append(sec.Rows, report.Row{Name: r.Name, Note: r.Description, Metrics: map[string]float64{
			"messages": float64(r.Messages), "msgs_per_sec": r.MsgsPerSec, "mb_per_sec": r.MBPerSec,
			"p50_ms": r.P50Millis, "p99_ms": r.P99Millis, "errors": float64(r.Errors)}})
	}
	ratio := pers.MsgsPerSec / short.MsgsPerSec
	sec.Targets = append(sec.Targets, target(fmt.Sprintf("persistent / short-lived throughput >= 100x: %.0fx", ratio), ratio >= 100))
	if java != nil {
		jr := pers.MsgsPerSec / java.MsgsPerSec
		sec.Targets = append(sec.Targets, target(fmt.Sprintf("persistent / Java ProducerPerformance >= 1.0x: %.2fx", jr), jr >= 1.0))
	}
	if o.smoke {
		sec.Targets = append(sec.Targets, "smoke run: counts too small for the targets to mean anything")
	}
	return sec, nil
}

func target(text string, met bool) string {
	if met {
		return "met: " + text
	}
	return "MISSED: " + text
}
