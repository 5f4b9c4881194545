package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// TestPostgresRestarted restarts the (dedicated) PostgreSQL server that holds all four
// services' databases under load and keeps it down a few seconds. The services are not
// restarted: their pools, outbox relays (LISTEN connections included) and consumers must
// recover on their own. make chaos also crashes it (pg_ctl -m immediate: no checkpoint,
// crash recovery at start).
func TestPostgresRestarted(t *testing.T) {
	modes := []string{"fast"}
	if full() {
		modes = append(modes, "immediate")
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			pg := testkit.OwnPostgres(t)
			scenario(t, stack.Options{PostgresURL: pg.URL}, func(t *testing.T, st *stack.Stack) {
				pg.Restart(t, mode == "immediate", 4*time.Second)
				t.Logf("PostgreSQL restarted (pg_ctl -m %s, down 4s)", mode)
				for _, name := range stack.Names {
					st.Services[name].WaitReady(t, 90*time.Second)
				}
				t.Log("every service ready again without a restart")
				// The relays' LISTEN sessions died with the server: each must be back, or
				// new rows would wait for the polling fallback.
				for _, name := range stack.Names {
					testkit.Eventually(t, 30*time.Second, name+"'s outbox relay listening again", func() bool {
						var n int
						err := st.DBs[name].Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = $1`,
							`LISTEN "`+outbox.NotifyChannel+`"`)
						return err == nil && n > 0
					})
				}
				t.Log("every outbox relay listening again")
			})
		})
	}
}

// TestScaleOutMidStream grows a consumer group from one instance to three while the
// events flow: two more processes of the service (same group and database) join, the
// partitions are rebalanced (cooperative-sticky) and the books must still balance, each
// event applied exactly once by whichever instance ended up with it. make test scales
// inventory; make chaos also discount and order.
func TestScaleOutMidStream(t *testing.T) {
	// The users wait while the group grows, so that two thirds of the carts (hashed over
	// all partitions) reach the three members: with 27 or more carts left, the chance that
	// one new member gets none of them is below 1 in 10,000.
	sc := currentScale()
	services := []string{"inventory", "discount", "order"}
	if !full() {
		sc = scale{name: "small", users: 20, rounds: 2, pause: 150 * time.Millisecond}
		services = services[:1]
	}
	sc.hold = true
	for _, name := range services {
		t.Run(name, func(t *testing.T) {
			var extra []*stack.Proc
			scenarioAt(t, sc, stack.Options{}, func(t *testing.T, st *stack.Stack) {
				start := time.Now()
				extra = []*stack.Proc{st.StartInstance(t, name), st.StartInstance(t, name)}
				for _, p := range extra {
					p.WaitReady(t, 90*time.Second)
				}
				group := st.Groups[name]
				for _, p := range extra {
					testkit.Eventually(t, 60*time.Second, p.Name+" owns partitions of group "+group, func() bool {
						return assigned(p.Logs(1<<20), group)
					})
				}
				t.Logf("%s scaled from 1 to 3 instances in %s (each new one owns partitions)", name, time.Since(start).Round(time.Millisecond))
			})
			// The books balanced; each new instance must also have done part of the work.
			for _, p := range extra {
				n := appliedEvents(t, p)
				if n == 0 {
					t.Fatalf("%s applied no event after joining: the scenario did not exercise the new instances", p.Name)
				}
				t.Logf("%s applied %d events", p.Name, n)
			}
		})
	}
}

// assigned reports whether a service's JSON log shows partitions of group (a prefix of
// it; "" for any) assigned to it.
func assigned(logs, group string) bool {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `"msg":"partitions assigned"`) && strings.Contains(line, `"group":"`+group) {
			return true
		}
	}
	return false
}

// appliedEvents sums eventshop_consumer_events_total{outcome="applied"} on p's /metrics.
func appliedEvents(t *testing.T, p *stack.Proc) int {
	t.Helper()
	return outcomeCount(t, p, "applied")
}

// outcomeCount sums eventshop_consumer_events_total{outcome=...} on p's /metrics.
func outcomeCount(t *testing.T, p *stack.Proc, outcome string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTPAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s metrics: %v", p.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s metrics: %v", p.Name, err)
	}
	var n float64
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, "eventshop_consumer_events_total{") && strings.Contains(line, `outcome="`+outcome+`"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				n += v
			}
		}
	}
	return int(n)
}

// TestSlowConsumerEvicted makes one consumer's handler take longer than its
// max.poll.interval.ms, once, without any test hook in the service: the test locks the
// service's processed_events table (ACCESS EXCLUSIVE, in an open transaction), so the
// handler's first statement waits. The services run with KAFKA_SESSION_TIMEOUT=6s and
// KAFKA_MAX_POLL_INTERVAL=8s; the lock is held for 20s, so librdkafka removes the member
// from the group while the handler waits, and the handler's first attempt also hits the
// 15s statement_timeout and is retried in place. After the release the member must notice
// it lost its partitions, rejoin, get the in-flight event again and recognise it as a
// duplicate: the books must balance with every event applied exactly once.
//
// It runs in make chaos only (about 40s each): make test covers the runner's side of it in
// pkg/kafka (TestRunnerSlowerThanMaxPollInterval).
func TestSlowConsumerEvicted(t *testing.T) {
	if !full() {
		t.Skip("runs in make chaos (EVENTSHOP_CHAOS=full)")
	}
	victims := []string{"inventory", "order"}
	const hold = 20 * time.Second
	opts := stack.Options{Env: []string{"KAFKA_SESSION_TIMEOUT=6s", "KAFKA_MAX_POLL_INTERVAL=8s"}}
	for _, name := range victims {
		t.Run(name, func(t *testing.T) {
			var victim *stack.Proc
			scenario(t, opts, func(t *testing.T, st *stack.Stack) {
				victim = st.Services[name]
				ctx := testkit.Context(t, time.Minute)
				tx, err := st.DBs[name].BeginTxx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = tx.Rollback() }()
				if _, err := tx.ExecContext(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, `LOCK TABLE processed_events IN ACCESS EXCLUSIVE MODE`); err != nil {
					t.Fatal(err)
				}
				locked := time.Now()
				t.Logf("%s: processed_events locked; its handler blocks", name)
				testkit.Eventually(t, 45*time.Second, name+" evicted for exceeding max.poll.interval.ms", func() bool {
					return strings.Contains(victim.Logs(1<<20), "Application maximum poll interval")
				})
				t.Logf("%s: evicted from its group %s after the lock", name, time.Since(locked).Round(time.Millisecond))
				time.Sleep(hold - time.Since(locked))
				if err := tx.Rollback(); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: lock released after %s", name, time.Since(locked).Round(time.Millisecond))
			})
			logs := victim.Logs(1 << 22)
			lost := strings.LastIndex(logs, `"msg":"partitions lost`)
			if lost < 0 {
				t.Fatalf("%s never reported its partitions lost", name)
			}
			if !assigned(logs[lost:], "") {
				t.Fatalf("%s did not get partitions again after losing them", name)
			}
			if n := outcomeCount(t, victim, "duplicate"); n == 0 {
				t.Fatalf("%s recognised no duplicate: the in-flight event was not delivered again after the eviction", name)
			} else {
				t.Logf("%s: rejoined; %d redelivered events recognised as duplicates; statement timeouts retried in place: %d",
					name, n, strings.Count(logs, "statement timeout"))
			}
		})
	}
}
