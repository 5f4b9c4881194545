package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
)

func setupDB(t *testing.T) (*sqlx.DB, string) {
	t.Helper()
	db, url := testkit.Database(t)
	if err := postgres.Migrate(testkit.Context(t, time.Minute), db, outbox.Migrations); err != nil {
		t.Fatal(err)
	}
	return db, url
}

func newProducer(t *testing.T, brokers string) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(testkit.Context(t, 30*time.Second), kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = p.Close(ctx)
	})
	return p
}

// enqueue writes perAgg events for each of aggs aggregates, seq numbers 0..perAgg-1 per
// aggregate, interleaved across aggregates, txSize rows per transaction.
func enqueue(t *testing.T, db *sqlx.DB, topic string, aggs, perAgg, txSize int, tag string) []string {
	t.Helper()
	ctx := testkit.Context(t, 2*time.Minute)
	var ids []string
	var batch []kafka.Message
	flush := func() {
		if err := postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
			return outbox.Enqueue(ctx, tx, batch...)
		}); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for seq := range perAgg {
		for a := range aggs {
			id := uuid.NewString()
			ids = append(ids, id)
			batch = append(batch, kafka.Message{
				Topic:   topic,
				Key:     []byte(fmt.Sprintf("%s-agg-%03d", tag, a)),
				Value:   []byte(fmt.Sprintf("%s-agg-%03d/%d", tag, a, seq)),
				Headers: []kafka.Header{{Key: outbox.HeaderEventID, Value: []byte(id)}, {Key: "ce_type", Value: []byte("test.event")}},
			})
			if len(batch) == txSize {
				flush()
			}
		}
	}
	if len(batch) > 0 {
		flush()
	}
	return ids
}

// reader consumes a topic and records event ids and the per-key order of sequence numbers.
type reader struct {
	mu    sync.Mutex
	count map[string]int
	order map[string][]int
}

