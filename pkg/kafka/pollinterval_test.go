package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// A handler (or its in-place retries) that keeps the runner from polling for longer than
// MaxPollInterval gets the member removed from the group by librdkafka. When the handler
// finally returns, the runner must learn that its partitions were lost, rejoin, take up
// the partition again from the committed offset (the slow message comes again: at least
// once) and go on: nothing skipped, nothing stuck, offsets committed to the end.
func TestRunnerSlowerThanMaxPollInterval(t *testing.T) {
	brokers := testkit.KafkaBrokers(t)
	cases := []struct {
		name string
		// slow handles message "2" the first time(s): it returns when the attempt is done.
		slow func(ctx context.Context, attempt int, firstAt time.Time) error
	}{
		{"OneAttemptBlocksLonger", func(ctx context.Context, attempt int, _ time.Time) error {
			if attempt == 1 {
				select {
				case <-time.After(pollInterval + 4*time.Second):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}},
		{"RetriesInPlaceLonger", func(_ context.Context, _ int, firstAt time.Time) error {
			if time.Since(firstAt) < pollInterval+4*time.Second {
				return errors.New("database unavailable")
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { testSlowerThanMaxPoll(t, brokers, tc.slow) })
	}
}

// pollInterval is the shortest the broker allows with its default
// group.min.session.timeout.ms (6s): max.poll.interval.ms must be >= session.timeout.ms.
const pollInterval = 7 * time.Second

func testSlowerThanMaxPoll(t *testing.T, brokers string, slow func(ctx context.Context, attempt int, firstAt time.Time) error) {
	topic := testkit.Topic(t, brokers, 1)
	group := testkit.Name("slow")
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, 2*time.Minute)
	publish := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			if err := p.Publish(ctx, kafka.Message{Topic: topic, Key: []byte("k"), Value: []byte(strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(1, 5)

	var mu sync.Mutex
	var handled []string // successful handlings, in order
	attempts := 0
	var firstAt time.Time
	logs := &lockedBuffer{}
	cfg := consumerConfig(brokers, group, topic)
	cfg.SessionTimeout = 6 * time.Second
	cfg.MaxPollInterval = pollInterval
	r, err := kafka.NewRunner(cfg, p, func(hctx context.Context, m kafka.Message) error {
		v := string(m.Value)
		if v == "2" {
			mu.Lock()
			attempts++
			n := attempts
			if n == 1 {
				firstAt = time.Now()
			}
			f := firstAt
			mu.Unlock()
			if err := slow(hctx, n, f); err != nil {
				return err
			}
		}
		mu.Lock()
		handled = append(handled, v)
		mu.Unlock()
		return nil
	}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("runner log:\n%s", logs.String())
		}
	})

	has := func(vs ...string) bool {
		mu.Lock()
		defer mu.Unlock()
		seen := map[string]bool{}
		for _, v := range handled {
			seen[v] = true
		}
		for _, v := range vs {
			if !seen[v] {
				return false
			}
		}
		return true
	}
	testkit.Eventually(t, 60*time.Second, "messages 1-5 handled", func() bool { return has("1", "2", "3", "4", "5") })
	testkit.Eventually(t, 30*time.Second, "the member was evicted (partitions lost)", func() bool {
		return strings.Contains(logs.String(), "partitions lost")
	})
	// After the eviction the member is back in the group and consumes what comes next.
	publish(6, 8)
	testkit.Eventually(t, 60*time.Second, "messages 6-8 handled after rejoining", func() bool { return has("6", "7", "8") })
	testkit.Eventually(t, 30*time.Second, "offsets committed to the end", func() bool {
		off, err := committed(brokers, group, topic)
		return err == nil && off == 8
	})

	mu.Lock()
	defer mu.Unlock()
	// In order, nothing skipped; only "2" (the message in flight when the member was
	// evicted) and what followed it before the eviction was noticed may come twice.
	var firsts []string
	seen := map[string]int{}
	for _, v := range handled {
		if seen[v] == 0 {
			firsts = append(firsts, v)
		}
		seen[v]++
	}
	if got := strings.Join(firsts, ","); got != "1,2,3,4,5,6,7,8" {
		t.Fatalf("first handlings in order %s, want 1,2,...,8 (handled %v)", got, handled)
	}
	for _, v := range []string{"1", "6", "7", "8"} {
		if seen[v] != 1 {
			t.Fatalf("message %s handled %d times (handled %v)", v, seen[v], handled)
		}
	}
	t.Logf("handled %v; attempts at message 2: %d", handled, attempts)
}

// committed returns the group's committed offset of partition 0 of topic.
func committed(brokers, group, topic string) (int64, error) {
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": false})
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	tps, err := c.Committed([]ckafka.TopicPartition{{Topic: &topic, Partition: 0}}, 10000)
	if err != nil {
		return 0, err
	}
	if len(tps) != 1 {
		return 0, fmt.Errorf("committed: %v", tps)
	}
	return int64(tps[0].Offset), nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
