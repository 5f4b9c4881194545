package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/bench/report"
	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
)

// fakeStack stands in for the cart and the inventory of the running stack: AddItem
// answers with a cart id and version and publishes the inventory's StockReserved for it
// to a topic of the test, as the real inventory would after the event went through Kafka.
type fakeStack struct {
	cartpb.UnimplementedCartServiceServer
	verifier *auth.Verifier
	pr       *kafka.Producer
	topic    string

	mu       sync.Mutex
	versions map[string]int64 // cart version by user
	invVer   map[string]int64 // inventory aggregate version by cart
	adds     int
}

func (f *fakeStack) user(authz string) (string, error) {
	c, err := f.verifier.Verify(strings.TrimPrefix(authz, "Bearer "))
	return c.UserID, err
}

func (f *fakeStack) add(ctx context.Context, user, product string) (string, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cart := "cart-" + user
	f.versions[user]++
	f.invVer[cart]++
	f.adds++
	e := &inventorypb.InventoryEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cart, AggregateVersion: f.invVer[cart],
		Payload: &inventorypb.InventoryEvent_StockReserved{StockReserved: &inventorypb.StockReserved{ProductId: product, Quantity: 1}}}
	m, err := envelope.Encode(ctx, f.topic, "eventshop/fake-inventory", e)
	if err != nil {
		return "", 0, err
	}
	return cart, f.versions[user], f.pr.Publish(ctx, m)
}

func (f *fakeStack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/readyz":
		return
	case "/metrics":
		_, _ = fmt.Fprintln(w, "# HELP go_memstats_heap_inuse_bytes x\ngo_memstats_heap_inuse_bytes 1.048576e+06")
		return
	}
	user, err := f.user(r.Header.Get("Authorization"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/cart/items":
		var req struct {
			ProductID string `json:"product_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ProductID == "" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		cart, v, err := f.add(r.Context(), user, req.ProductID)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = fmt.Fprintf(w, `{"cart":{"cart_id":%q,"version":"%d"}}`, cart, v)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/cart/items/"):
		_, _ = fmt.Fprintf(w, `{"cart":{"cart_id":"cart-%s","version":"0"}}`, user)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeStack) AddItem(ctx context.Context, req *cartpb.AddItemRequest) (*cartpb.AddItemResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	user, err := f.user(strings.Join(md.Get("authorization"), ""))
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	cart, v, err := f.add(ctx, user, req.GetProductId())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &cartpb.AddItemResponse{Cart: &cartpb.Cart{CartId: cart, Version: v}}, nil
}

// TestSmoke runs every section of the command with tiny counts: producers against the
// real broker, cart load and end-to-end matching against the in-process fake stack
// above, memory on this test's own process, and the consumer section on a self-started
// inventory process with its own database and topics. It proves the harness works, not
// how fast anything is.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and talks to the real PostgreSQL and Kafka")
	}
	brokers := testkit.KafkaBrokers(t)
	pgURL := os.Getenv(testkit.EnvPostgresURL)
	if pgURL == "" {
		t.Fatalf("%s is not set: eval \"$(scripts/infra.sh env)\" after make infra-up", testkit.EnvPostgresURL)
	}
	ctx := testkit.Context(t, 5*time.Minute)
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}

	verifier, err := auth.NewVerifier(auth.Config{Secret: auth.DevSigningKey, DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pr.Close(context.Background()) })
	fake := &fakeStack{verifier: verifier, pr: pr, topic: testkit.Topic(t, brokers, 3), versions: map[string]int64{}, invVer: map[string]int64{}}
	httpSrv := httptest.NewServer(fake)
	t.Cleanup(httpSrv.Close)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcSrv := grpc.NewServer()
	cartpb.RegisterCartServiceServer(grpcSrv, fake)
	go func() { _ = grpcSrv.Serve(ln) }()
	t.Cleanup(grpcSrv.Stop)

	pids := t.TempDir()
	for _, s := range services {
		if err := os.WriteFile(filepath.Join(pids, s+".pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	o := options{brokers: brokers, classpath: filepath.Join(t.TempDir(), "none"), out: out, short: 2, persistent: 200, size: 100, smoke: true,
		sections: "producer,cart,consumer,memory", postgresURL: pgURL, repoRoot: root, cartHTTP: httpSrv.URL, cartGRPC: ln.Addr().String(),
		invTopic: fake.topic, pidDir: pids, rate: 40, duration: time.Second, workers: 2, users: 5, consumerN: 40}
	if err := run(ctx, o); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	byTitle := map[string]report.Section{}
	for _, s := range rep.Sections {
		byTitle[strings.Fields(s.Title)[0]] = s
	}
	for _, want := range []string{"Producers:", "Cart", "End-to-end", "Resident", "Consumer:"} {
		if _, ok := byTitle[want]; !ok {
			t.Fatalf("no section starting %q in %s", want, b)
		}
	}
	cart := byTitle["Cart"]
	if len(cart.Rows) != 4 {
		t.Fatalf("cart rows %+v", cart.Rows)
	}
	for _, r := range cart.Rows {
		if strings.Contains(r.Name, "open loop") { // 40/s for 1 s
			if r.Metrics["requests"] != 40 || r.Metrics["errors"] != 0 {
				t.Errorf("%s: %v (note %q)", r.Name, r.Metrics, r.Note)
			}
			continue
		}
		if r.Metrics["requests"] < 1 || r.Metrics["errors"] != 0 || r.Metrics["p99_ms"] < r.Metrics["p50_ms"] {
			t.Errorf("%s: %v (note %q)", r.Name, r.Metrics, r.Note)
		}
	}
	e2e := byTitle["End-to-end"].Rows[0].Metrics
	// The fake announces the outcome before it answers, so its latencies are slightly
	// negative; the real inventory commits after the answer.
	if e2e["matched"] != 40 || e2e["unmatched"] != 0 || e2e["p50_ms"] == 0 || e2e["p99_ms"] < e2e["p50_ms"] || e2e["p99_ms"] > 5000 {
		t.Errorf("end-to-end %v: want the 40 HTTP open-loop adds matched", e2e)
	}
	for _, r := range byTitle["Resident"].Rows {
		if r.Metrics["idle_mb"] <= 1 || r.Metrics["load_mb"] <= 1 {
			t.Errorf("memory %s: %v", r.Name, r.Metrics)
		}
		if r.Name == "cart" && r.Metrics["go_heap_inuse_mb"] != 1 {
			t.Errorf("cart Go heap %v MB, want the fake's 1 MB", r.Metrics["go_heap_inuse_mb"])
		}
	}
	if c := byTitle["Consumer:"].Rows[0].Metrics; c["events"] != 40 || c["events_per_sec"] <= 0 {
		t.Errorf("consumer %v", c)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil || !strings.Contains(string(md), "End-to-end latency") {
		t.Fatalf("results.md: %v\n%s", err, md)
	}
}
