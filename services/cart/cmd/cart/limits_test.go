package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
)

// cartProc is the real cart binary running against the test's database and topics.
type cartProc struct {
	httpAddr, grpcAddr string
	cmd                *exec.Cmd
	exited             chan error
	logs               func() string
}

func startCart(t *testing.T, bin string, env ...string) *cartProc {
	t.Helper()
	p := &cartProc{httpAddr: freeAddr(t), grpcAddr: freeAddr(t), exited: make(chan error, 1)}
	p.cmd = exec.Command(bin)
	var logs bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(b) })
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.logs = func() string { mu.Lock(); defer mu.Unlock(); return logs.String() }
	p.cmd.Env = append(append(os.Environ(), "DEV_MODE=true", "KAFKA_CREATE_TOPICS=false", "SHUTDOWN_TIMEOUT=10s"), env...)
	p.cmd.Env = append(p.cmd.Env, "HTTP_ADDR="+p.httpAddr, "GRPC_ADDR="+p.grpcAddr)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		if t.Failed() {
			out := p.logs()
			if len(out) > 8192 {
				out = out[len(out)-8192:]
			}
			t.Logf("cart output (last 8 KiB):\n%s", out)
		}
	})
	testkit.Eventually(t, 60*time.Second, "cart ready", func() bool {
		resp, err := http.Get("http://" + p.httpAddr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// reply is the outcome of one API call over HTTP or gRPC.
type reply struct {
	via  string
	code int // HTTP status, or the gRPC code
	body string
	took time.Duration
	err  error
}

func (p *cartProc) addItemHTTP(tok string) reply {
	return p.http("POST", "/v1/cart/items", `{"product_id":"mug","quantity":1}`, tok)
}

func (p *cartProc) http(method, path, body, tok string, header ...string) reply {
	start := time.Now()
	req, _ := http.NewRequest(method, "http://"+p.httpAddr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return reply{via: "HTTP " + path, err: err, took: time.Since(start)}
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return reply{via: "HTTP " + path, code: resp.StatusCode, body: string(b), took: time.Since(start)}
}

// addItemGRPC calls AddItem asking for an hour: the server's request timeout must cut it short.
func (p *cartProc) addItemGRPC(t *testing.T, tok string) reply {
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Error(err)
		return reply{err: err}
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok), time.Hour)
	defer cancel()
	start := time.Now()
	_, err = cartpb.NewCartServiceClient(conn).AddItem(ctx, &cartpb.AddItemRequest{ProductId: "mug", Quantity: 1})
	st := status.Convert(err)
	return reply{via: "gRPC AddItem", code: int(st.Code()), body: st.Message(), took: time.Since(start)}
}

// gauge reads one eventshop_* sample of the cart's /metrics.
func (p *cartProc) gauge(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && strings.HasPrefix(f[0], name+"{") {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// leaks returns what in an error body would tell a client about the internals.
func leaks(body string) []string {
	var found []string
	for _, s := range []string{"pq:", "SQL", "SELECT", "advisory", "statement", "canceling", "goroutine", ".go:", "127.0.0.1", "localhost", "postgres"} {
		if strings.Contains(body, s) {
			found = append(found, s)
		}
	}
	return found
}

// checkJSONError checks an HTTP error reply: the status, a JSON body with the gRPC code
// name, and nothing internal in it.
func checkJSONError(t *testing.T, r reply, httpCode int, grpcStatus string) {
	t.Helper()
	var body struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if r.err != nil || r.code != httpCode || json.Unmarshal([]byte(r.body), &body) != nil || body.Status != grpcStatus || body.Message == "" {
		t.Errorf("%s: %d %q %v after %s; want %d with a JSON %s body", r.via, r.code, r.body, r.err, r.took, httpCode, grpcStatus)
	}
	if l := leaks(r.body); len(l) > 0 {
		t.Errorf("%s: error body %q leaks %v", r.via, r.body, l)
	}
}

func checkGRPCError(t *testing.T, r reply, want codes.Code) {
	t.Helper()
	if codes.Code(r.code) != want {
		t.Errorf("%s: %v %q after %s; want %v", r.via, codes.Code(r.code), r.body, r.took, want)
	}
	if l := leaks(r.body); len(l) > 0 {
		t.Errorf("%s: error message %q leaks %v", r.via, r.body, l)
	}
}

// holdUserLock takes the cart's per-user command lock in a transaction of the test's own,
// so that the user's commands wait inside theirs; release rolls it back.
func holdUserLock(t *testing.T, ctx context.Context, dbURL, user string) (release func()) {
	t.Helper()
	db, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxOpenConns: 1, StatementTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtextextended($1, 42))`, user); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = tx.Rollback()
			_ = db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// state is what a command changes: the user's cart version and the outbox.
type state struct{ version, outbox int64 }

func cartState(t *testing.T, db *sqlx.DB, user string) state {
	t.Helper()
	var s state
	if err := db.Get(&s.version, `SELECT coalesce(max(version), 0) FROM carts WHERE user_id = $1`, user); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&s.outbox, `SELECT count(*) FROM outbox`); err != nil {
		t.Fatal(err)
	}
	return s
}

// cartSessions counts the cart's own connections (application_name "cart") in state.
func cartSessions(t *testing.T, db *sqlx.DB, state string) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'cart' AND state = $1`, state); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDatabaseFaultsAreBoundedAndRecover runs the real cart binary with a 4-connection
// pool and a 3s request timeout. The test holds one user's command lock in the database,
// so that that user's commands each hold a pool connection and wait:
//
//   - the pool is exhausted (in use = max), and every request, the waiting ones, those
//     queued for a connection and another user's, ends within the request timeout with
//     504 DEADLINE_EXCEEDED JSON (gRPC: DeadlineExceeded, though the client asked for an
//     hour), with nothing internal in the body;
//   - the pool drains back to idle while the lock is still held, and once it is released
//     the next command succeeds as the only change: the timed-out ones changed nothing.
//
// Then the cart runs with statement_timeout=500ms below its request timeout: a command
// blocked past it gets 503 UNAVAILABLE JSON (gRPC Unavailable) and changes nothing.
func TestDatabaseFaultsAreBoundedAndRecover(t *testing.T) {
	db, dbURL := testkit.Database(t)
	brokers := testkit.KafkaBrokers(t)
	cartTopic, productsTopic := testkit.Topic(t, brokers, 6), testkit.Topic(t, brokers, 1)
	ctx := testkit.Context(t, 3*time.Minute)

	bin := filepath.Join(t.TempDir(), "cart")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const requestTimeout = 8 * time.Second // long enough for 10 requests to reach the lock on a busy machine
	common := []string{"KAFKA_BROKERS=" + brokers, "CART_EVENTS_TOPIC=" + cartTopic, "PRODUCTS_TOPIC=" + productsTopic,
		"INVENTORY_EVENTS_TOPIC=" + testkit.Topic(t, brokers, 1), "DISCOUNT_EVENTS_TOPIC=" + testkit.Topic(t, brokers, 1),
		"CATALOG_GROUP=" + testkit.Name("catalog"), "CONSUMER_GROUP=" + testkit.Name("cart"), "DATABASE_MAX_CONNS=4"}
	cart := startCart(t, bin, append(common, "DATABASE_URL="+dbURL, "REQUEST_TIMEOUT="+requestTimeout.String())...)

	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Close(context.Background()) }()
	snap := &inventorypb.ProductEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: "mug", AggregateVersion: 1,
		Payload: &inventorypb.ProductEvent_ProductSnapshot{ProductSnapshot: &inventorypb.ProductSnapshot{ProductId: "mug", Name: "Mug", PriceCents: 1250, Available: 1000}}}
	m, err := envelope.Encode(ctx, productsTopic, "test", snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "catalog has the product", func() bool {
		var n int
		_ = db.Get(&n, `SELECT count(*) FROM catalog`)
		return n == 1
	})
	mint := func(user string) string {
		tok, err := auth.Mint(auth.Config{Secret: auth.DevSigningKey, DevMode: true}, user, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	victim, bystander := mint("victim"), mint("bystander")
	if r := cart.addItemHTTP(victim); r.code != http.StatusOK {
		t.Fatalf("first AddItem: %+v", r)
	}
	before := cartState(t, db, "victim")

	t.Run("pool exhaustion", func(t *testing.T) {
		release := holdUserLock(t, ctx, dbURL, "victim")
		replies := make(chan reply, 12)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { replies <- cart.addItemHTTP(victim) })
		}
		for range 2 {
			wg.Go(func() { replies <- cart.addItemGRPC(t, victim) })
		}
		testkit.Eventually(t, requestTimeout, "pool exhausted: 4 commands wait on the lock", func() bool {
			var n int
			_ = db.Get(&n, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)
			return n == 4
		})
		if inUse, maxOpen := cart.gauge(t, "eventshop_db_connections_in_use"), cart.gauge(t, "eventshop_db_connections_max_open"); inUse != 4 || maxOpen != 4 {
			t.Errorf("pool gauges: %v in use, max %v; want 4 of 4", inUse, maxOpen)
		}
		// Another user's read needs a connection too: it waits for one, bounded likewise
		// (by a 1s deadline of its own, to end while the pool is still held).
		for range 2 {
			wg.Go(func() { replies <- cart.http("GET", "/v1/cart", "", bystander, "Grpc-Timeout", "1S") })
		}
		wg.Wait()
		close(replies)
		for r := range replies {
			if r.took > requestTimeout+3*time.Second {
				t.Errorf("%s took %s; the request timeout is %s", r.via, r.took, requestTimeout)
			}
			if strings.HasPrefix(r.via, "gRPC") {
				checkGRPCError(t, r, codes.DeadlineExceeded)
			} else {
				checkJSONError(t, r, http.StatusGatewayTimeout, "DEADLINE_EXCEEDED")
			}
		}

		// Every connection comes back (those canceled mid-statement are replaced) while
		// the lock is still held: no restart needed.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			inUse, active, inTx := cart.gauge(t, "eventshop_db_connections_in_use"), cartSessions(t, db, "active"), cartSessions(t, db, "idle in transaction")
			if inUse == 0 && active == 0 && inTx == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pool not idle 10s after the faults: %v connections in use; cart sessions: %d active, %d idle in transaction", inUse, active, inTx)
			}
		}
		if after := cartState(t, db, "victim"); after != before {
			t.Errorf("timed-out commands changed the cart: %+v, before %+v", after, before)
		}
		release()
		if r := cart.addItemHTTP(victim); r.code != http.StatusOK {
			t.Errorf("AddItem after the lock was released: %+v", r)
		}
		if r := cart.http("GET", "/v1/cart", "", bystander); r.code != http.StatusOK {
			t.Errorf("GetCart after the lock was released: %+v", r)
		}
		if after, want := cartState(t, db, "victim"), (state{before.version + 1, before.outbox + 1}); after != want {
			t.Errorf("after the faults and one more AddItem: %+v, want %+v (one more version and outbox row than before the faults)", after, want)
		}
	})

	t.Run("statement timeout", func(t *testing.T) {
		if err := cart.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-cart.exited:
			if err != nil {
				t.Fatalf("cart exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("cart did not stop within 30s of SIGTERM")
		}
		cart = startCart(t, bin, append(common, "DATABASE_URL="+dbURL+"&statement_timeout=500", "REQUEST_TIMEOUT=5s")...)
		before := cartState(t, db, "victim")
		release := holdUserLock(t, ctx, dbURL, "victim")
		for _, r := range []reply{cart.addItemHTTP(victim), cart.addItemGRPC(t, victim)} {
			if r.took < 400*time.Millisecond || r.took > 4*time.Second {
				t.Errorf("%s took %s; want the 500ms statement timeout, well before the 5s request timeout", r.via, r.took)
			}
			if strings.HasPrefix(r.via, "gRPC") {
				checkGRPCError(t, r, codes.Unavailable)
			} else {
				checkJSONError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE")
			}
		}
		if after := cartState(t, db, "victim"); after != before {
			t.Errorf("timed-out commands changed the cart: %+v, before %+v", after, before)
		}
		// What the client is not told, the operator is.
		if !strings.Contains(cart.logs(), "canceling statement due to statement timeout") {
			t.Error("the cart's log does not name the cause (statement timeout) of the 503s")
		}
		release()
		if r := cart.addItemHTTP(victim); r.code != http.StatusOK {
			t.Errorf("AddItem after the lock was released: %+v", r)
		}
	})
}
