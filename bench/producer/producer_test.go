package producer_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/bench/producer"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// TestSmoke runs every producer measurement with tiny counts against the real broker so
// that the benchmark harness cannot rot; it says nothing about speed.
func TestSmoke(t *testing.T) {
	brokers := testkit.KafkaBrokers(t)
	ctx := testkit.Context(t, 2*time.Minute)
	s := producer.Settings{Brokers: brokers, Topic: testkit.Topic(t, brokers, 3), RecordSize: 100, Linger: 5 * time.Millisecond, Compression: "lz4"}

	short, err := producer.ShortLived(ctx, s, 2)
	if err != nil {
		t.Fatal(err)
	}
	pers, err := producer.Persistent(ctx, s, 300)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []producer.Result{short, pers} {
		if r.Errors != 0 || r.MsgsPerSec <= 0 || r.P99Millis < r.P50Millis || r.P50Millis <= 0 {
			t.Fatalf("implausible result %+v", r)
		}
	}
	if short.Messages != 2 || pers.Messages != 300 {
		t.Fatalf("counts %d, %d", short.Messages, pers.Messages)
	}

	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cpFile := os.Getenv("EVENTSHOP_KAFKA_CLASSPATH")
	if cpFile == "" {
		cpFile = filepath.Join(root, ".work", "kafka", "classpath.txt")
	}
	cp, err := os.ReadFile(cpFile)
	javaBin, jerr := exec.LookPath("java")
	if err != nil || jerr != nil {
		t.Skipf("no Kafka classpath (%v) or java (%v): ProducerPerformance part skipped", err, jerr)
	}
	j, err := producer.Java(ctx, s, 300, javaBin, strings.TrimSpace(string(cp)))
	if err != nil {
		t.Fatal(err)
	}
	if j.Messages != 300 || j.MsgsPerSec <= 0 {
		t.Fatalf("ProducerPerformance result %+v", j)
	}
}
