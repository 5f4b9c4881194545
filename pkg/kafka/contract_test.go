package kafka_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// The same producer and consumer tests run against the real Apache Kafka broker and the
// in-process kfake broker: one contract, two implementations.

func TestContractRealKafka(t *testing.T) {
	runContract(t, testkit.KafkaBrokers(t), 100_000)
}

func TestContractKfake(t *testing.T) {
	runContract(t, testkit.Kfake(t), 20_000)
}

func runContract(t *testing.T, brokers string, manyMessages int) {
	t.Run("ProducerManyGoroutinesReadBackExactlyOnceInKeyOrder", func(t *testing.T) {
		testManyGoroutines(t, brokers, manyMessages)
	})
	t.Run("ProducerCloseAfterBurstLeavesNoneUndelivered", func(t *testing.T) { testCloseAfterBurst(t, brokers) })
	t.Run("RunnerPoisonToDLQPartitionMovesOn", func(t *testing.T) { testPoison(t, brokers) })
	t.Run("RunnerBatchAppliesTogetherAndIsolatesPoison", func(t *testing.T) { testBatch(t, brokers) })
	t.Run("RunnerTransientErrorRetriedWithoutSkipping", func(t *testing.T) { testTransient(t, brokers) })
	t.Run("RunnerTwoMembersSplitPartitions", func(t *testing.T) { testTwoMembers(t, brokers) })
	t.Run("RunnerTwoGroupsEachProcessAll", func(t *testing.T) { testTwoGroups(t, brokers) })
	t.Run("RunnerShutdownFinishesInFlightAndCommits", func(t *testing.T) { testShutdownInFlight(t, brokers) })
	t.Run("RunnerKilledMemberWorkRedelivered", func(t *testing.T) { testKilledMember(t, brokers) })
}

func newProducer(t *testing.T, brokers string) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(testkit.Context(t, 30*time.Second), kafka.ProducerConfig{Brokers: brokers, ConnectTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = p.Close(ctx)
	})
	return p
}

// collector records what a handler saw, safely from several runners.
type collector struct {
	mu   sync.Mutex
	seen map[string]int    // value -> times handled
	keys map[string][]int  // key -> sequence numbers in handling order
	by   map[string]string // value -> member name
}

func newCollector() *collector {
	return &collector{seen: map[string]int{}, keys: map[string][]int{}, by: map[string]string{}}
}

func (c *collector) handler(member string) kafka.Handler {
	return func(_ context.Context, m kafka.Message) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		v := string(m.Value)
		c.seen[v]++
		c.by[v] = member
		if i := strings.LastIndexByte(v, '/'); i >= 0 {
			if n, err := strconv.Atoi(v[i+1:]); err == nil {
				c.keys[string(m.Key)] = append(c.keys[string(m.Key)], n)
			}
		}
		return nil
	}
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// startRunner runs a runner in the background until the test ends (or stop is called).
func startRunner(t *testing.T, cfg kafka.ConsumerConfig, p *kafka.Producer, h kafka.Handler) (r *kafka.Runner, stop func() error) {
	t.Helper()
	r, err := kafka.NewRunner(cfg, p, h, nil)
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				runErr = errors.New("runner did not stop within 60s")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("runner stop: %v", err)
		}
	})
	return r, stop
}

func consumerConfig(brokers, group, topic string) kafka.ConsumerConfig {
	return kafka.ConsumerConfig{Brokers: brokers, GroupID: group, Topics: []string{topic}, SessionTimeout: 6 * time.Second, RetryMin: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond}
}

