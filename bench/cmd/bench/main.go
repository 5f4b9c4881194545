// Command bench measures eventshop on the local stack and writes bench/results/results.{json,md,svg}.
//
//	go run ./cmd/bench                 # everything, the counts of `make bench`
//	go run ./cmd/bench -smoke          # tiny counts, to check the harness still works
//
// It expects the infrastructure of `make infra-up` (EVENTSHOP_KAFKA_BROKERS) and, for the
// Java comparison, the Kafka classpath cached by scripts/kafka.sh (EVENTSHOP_KAFKA_CLASSPATH).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
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
	flag.Parse()
	if o.smoke {
		o.short, o.persistent = 5, 500
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
	sec, err := producerSection(ctx, o)
	if err != nil {
		return err
	}
	rep.Sections = append(rep.Sections, sec)
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