func read(t *testing.T, brokers, topic string, p *kafka.Producer) *reader {
	t.Helper()
	rd := &reader{count: map[string]int{}, order: map[string][]int{}}
	r, err := kafka.NewRunner(kafka.ConsumerConfig{Brokers: brokers, GroupID: testkit.Name("reader"), Topics: []string{topic}}, p,
		func(_ context.Context, m kafka.Message) error {
			rd.mu.Lock()
			defer rd.mu.Unlock()
			rd.count[m.Header(outbox.HeaderEventID)]++
			v := string(m.Value)
			seq, _ := strconv.Atoi(v[strings.LastIndexByte(v, '/')+1:])
			rd.order[string(m.Key)] = append(rd.order[string(m.Key)], seq)
			return nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return rd
}

func (rd *reader) has(ids []string) bool {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, id := range ids {
		if rd.count[id] == 0 {
			return false
		}
	}
	return true
}

// checkOrder asserts that each key's sequence numbers never go backwards apart from
// redelivery of a prefix (a duplicate may only repeat what came before, in order).
func (rd *reader) checkOrder(t *testing.T, allowDuplicates bool) {
	t.Helper()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for key, seqs := range rd.order {
		next := 0 // the lowest sequence number not seen yet
		for _, s := range seqs {
			switch {
			case s == next:
				next++
			case s < next && allowDuplicates:
				// re-publish of an earlier event: harmless, consumers dedupe
			default:
				t.Fatalf("key %s: got seq %d, expected %d (order %v)", key, s, next, seqs)
			}
		}
	}
	if !allowDuplicates {
		for id, n := range rd.count {
			if n != 1 {
				t.Fatalf("event %s delivered %d times", id, n)
			}
		}
	}
}

func runRelay(t *testing.T, r *outbox.Relay) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func pending(t *testing.T, db *sqlx.DB) int64 {
	t.Helper()
	n, _, err := outbox.Backlog(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRelayDeliversEveryRowInOrderPerAggregate(t *testing.T) {
	db, url := setupDB(t)
	brokers := testkit.KafkaBrokers(t)
	topic := testkit.Topic(t, brokers, 6)
	p := newProducer(t, brokers)

	ids := enqueue(t, db, topic, 100, 100, 500, "a")
	if len(ids) != 10_000 {
		t.Fatalf("enqueued %d", len(ids))
	}
	rd := read(t, brokers, topic, p)
	runRelay(t, outbox.NewRelay(db, p, outbox.RelayConfig{ListenURL: url}, nil))

	testkit.Eventually(t, 2*time.Minute, "all 10,000 events in Kafka", func() bool { return rd.has(ids) })
	time.Sleep(500 * time.Millisecond)
	rd.checkOrder(t, false)
	if n := pending(t, db); n != 0 {
		t.Fatalf("%d rows still pending", n)
	}
}

// countingPublisher forwards to the producer and cancels the relay after limit publishes.
type countingPublisher struct {
	kafka  *kafka.Producer
	n      atomic.Int64
	limit  int64
	cancel func()
}

func (c *countingPublisher) PublishAsync(ctx context.Context, m kafka.Message, cb func(error)) error {
	if c.n.Add(1) == c.limit {
		c.cancel()
	}
	return c.kafka.PublishAsync(ctx, m, cb)
}

func TestRelayStoppedHalfwayAndRestartedLosesNone(t *testing.T) {
	db, url := setupDB(t)
	brokers := testkit.KafkaBrokers(t)
	topic := testkit.Topic(t, brokers, 6)
	p := newProducer(t, brokers)
	ids := enqueue(t, db, topic, 50, 100, 500, "b")

	ctx, cancel := context.WithCancel(context.Background())
	cp := &countingPublisher{kafka: p, limit: 2_000, cancel: cancel}
	first := outbox.NewRelay(db, cp, outbox.RelayConfig{ListenURL: url, BatchSize: 200, DrainTimeout: time.Millisecond}, nil)
	_ = first.Run(ctx) // returns once cancelled mid-stream
	left := pending(t, db)
	if left == 0 || left == int64(len(ids)) {
		t.Fatalf("after stopping halfway %d of %d rows pending; want some but not all", left, len(ids))
	}
	t.Logf("first relay stopped with %d of %d rows pending", left, len(ids))

	rd := read(t, brokers, topic, p)
	runRelay(t, outbox.NewRelay(db, p, outbox.RelayConfig{ListenURL: url}, nil))
	testkit.Eventually(t, 2*time.Minute, "all events after the restart", func() bool { return rd.has(ids) })
	time.Sleep(300 * time.Millisecond)
	rd.checkOrder(t, true)
	if n := pending(t, db); n != 0 {
		t.Fatalf("%d rows still pending", n)
	}
}

func TestRelayDeliversRowsWrittenWhileBrokerDown(t *testing.T) {
	db, url := setupDB(t)
	k := testkit.OwnKafka(t)
	topic := testkit.Topic(t, k.Brokers, 3)
	p := newProducer(t, k.Brokers)
	relay := outbox.NewRelay(db, p, outbox.RelayConfig{ListenURL: url, PublishTimeout: 3 * time.Second, MaxBackoff: time.Second}, nil)
	runRelay(t, relay)

	before := enqueue(t, db, topic, 5, 10, 50, "up")
	testkit.Eventually(t, time.Minute, "rows sent while the broker is up", func() bool { return pending(t, db) == 0 })

	k.Stop(t)
	during := enqueue(t, db, topic, 10, 30, 50, "down")
	time.Sleep(4 * time.Second) // the relay tries and fails meanwhile
	if n := pending(t, db); n != int64(len(during)) {
		t.Fatalf("with the broker down %d rows pending, want all %d", n, len(during))
	}
	k.Start(t)

	rd := read(t, k.Brokers, topic, p)
	all := append(append([]string(nil), before...), during...)
	testkit.Eventually(t, 2*time.Minute, "rows written while the broker was down", func() bool { return rd.has(all) })
	rd.checkOrder(t, true)
	testkit.Eventually(t, 30*time.Second, "no pending rows", func() bool { return pending(t, db) == 0 })
}

// trackingPublisher fails the test if one event id is ever in flight twice at once, across
// every relay sharing it.
type trackingPublisher struct {
	kafka     *kafka.Producer
	mu        sync.Mutex
	inflight  map[string]string // event id -> relay
	published map[string]int
	byRelay   map[string]int
	violation string
}

func (tp *trackingPublisher) forRelay(name string) outbox.Publisher {
	return publisherFunc(func(ctx context.Context, m kafka.Message, cb func(error)) error {
		id := m.Header(outbox.HeaderEventID)
		tp.mu.Lock()
		if other, ok := tp.inflight[id]; ok && tp.violation == "" {
			tp.violation = fmt.Sprintf("event %s published by %s while in flight from %s", id, name, other)
		}
		tp.inflight[id] = name
		tp.published[id]++
		tp.byRelay[name]++
		tp.mu.Unlock()
		return tp.kafka.PublishAsync(ctx, m, func(err error) {
			tp.mu.Lock()
			delete(tp.inflight, id)
			tp.mu.Unlock()
			cb(err)
		})
	})
}

type publisherFunc func(ctx context.Context, m kafka.Message, cb func(error)) error

func (f publisherFunc) PublishAsync(ctx context.Context, m kafka.Message, cb func(error)) error {
	return f(ctx, m, cb)
}

func TestTwoRelaysNeverPublishARowConcurrently(t *testing.T) {
	db, url := setupDB(t)
	brokers := testkit.KafkaBrokers(t)
	topic := testkit.Topic(t, brokers, 6)
	p := newProducer(t, brokers)
	tp := &trackingPublisher{kafka: p, inflight: map[string]string{}, published: map[string]int{}, byRelay: map[string]int{}}
	cfg := outbox.RelayConfig{ListenURL: url, BatchSize: 100, PollInterval: 20 * time.Millisecond}
	runRelay(t, outbox.NewRelay(db, tp.forRelay("relay-1"), cfg, nil))
	runRelay(t, outbox.NewRelay(db, tp.forRelay("relay-2"), cfg, nil))

	rd := read(t, brokers, topic, p)
	var ids []string
	for round := range 10 { // written while both relays run
		ids = append(ids, enqueue(t, db, topic, 20, 25, 100, fmt.Sprintf("c%d", round))...)
	}
	testkit.Eventually(t, 2*time.Minute, "all events", func() bool { return rd.has(ids) })
	rd.checkOrder(t, false)

	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.violation != "" {
		t.Fatal(tp.violation)
	}
	for id, n := range tp.published {
		if n != 1 {
			t.Fatalf("event %s published %d times", id, n)
		}
	}
	t.Logf("rows published per relay: %v", tp.byRelay)
}

func TestEnqueueRejectsMessageWithoutEventID(t *testing.T) {
	db, _ := setupDB(t)
	ctx := testkit.Context(t, 10*time.Second)
	err := postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		return outbox.Enqueue(ctx, tx, kafka.Message{Topic: "t", Value: []byte("x")})
	})
	if err == nil || !strings.Contains(err.Error(), "ce_id") {
		t.Fatalf("Enqueue without ce_id = %v, want an error naming ce_id", err)
	}
	if n := pending(t, db); n != 0 {
		t.Fatalf("%d rows written by a failed enqueue", n)
	}
}

// BenchmarkPublishBatch measures one relay batch of 500 rows: claim under the advisory
// lock, publish through the persistent producer, wait for the acks, mark sent.
func BenchmarkPublishBatch(b *testing.B) {
	db, url := testkit.Database(b)
	ctx := context.Background()
	if err := postgres.Migrate(ctx, db, outbox.Migrations); err != nil {
		b.Fatal(err)
	}
	brokers := testkit.KafkaBrokers(b)
	topic := testkit.Topic(b, brokers, 6)
	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = p.Close(ctx) }()
	relay := outbox.NewRelay(db, p, outbox.RelayConfig{ListenURL: url, BatchSize: 500}, nil)
	value := make([]byte, 200)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
			msgs := make([]kafka.Message, 500)
			for i := range msgs {
				msgs[i] = kafka.Message{Topic: topic, Key: []byte(strconv.Itoa(i % 50)), Value: value,
					Headers: []kafka.Header{{Key: outbox.HeaderEventID, Value: []byte(uuid.NewString())}}}
			}
			return outbox.Enqueue(ctx, tx, msgs...)
		}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := relay.PublishBatch(ctx)
		if err != nil || n != 500 {
			b.Fatalf("PublishBatch = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "rows/s")
}

// TestCommitWakesRelayWithoutPolling: the relay polls only once an hour here, so rows
// committed after it went idle reach Kafka only if the outbox trigger's notification
// wakes it.
func TestCommitWakesRelayWithoutPolling(t *testing.T) {
	db, url := setupDB(t)
	brokers := testkit.KafkaBrokers(t)
	topic := testkit.Topic(t, brokers, 1)
	p := newProducer(t, brokers)
	rd := read(t, brokers, topic, p)
	runRelay(t, outbox.NewRelay(db, p, outbox.RelayConfig{ListenURL: url, PollInterval: time.Hour}, nil))
	time.Sleep(time.Second) // the relay found nothing and waits
	for round := range 3 {
		ids := enqueue(t, db, topic, 2, 3, 6, fmt.Sprintf("wake%d", round))
		testkit.Eventually(t, 10*time.Second, "rows of a committed enqueue in Kafka", func() bool { return rd.has(ids) })
	}
	rd.checkOrder(t, false)
}

// TestEnqueueKeepsBytesAndOrder: one Enqueue of several messages stores each key, payload
// and header byte for byte (bytes that are no UTF-8, NUL, empty and nil values; lib/pq
// binary_parameters is on) with ids in argument order, which is the order the relay
// publishes an aggregate's rows in.
func TestEnqueueKeepsBytesAndOrder(t *testing.T) {
	db, _ := setupDB(t)
	ctx := testkit.Context(t, 30*time.Second)
	var msgs []kafka.Message
	for i := range 300 {
		m := kafka.Message{
			Topic: "t",
			Key:   []byte{0x00, 0xff, byte(i % 3), '"', '\\', '{', ','},
			Value: []byte(fmt.Sprintf("\x00\xfe{\"v\":%d}\\", i)),
			Headers: []kafka.Header{
				{Key: outbox.HeaderEventID, Value: []byte(uuid.NewString())},
				{Key: "bin", Value: []byte{0xc3, 0x28, 0x00, byte(i)}},
				{Key: "quote\"\\", Value: nil},
			},
		}
		switch i {
		case 7:
			m.Key = nil
		case 8:
			m.Value = nil
		}
		msgs = append(msgs, m)
	}
	if err := postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		return outbox.Enqueue(ctx, tx, msgs...)
	}); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		EventID string `db:"event_id"`
		Key     []byte `db:"msg_key"`
		Payload []byte `db:"payload"`
		Headers []byte `db:"headers"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT event_id, msg_key, payload, headers::text AS headers FROM outbox ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(msgs) {
		t.Fatalf("%d rows, want %d", len(rows), len(msgs))
	}
	for i, r := range rows {
		m := msgs[i]
		if r.EventID != m.Header(outbox.HeaderEventID) {
			t.Fatalf("row %d is event %s, want %s: rows must follow the argument order", i, r.EventID, m.Header(outbox.HeaderEventID))
		}
		if string(r.Key) != string(m.Key) || string(r.Payload) != string(m.Value) {
			t.Fatalf("row %d: key %x payload %x, want %x and %x", i, r.Key, r.Payload, m.Key, m.Value)
		}
		var hs []struct {
			K string `json:"k"`
			V []byte `json:"v"`
		}
		if err := json.Unmarshal(r.Headers, &hs); err != nil {
			t.Fatalf("row %d headers %s: %v", i, r.Headers, err)
		}
		if len(hs) != len(m.Headers) {
			t.Fatalf("row %d: %d headers, want %d", i, len(hs), len(m.Headers))
		}
		for j, h := range hs {
			if h.K != m.Headers[j].Key || string(h.V) != string(m.Headers[j].Value) {
				t.Fatalf("row %d header %d: %q=%x, want %q=%x", i, j, h.K, h.V, m.Headers[j].Key, m.Headers[j].Value)
			}
		}
	}
}

type ackAll struct{}

func (ackAll) PublishAsync(_ context.Context, _ kafka.Message, cb func(error)) error {
	cb(nil)
	return nil
}

// TestOnlyEnqueueNotifies: the outbox trigger wakes relays once per committing Enqueue
// transaction, and a relay's own work (marking rows sent, deleting old ones) wakes
// nobody, or idle relays would keep waking each other.
func TestOnlyEnqueueNotifies(t *testing.T) {
	db, url := setupDB(t)
	ctx := testkit.Context(t, 30*time.Second)
	l := pq.NewListener(url, 10*time.Millisecond, time.Second, nil)
	t.Cleanup(func() { _ = l.Close() })
	if err := l.Listen(outbox.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	count := func(wait time.Duration) int {
		n := 0
		deadline := time.After(wait)
		for {
			select {
			case ev := <-l.Notify:
				if ev != nil {
					n++
				}
			case <-deadline:
				return n
			}
		}
	}
	enqueue(t, db, "t", 3, 4, 5, "notify") // 12 rows in 3 transactions
	if n := count(time.Second); n != 3 {
		t.Fatalf("%d notifications for 3 committed Enqueue transactions, want 3", n)
	}
	if err := postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		if err := outbox.Enqueue(ctx, tx, kafka.Message{Topic: "t", Headers: []kafka.Header{{Key: outbox.HeaderEventID, Value: []byte(uuid.NewString())}}}); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	r := outbox.NewRelay(db, ackAll{}, outbox.RelayConfig{Retention: time.Millisecond}, nil)
	if n, err := r.PublishBatch(ctx); err != nil || n != 12 {
		t.Fatalf("PublishBatch = %d, %v; want 12 rows", n, err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := r.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(time.Second); n != 0 {
		t.Fatalf("%d notifications after a rolled-back Enqueue and the relay's own updates and deletes, want 0", n)
	}
}

var errRollback = errors.New("roll back")
