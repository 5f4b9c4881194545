package chaos

import (
	"testing"
	"time"

	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// scenario starts the stack, drives the load, calls fault once a third of the commands
// went out, waits for the load to end and checks the books.
func scenario(t *testing.T, opts stack.Options, fault func(t *testing.T, st *stack.Stack)) {
	t.Helper()
	scenarioAt(t, currentScale(), opts, fault)
}

// scenarioAt is scenario with the load of sc.
func scenarioAt(t *testing.T, sc scale, opts stack.Options, fault func(t *testing.T, st *stack.Stack)) {
	t.Helper()
	st := stack.Start(t, opts)
	before := stockOf(t, st.DBs["inventory"])
	waitCatalog(t, st, len(before))
	ctx := testkit.Context(t, 10*time.Minute)
	l, wait := runLoad(ctx, t, st, sc)
	total := int64(sc.users * sc.rounds * 4)
	testkit.Eventually(t, 2*time.Minute, "a third of the load sent", func() bool { return l.sent.Load() >= total/3 })
	t.Logf("scale %s: %d users x %d carts; fault at %d commands sent", sc.name, sc.users, sc.rounds, l.sent.Load())
	release := func() {}
	if sc.hold {
		release = l.hold()
		defer release() // also when the fault fails the test
	}
	fault(t, st)
	release()
	wait()
	t.Logf("load done: %s; rejections: %v", l, l.reasons)
	if l.acked.Load() == 0 || l.failed.Load() != 0 {
		t.Fatalf("load: %s; want every command answered after recovery", l)
	}
	checkBooks(t, st, l, before, injected{})
}

// TestBrokerKilledAndRestarted kills the (dedicated) broker with SIGKILL under load, keeps
// it down a few seconds and restarts it on the same data.
func TestBrokerKilledAndRestarted(t *testing.T) {
	k := testkit.OwnKafka(t)
	scenario(t, stack.Options{Brokers: k.Brokers}, func(t *testing.T, _ *stack.Stack) {
		k.Kill(t)
		t.Log("broker SIGKILLed")
		time.Sleep(5 * time.Second)
		k.Start(t)
		t.Log("broker restarted")
	})
}

// TestConsumerKilledMidBatch kills a consumer service with SIGKILL while it works through
// the load and restarts it; make chaos runs it for each consumer service.
func TestConsumerKilledMidBatch(t *testing.T) {
	victims := []string{"inventory"}
	if full() {
		victims = []string{"inventory", "discount", "order"}
	}
	for _, name := range victims {
		t.Run(name, func(t *testing.T) {
			scenario(t, stack.Options{}, func(t *testing.T, st *stack.Stack) {
				p := st.Services[name]
				p.Kill(t)
				t.Logf("%s SIGKILLed", name)
				time.Sleep(2 * time.Second)
				p.Start(t)
				p.WaitReady(t, 90*time.Second)
				t.Logf("%s restarted", name)
			})
		})
	}
}

// TestCartKilledMidLoad kills the cart (API, outbox relay and producer) under load; the
// users retry with their idempotency keys until the restarted cart answers.
func TestCartKilledMidLoad(t *testing.T) {
	if !full() {
		t.Skip("runs in make chaos (EVENTSHOP_CHAOS=full)")
	}
	scenario(t, stack.Options{}, func(t *testing.T, st *stack.Stack) {
		p := st.Services["cart"]
		p.Kill(t)
		t.Log("cart SIGKILLed")
		time.Sleep(2 * time.Second)
		p.Start(t)
		p.WaitReady(t, 90*time.Second)
		t.Log("cart restarted")
	})
}

// waitCatalog waits until the cart's catalog read model knows every product, so that the
// load is not rejected for products the cart has not heard of yet.
func waitCatalog(t *testing.T, st *stack.Stack, n int) {
	t.Helper()
	testkit.Eventually(t, 90*time.Second, "cart catalog holds every product", func() bool {
		var got int
		return st.DBs["cart"].Get(&got, `SELECT count(*) FROM catalog`) == nil && got >= n
	})
}