func testManyGoroutines(t *testing.T, brokers string, total int) {
	const goroutines, keysPerG = 16, 8
	topic := testkit.Topic(t, brokers, 6)
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, 3*time.Minute)

	var acked, failed atomic.Int64
	per := total / goroutines
	g, gctx := errgroup.WithContext(ctx)
	for gi := range goroutines {
		g.Go(func() error {
			for j := range per {
				key := fmt.Sprintf("g%02d-k%d", gi, j%keysPerG)
				m := kafka.Message{Topic: topic, Key: []byte(key), Value: []byte(fmt.Sprintf("%s/%d", key, j))}
				if err := p.PublishAsync(gctx, m, func(err error) {
					if err != nil {
						failed.Add(1)
						return
					}
					acked.Add(1)
				}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("publish: %v", err)
	}
	testkit.Eventually(t, time.Minute, "all acks", func() bool { return acked.Load()+failed.Load() == int64(per*goroutines) })
	if failed.Load() != 0 {
		t.Fatalf("%d messages failed delivery", failed.Load())
	}

	col := newCollector()
	startRunner(t, consumerConfig(brokers, testkit.Name("readback"), topic), p, col.handler("a"))
	testkit.Eventually(t, 2*time.Minute, "read back every message", func() bool { return col.distinct() == per*goroutines })
	time.Sleep(500 * time.Millisecond) // let any duplicate show up

	col.mu.Lock()
	defer col.mu.Unlock()
	for v, n := range col.seen {
		if n != 1 {
			t.Fatalf("message %s read %d times, want once", v, n)
		}
	}
	if len(col.keys) != goroutines*keysPerG {
		t.Fatalf("got %d keys, want %d", len(col.keys), goroutines*keysPerG)
	}
	for k, seqs := range col.keys {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("key %s out of publish order: %d after %d", k, seqs[i], seqs[i-1])
			}
		}
	}
}

func testCloseAfterBurst(t *testing.T, brokers string) {
	topic := testkit.Topic(t, brokers, 3)
	p, err := kafka.NewProducer(testkit.Context(t, 30*time.Second), kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	var ok, bad atomic.Int64
	for i := range n {
		m := kafka.Message{Topic: topic, Key: []byte(strconv.Itoa(i % 50)), Value: []byte(strconv.Itoa(i))}
		if err := p.PublishAsync(context.Background(), m, func(err error) {
			if err != nil {
				bad.Add(1)
			} else {
				ok.Add(1)
			}
		}); err != nil {
			t.Fatalf("PublishAsync %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	undelivered, err := p.Close(ctx)
	if err != nil || undelivered != 0 {
		t.Fatalf("Close = %d, %v; want 0 undelivered", undelivered, err)
	}
	if ok.Load() != n || bad.Load() != 0 {
		t.Fatalf("delivered %d, failed %d; want %d, 0", ok.Load(), bad.Load(), n)
	}
	if err := p.Publish(context.Background(), kafka.Message{Topic: topic, Value: []byte("late")}); !errors.Is(err, kafka.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
}

func testPoison(t *testing.T, brokers string) {
	topic := testkit.Topic(t, brokers, 1)
	group := testkit.Name("poison")
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, time.Minute)
	for _, v := range []string{"ok-1", "poison", "ok-2", "ok-3"} {
		m := kafka.Message{Topic: topic, Key: []byte("k"), Value: []byte(v), Headers: []kafka.Header{{Key: "ce_id", Value: []byte("id-" + v)}}}
		if err := p.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var handled []string
	startRunner(t, consumerConfig(brokers, group, topic), p, func(_ context.Context, m kafka.Message) error {
		if string(m.Value) == "poison" {
			return kafka.Permanent(errors.New("cannot decode payload"))
		}
		mu.Lock()
		handled = append(handled, string(m.Value))
		mu.Unlock()
		return nil
	})
	testkit.Eventually(t, 30*time.Second, "messages after the poison", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 3
	})
	mu.Lock()
	if got := strings.Join(handled, ","); got != "ok-1,ok-2,ok-3" {
		t.Fatalf("handled %s, want ok-1,ok-2,ok-3", got)
	}
	mu.Unlock()

	// The DLQ holds the original bytes with the error and its origin in headers.
	var dlq []kafka.Message
	var dmu sync.Mutex
	startRunner(t, consumerConfig(brokers, testkit.Name("dlq-reader"), kafka.DLQTopic(topic, group)), p, func(_ context.Context, m kafka.Message) error {
		dmu.Lock()
		dlq = append(dlq, m)
		dmu.Unlock()
		return nil
	})
	testkit.Eventually(t, 30*time.Second, "the DLQ message", func() bool {
		dmu.Lock()
		defer dmu.Unlock()
		return len(dlq) >= 1
	})
	time.Sleep(300 * time.Millisecond)
	dmu.Lock()
	defer dmu.Unlock()
	if len(dlq) != 1 {
		t.Fatalf("DLQ has %d messages, want 1", len(dlq))
	}
	d := dlq[0]
	want := map[string]string{
		"ce_id":                  "id-poison",
		kafka.HeaderDLQError:     "cannot decode payload",
		kafka.HeaderDLQTopic:     topic,
		kafka.HeaderDLQPartition: "0",
		kafka.HeaderDLQOffset:    "1",
		kafka.HeaderDLQGroup:     group,
	}
	for k, v := range want {
		if got := d.Header(k); got != v {
			t.Errorf("DLQ header %s = %q, want %q", k, got, v)
		}
	}
	if string(d.Value) != "poison" || string(d.Key) != "k" {
		t.Errorf("DLQ message = %q/%q, want original key k and bytes poison", d.Key, d.Value)
	}
	if d.Header(kafka.HeaderDLQTime) == "" {
		t.Errorf("DLQ message has no %s header", kafka.HeaderDLQTime)
	}
}

func testTransient(t *testing.T, brokers string) {
	topic := testkit.Topic(t, brokers, 1)
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, time.Minute)
	for i := 1; i <= 3; i++ {
		if err := p.Publish(ctx, kafka.Message{Topic: topic, Key: []byte("k"), Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var attempts []string
	failures := 3
	startRunner(t, consumerConfig(brokers, testkit.Name("transient"), topic), p, func(_ context.Context, m kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, string(m.Value))
		if string(m.Value) == "2" && failures > 0 {
			failures--
			return errors.New("database unavailable")
		}
		return nil
	})
	testkit.Eventually(t, 30*time.Second, "all three handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) >= 6
	})
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(attempts, ","); got != "1,2,2,2,2,3" {
		t.Fatalf("attempts %s, want 1,2,2,2,2,3 (retried in place, nothing skipped)", got)
	}
}

func testTwoMembers(t *testing.T, brokers string) {
	topic := testkit.Topic(t, brokers, 6)
	group := testkit.Name("split")
	p := newProducer(t, brokers)
	col := newCollector()
	r1, _ := startRunner(t, consumerConfig(brokers, group, topic), p, col.handler("m1"))
	r2, _ := startRunner(t, consumerConfig(brokers, group, topic), p, col.handler("m2"))
	testkit.Eventually(t, 60*time.Second, "both members assigned", func() bool {
		return r1.Assigned() > 0 && r2.Assigned() > 0 && r1.Assigned()+r2.Assigned() == 6
	})
	ctx := testkit.Context(t, time.Minute)
	const n = 1200
	for i := range n {
		m := kafka.Message{Topic: topic, Key: []byte(fmt.Sprintf("cart-%d", i%97)), Value: []byte(fmt.Sprintf("v/%d", i))}
		if err := p.PublishAsync(ctx, m, func(error) {}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 60*time.Second, "every message processed", func() bool { return col.distinct() == n })
	col.mu.Lock()
	defer col.mu.Unlock()
	counts := map[string]int{}
	for _, m := range col.by {
		counts[m]++
	}
	if counts["m1"] == 0 || counts["m2"] == 0 {
		t.Fatalf("members processed %v; both should have a share", counts)
	}
	for v, k := range col.seen {
		if k != 1 {
			t.Fatalf("%s processed %d times", v, k)
		}
	}
}

func testTwoGroups(t *testing.T, brokers string) {
	topic := testkit.Topic(t, brokers, 3)
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, time.Minute)
	const n = 500
	for i := range n {
		if err := p.PublishAsync(ctx, kafka.Message{Topic: topic, Key: []byte(strconv.Itoa(i % 10)), Value: []byte(fmt.Sprintf("v/%d", i))}, func(error) {}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := newCollector(), newCollector()
	startRunner(t, consumerConfig(brokers, testkit.Name("inventory"), topic), p, a.handler("a"))
	startRunner(t, consumerConfig(brokers, testkit.Name("order"), topic), p, b.handler("b"))
	testkit.Eventually(t, 60*time.Second, "both groups see every message", func() bool { return a.distinct() == n && b.distinct() == n })
}

func testShutdownInFlight(t *testing.T, brokers string) {
	topic := testkit.Topic(t, brokers, 1)
	group := testkit.Name("shutdown")
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, time.Minute)
	for i := 1; i <= 2; i++ {
		if err := p.Publish(ctx, kafka.Message{Topic: topic, Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	_, stop := startRunner(t, consumerConfig(brokers, group, topic), p, func(hctx context.Context, m kafka.Message) error {
		if string(m.Value) != "1" {
			return nil
		}
		close(started)
		<-release
		if hctx.Err() != nil {
			return hctx.Err()
		}
		finished.Store(true)
		return nil
	})
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(300 * time.Millisecond) // shutdown has begun while the handler runs
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !finished.Load() {
		t.Fatal("in-flight handler did not finish with a live context")
	}
	// The next member of the group starts after message 1: it was committed.
	col := newCollector()
	startRunner(t, consumerConfig(brokers, group, topic), p, func(_ context.Context, m kafka.Message) error {
		return col.handler("next")(context.Background(), kafka.Message{Key: []byte("k"), Value: []byte("v/" + string(m.Value))})
	})
	testkit.Eventually(t, 30*time.Second, "next member reads message 2", func() bool { return col.distinct() >= 1 })
	time.Sleep(500 * time.Millisecond)
	col.mu.Lock()
	defer col.mu.Unlock()
	if col.seen["v/1"] != 0 {
		t.Fatalf("message 1 was redelivered after a clean shutdown: offsets not committed (seen %v)", col.seen)
	}
}

// testKilledMember runs a member in a child process, kills it with SIGKILL while it holds
// an unfinished message, and checks that the next member processes every message the
// child did not finish: nothing is skipped.
func testKilledMember(t *testing.T, brokers string) {
	topic := testkit.Topic(t, brokers, 2)
	group := testkit.Name("killed")
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, 2*time.Minute)
	const n = 300
	for i := range n {
		if err := p.PublishAsync(ctx, kafka.Message{Topic: topic, Key: []byte(strconv.Itoa(i % 7)), Value: []byte(fmt.Sprintf("v/%d", i))}, func(error) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(ctx, kafka.Message{Topic: topic, Key: []byte("0"), Value: []byte("sync")}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperConsumerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "EVENTSHOP_HELPER_CONSUMER=1", "HELPER_BROKERS="+brokers, "HELPER_TOPIC="+topic, "HELPER_GROUP="+group, "HELPER_FINISH=120")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	childDone := map[string]bool{}
	sc := bufio.NewScanner(out)
	blocked := false
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "DONE "); ok {
			childDone[v] = true
		}
		if strings.HasPrefix(line, "BLOCKED ") {
			blocked = true
			break
		}
	}
	if !blocked {
		_ = cmd.Process.Kill()
		t.Fatalf("child never reached its blocking message (finished %d)", len(childDone))
	}
	time.Sleep(1500 * time.Millisecond) // let an auto-commit happen: the finished part is committed
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	col := newCollector()
	startRunner(t, consumerConfig(brokers, group, topic), p, col.handler("next"))
	all := func() bool {
		col.mu.Lock()
		defer col.mu.Unlock()
		for i := range n {
			v := fmt.Sprintf("v/%d", i)
			if !childDone[v] && col.seen[v] == 0 {
				return false
			}
		}
		return true
	}
	testkit.Eventually(t, 90*time.Second, "every message the killed member did not finish", all)
	if len(childDone) != 120 {
		t.Fatalf("child finished %d, want 120", len(childDone))
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	redone := 0
	for v := range childDone {
		if col.seen[v] > 0 {
			redone++
		}
	}
	t.Logf("killed member finished %d; next member processed %d (%d of them again, allowed: at least once)", len(childDone), len(col.seen), redone)
}

// TestHelperConsumerProcess is the child of testKilledMember, not a test of its own.
func TestHelperConsumerProcess(t *testing.T) {
	if os.Getenv("EVENTSHOP_HELPER_CONSUMER") != "1" {
		t.Skip("helper process for RunnerKilledMemberWorkRedelivered")
	}
	brokers, topic, group := os.Getenv("HELPER_BROKERS"), os.Getenv("HELPER_TOPIC"), os.Getenv("HELPER_GROUP")
	finish, _ := strconv.Atoi(os.Getenv("HELPER_FINISH"))
	p, err := kafka.NewProducer(context.Background(), kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	r, err := kafka.NewRunner(consumerConfig(brokers, group, topic), p, func(_ context.Context, m kafka.Message) error {
		if done == finish {
			fmt.Printf("BLOCKED %s\n", m.Value)
			select {} // hold the message unfinished until SIGKILL
		}
		done++
		fmt.Printf("DONE %s\n", m.Value)
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Run(context.Background())
}

func TestProducerUnreachableBrokerFailsWithinTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now

	const timeout = 2 * time.Second
	start := time.Now()
	p, err := kafka.NewProducer(context.Background(), kafka.ProducerConfig{Brokers: addr, ConnectTimeout: timeout}, nil)
	elapsed := time.Since(start)
	if err == nil {
		_, _ = p.Close(context.Background())
		t.Fatal("NewProducer succeeded against a closed port")
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("error %q should name the brokers and say they are unreachable", err)
	}
	if elapsed > timeout+3*time.Second {
		t.Fatalf("NewProducer took %s to fail; its timeout is %s", elapsed, timeout)
	}
}

// txLog imitates a database for testBatch: a batch stages its writes and commits them
// only when every message of it succeeded.
type txLog struct {
	mu      sync.Mutex
	applied []string // committed values, in order
	sizes   []int    // committed batch sizes (1 for a message handled alone)
}

type stagedKey struct{}

func (l *txLog) batch(ctx context.Context, each func(ctx context.Context) error) error {
	var staged []string
	if err := each(context.WithValue(ctx, stagedKey{}, &staged)); err != nil {
		return err // "rolled back": nothing of the batch is kept
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied = append(l.applied, staged...)
	l.sizes = append(l.sizes, len(staged))
	return nil
}

func testBatch(t *testing.T, brokers string) {
	topic := testkit.Topic(t, brokers, 1)
	group := testkit.Name("batch")
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, time.Minute)
	const total, poison = 300, 137
	var wg sync.WaitGroup
	for i := range total {
		v := fmt.Sprintf("m/%d", i)
		if i == poison {
			v = "poison"
		}
		wg.Add(1)
		if err := p.PublishAsync(ctx, kafka.Message{Topic: topic, Key: []byte("k"), Value: []byte(v)}, func(err error) {
			if err != nil {
				t.Errorf("publish: %v", err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	db := &txLog{}
	cfg := consumerConfig(brokers, group, topic)
	cfg.BatchSize, cfg.Batch = 50, db.batch
	h := func(ctx context.Context, m kafka.Message) error {
		if string(m.Value) == "poison" {
			return kafka.Permanent(errors.New("cannot decode payload"))
		}
		if staged, ok := ctx.Value(stagedKey{}).(*[]string); ok {
			*staged = append(*staged, string(m.Value))
			return nil
		}
		db.mu.Lock()
		defer db.mu.Unlock()
		db.applied = append(db.applied, string(m.Value))
		db.sizes = append(db.sizes, 1)
		return nil
	}
	_, stop := startRunner(t, cfg, p, h)
	testkit.Eventually(t, 30*time.Second, "every message but the poison applied", func() bool {
		db.mu.Lock()
		defer db.mu.Unlock()
		return len(db.applied) >= total-1
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	var want []string
	for i := range total {
		if i != poison {
			want = append(want, fmt.Sprintf("m/%d", i))
		}
	}
	if got := strings.Join(db.applied, ","); got != strings.Join(want, ",") {
		t.Fatalf("applied %d messages, want each of %d once in order:\n got %.300s", len(db.applied), len(want), got)
	}
	largest := 0
	for _, n := range db.sizes {
		largest = max(largest, n)
	}
	if largest < 2 || largest > 50 {
		t.Fatalf("largest batch %d, want 2..50 (batch sizes %v)", largest, db.sizes)
	}
	t.Logf("%d messages in %d commits, largest batch %d", len(db.applied), len(db.sizes), largest)

	// The offsets of the whole run, the poison's included, were committed.
	again := newCollector()
	startRunner(t, cfg, p, again.handler("again"))
	time.Sleep(3 * time.Second)
	if n := again.distinct(); n != 0 {
		t.Fatalf("a restarted member of the group handled %d messages again, want 0", n)
	}
}

// TestBatchShutdownTimeoutBoundsFallback: a batch still running when shutdown begins
// gets ShutdownTimeout to finish; if it does not, it rolls back and the runner's
// one-at-a-time fallback must not grant every message of it a fresh ShutdownTimeout
// (10 messages x 300ms here after a 1s grace, instead of stopping at about 1s). Whatever
// did not commit is delivered again to the next member.
func TestBatchShutdownTimeoutBoundsFallback(t *testing.T) {
	brokers := testkit.KafkaBrokers(t)
	topic := testkit.Topic(t, brokers, 1)
	group := testkit.Name("batchstop")
	p := newProducer(t, brokers)
	ctx := testkit.Context(t, time.Minute)
	const total = 10
	for i := range total {
		if err := p.Publish(ctx, kafka.Message{Topic: topic, Key: []byte("k"), Value: []byte(fmt.Sprintf("m/%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	db := &txLog{}
	cfg := consumerConfig(brokers, group, topic)
	cfg.BatchSize, cfg.Batch, cfg.ShutdownTimeout = total, db.batch, time.Second
	started := make(chan struct{})
	var once sync.Once
	h := func(ctx context.Context, m kafka.Message) error {
		once.Do(func() { close(started) })
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		if staged, ok := ctx.Value(stagedKey{}).(*[]string); ok {
			*staged = append(*staged, string(m.Value))
			return nil
		}
		db.mu.Lock()
		defer db.mu.Unlock()
		db.applied = append(db.applied, string(m.Value))
		db.sizes = append(db.sizes, 1)
		return nil
	}
	_, stop := startRunner(t, cfg, p, h)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no message handled")
	}
	begin := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	db.mu.Lock()
	done := append([]string(nil), db.applied...)
	db.mu.Unlock()
	t.Logf("stopped in %s with %d of %d messages applied (commits %v)", took, len(done), total, db.sizes)
	if took > cfg.ShutdownTimeout+1500*time.Millisecond {
		t.Errorf("runner took %s to stop, want about ShutdownTimeout (%s)", took, cfg.ShutdownTimeout)
	}

	// Nothing is lost: what was not applied reaches the next member.
	again := newCollector()
	startRunner(t, consumerConfig(brokers, group, topic), p, again.handler("again"))
	testkit.Eventually(t, 30*time.Second, "the unapplied messages redelivered", func() bool {
		again.mu.Lock()
		defer again.mu.Unlock()
		for i := range total {
			v := fmt.Sprintf("m/%d", i)
			if again.seen[v] == 0 && !slicesContains(done, v) {
				return false
			}
		}
		return true
	})
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
