package app_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/obs"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	"github.com/eventshop/eventshop/services/discount/internal/app"
	"github.com/eventshop/eventshop/services/discount/migrations"
)

const helperEnv = "EVENTSHOP_DISCOUNT_HELPER"

// TestHelperDiscountProcess is the child process of the kill test, not a test of its own:
// the discount service configured from the environment, as cmd/discount runs it.
func TestHelperDiscountProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for TestKilledMidStreamAndRestartedLosesNothingAndRedeemsNothingTwice")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg, err := app.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	log, err := obs.NewLogger(os.Stderr, cfg.LogLevel, "discount")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// child is a discount service in its own process.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// syncBuffer collects both children's output for a failure report.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startChild(t *testing.T, cfg app.Config, logs *syncBuffer) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDiscountProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1",
		"HTTP_ADDR=127.0.0.1:0", "GRPC_ADDR=127.0.0.1:0", "DATABASE_URL="+cfg.DatabaseURL, "DATABASE_MAX_CONNS=10",
		"KAFKA_BROKERS="+cfg.KafkaBrokers, "CART_EVENTS_TOPIC="+cfg.CartTopic, "DISCOUNT_EVENTS_TOPIC="+cfg.DiscountTopic,
		"CONSUMER_GROUP="+cfg.ConsumerGroup, "KAFKA_CREATE_TOPICS=false", "DEV_MODE=true", "LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=10s")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-c.exited
		}
	})
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.exited
}

// TestKilledMidStreamAndRestartedLosesNothingAndRedeemsNothingTwice runs the service in a
// child process, SIGKILLs it while 40 carts check out with a coupon limited to 15 uses,
// restarts it, and checks that every cart event was applied exactly once, every checkout
// has exactly one outcome, the coupon was used exactly 15 times, and every cart's
// discount events have consecutive versions.
func TestKilledMidStreamAndRestartedLosesNothingAndRedeemsNothingTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6)
	ctx := testkit.Context(t, 3*time.Minute)
	if err := postgres.Migrate(ctx, e.db, outbox.Migrations, idempotency.Migrations, migrations.Set); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `INSERT INTO rules (rule_id, kind, percent, coupon_code, usage_limit) VALUES ('fifteen', 'COUPON', 10, 'FIFTEEN', 15)`)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("children's output:\n%s", logs.String())
		}
	})

	const carts = 40
	checkouts := map[string]string{} // checkout id -> cart id
	var batches [][]kafka.Message
	for i := range carts {
		c := newCart(fmt.Sprintf("user-%d", i))
		evs := []*cartpb.CartEvent{c.add("widget", 3, 1000), c.applyCoupon("FIFTEEN")}
		co, id := c.checkout()
		checkouts[id] = c.id
		batches = append(batches, e.encode(t, append(evs, co)...))
	}

	first := startChild(t, e.cfg, logs)
	published := make(chan struct{})
	go func() { // the cart service, one cart every 25ms
		defer close(published)
		for _, b := range batches {
			for _, m := range b {
				if err := e.producer.Publish(ctx, m); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()
	testkit.Eventually(t, 60*time.Second, "some checkouts decided by the first process", func() bool {
		return e.count(t, `SELECT count(*) FROM checkouts`) >= 8
	})
	first.kill(t)
	atKill := e.count(t, `SELECT count(*) FROM checkouts`)
	if atKill >= carts {
		t.Fatalf("the first process decided all %d checkouts before it was killed: nothing was mid-stream", atKill)
	}
	t.Logf("killed with %d of %d checkouts decided, %d events processed", atKill, carts, e.count(t, `SELECT count(*) FROM processed_events`))
	<-published

	startChild(t, e.cfg, logs)
	testkit.Eventually(t, 90*time.Second, "every checkout decided after the restart", func() bool {
		return e.count(t, `SELECT count(*) FROM processed_events`) == 3*carts
	})
	e.settled(t)

	if n := e.count(t, `SELECT count(*) FROM checkouts`); n != carts {
		t.Fatalf("%d checkouts decided, want %d", n, carts)
	}
	if used := e.count(t, `SELECT used FROM rules WHERE rule_id = 'fifteen'`); used != 15 {
		t.Fatalf("coupon used %d times, want 15", used)
	}
	if n := e.count(t, `SELECT count(*) FROM checkouts WHERE outcome = 'coupon_redeemed'`); n != 15 {
		t.Fatalf("%d checkouts recorded as redeemed, want 15", n)
	}

	outcomes := map[string][]string{} // checkout id -> outcome kinds
	versions := map[string][]int64{}  // cart id -> versions in order
	for _, ev := range e.out.events(t) {
		o := summarize(ev)
		versions[ev.GetAggregateId()] = append(versions[ev.GetAggregateId()], o.V)
		if o.Kind == "redeemed" || o.Kind == "rejected" || o.Final {
			outcomes[o.Checkout] = append(outcomes[o.Checkout], o.Kind)
		}
	}
	counts := map[string]int{}
	for id, cart := range checkouts {
		got := strings.Join(outcomes[id], ",")
		if got != "redeemed,calculated" && got != "rejected" {
			t.Fatalf("checkout %s of cart %s: outcomes %q; want exactly one (redeemed + final, or rejected)", id, cart, got)
		}
		counts[got]++
		want := 4
		if got == "rejected" {
			want = 3
		}
		if v := versions[cart]; fmt.Sprint(v) != fmt.Sprint([]int64{1, 2, 3, 4}[:want]) {
			t.Fatalf("cart %s: discount event versions %v, want 1..%d", cart, v, want)
		}
		if n := e.count(t, `SELECT version FROM carts WHERE cart_id = $1`, cart); n != want {
			t.Fatalf("cart %s: stored version %d, want %d", cart, n, want)
		}
	}
	if counts["redeemed,calculated"] != 15 || counts["rejected"] != 25 {
		t.Fatalf("outcomes %v; want 15 redeemed and 25 rejected", counts)
	}
	t.Logf("%d messages on the discount topic for %d distinct events", len(e.out.messages()), e.out.distinct())
}
