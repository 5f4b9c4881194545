// Package stack runs the four eventshop services as real processes on fresh databases and
// topics of one test, against a real PostgreSQL and Kafka, and lets the test stop, kill
// and restart each of them.
package stack

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/e2e/demo"
	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// Names of the services, in start order (the cart last: it reads the others' topics).
var Names = []string{"inventory", "discount", "order", "cart"}

// Consumes lists the topics (default names) each service's main consumer group reads.
var Consumes = map[string][]string{
	"inventory": {envelope.TopicCartEvents},
	"discount":  {envelope.TopicCartEvents},
	"order":     {envelope.TopicCartEvents, envelope.TopicInventoryEvents, envelope.TopicDiscountEvents},
	"cart":      {envelope.TopicInventoryEvents, envelope.TopicDiscountEvents},
	// The cart's catalog read model has a group of its own.
	"cart-catalog": {envelope.TopicProducts},
}

// Options tune Start.
type Options struct {
	// Brokers is the Kafka bootstrap address; empty means the shared test broker.
	Brokers string
	// Env is appended to every service's environment.
	Env []string
	// PostgresURL is the superuser URL of the server the services' databases are created
	// on (e.g. a testkit.OwnPostgres the test restarts); empty means the shared test server.
	PostgresURL string
}

// Stack is the running system of one test.
type Stack struct {
	Services map[string]*Proc
	// Extra holds the instances added with AddInstance, by service name.
	Extra   map[string][]*Proc
	DBs     map[string]*sqlx.DB // by service name
	Topics  map[string]string   // default topic name -> this test's topic
	Groups  map[string]string   // service name (or "cart-catalog") -> its consumer group
	Brokers string
	Auth    auth.Config
}

// Proc is one service process; Kill and Start may be called repeatedly.
type Proc struct {
	Name               string
	HTTPAddr, GRPCAddr string
	bin                string
	env                []string
	logs               *syncBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Tail returns the last n bytes written.
func (s *syncBuffer) Tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// Build compiles the four service commands into dir.
func Build(ctx context.Context, dir string) error {
	root, err := testkit.RepoRoot()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(Names))
	for _, name := range Names {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
			cmd.Dir = filepath.Join(root, "services", name)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("build %s: %w\n%s", name, err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Start builds the four service commands and runs them as real processes on fresh
// databases and topics of this test; every process is killed when the test ends.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	st := &Stack{Services: map[string]*Proc{}, Extra: map[string][]*Proc{}, DBs: map[string]*sqlx.DB{}, Topics: map[string]string{}, Groups: map[string]string{},
		Brokers: opts.Brokers, Auth: auth.Config{Secret: auth.DevSigningKey, DevMode: true}}
	if st.Brokers == "" {
		st.Brokers = testkit.KafkaBrokers(t)
	}

	run := testkit.RandomSuffix(3)
	for name := range Consumes {
		st.Groups[name] = "e2e-" + run + "-" + name
	}
	var specs []kafka.TopicSpec
	for _, spec := range envelope.DefaultTopics() {
		name := "e2e." + run + "." + spec.Name
		st.Topics[spec.Name] = name
		spec.Name = name
		specs = append(specs, spec)
	}
	// The services run with KAFKA_CREATE_TOPICS=false: their dead-letter topics come from here.
	for svc, topics := range Consumes {
		for _, topic := range topics {
			specs = append(specs, kafka.TopicSpec{Name: kafka.DLQTopic(st.Topics[topic], st.Groups[svc]), Partitions: 1})
		}
	}
	testkit.CreateTopics(t, st.Brokers, specs...)

	bin := t.TempDir()
	// A cold build on a busy 2-core machine can take minutes: give it its own deadline.
	if err := Build(testkit.Context(t, 10*time.Minute), bin); err != nil {
		t.Fatal(err)
	}

	common := []string{
		"KAFKA_BROKERS=" + st.Brokers, "DEV_MODE=true", "KAFKA_CREATE_TOPICS=false", "LOG_LEVEL=info", "SHUTDOWN_TIMEOUT=20s",
		"CART_EVENTS_TOPIC=" + st.Topics[envelope.TopicCartEvents],
		"INVENTORY_EVENTS_TOPIC=" + st.Topics[envelope.TopicInventoryEvents],
		"PRODUCTS_TOPIC=" + st.Topics[envelope.TopicProducts],
		"DISCOUNT_EVENTS_TOPIC=" + st.Topics[envelope.TopicDiscountEvents],
		"ORDER_EVENTS_TOPIC=" + st.Topics[envelope.TopicOrderEvents],
	}
	perService := map[string][]string{
		"cart": {"CATALOG_GROUP=" + st.Groups["cart-catalog"]},
	}
	for _, name := range Names {
		var db *sqlx.DB
		var dbURL string
		if opts.PostgresURL != "" {
			db, dbURL = testkit.DatabaseOn(t, opts.PostgresURL)
		} else {
			db, dbURL = testkit.Database(t)
		}
		st.DBs[name] = db
		p := &Proc{Name: name, HTTPAddr: freeAddr(t), GRPCAddr: freeAddr(t), bin: filepath.Join(bin, name), logs: &syncBuffer{}}
		p.env = append(append(append(os.Environ(), common...), perService[name]...), opts.Env...)
		p.env = append(p.env, "HTTP_ADDR="+p.HTTPAddr, "GRPC_ADDR="+p.GRPCAddr, "DATABASE_URL="+dbURL, "CONSUMER_GROUP="+st.Groups[name])
		st.Services[name] = p
		p.killAtCleanup(t)
		p.Start(t)
	}
	for _, p := range st.Services {
		p.WaitReady(t, 90*time.Second)
	}
	return st
}

// AddInstance starts one more process of service name (same database, consumer group
// and configuration, its own HTTP and gRPC ports), waits until it is ready and returns
// it; it is killed when the test ends.
func (st *Stack) AddInstance(t testing.TB, name string) *Proc {
	t.Helper()
	p := st.StartInstance(t, name)
	p.WaitReady(t, 90*time.Second)
	return p
}

// StartInstance is AddInstance without waiting for readiness, to start several at once.
func (st *Stack) StartInstance(t testing.TB, name string) *Proc {
	t.Helper()
	base, ok := st.Services[name]
	if !ok {
		t.Fatalf("stack: no service %q", name)
	}
	n := len(st.Extra[name]) + 2
	p := &Proc{Name: fmt.Sprintf("%s#%d", name, n), HTTPAddr: freeAddr(t), GRPCAddr: freeAddr(t), bin: base.bin, logs: &syncBuffer{}}
	// Later entries win (os/exec keeps the last value of a duplicated variable).
	p.env = append(append([]string(nil), base.env...), "HTTP_ADDR="+p.HTTPAddr, "GRPC_ADDR="+p.GRPCAddr)
	st.Extra[name] = append(st.Extra[name], p)
	p.killAtCleanup(t)
	p.Start(t)
	return p
}

func (p *Proc) killAtCleanup(t testing.TB) {
	t.Cleanup(func() {
		p.mu.Lock()
		if p.cmd != nil {
			_ = p.cmd.Process.Kill()
		}
		p.mu.Unlock()
		if t.Failed() {
			t.Logf("--- %s output (last 4 KiB):\n%s", p.Name, p.logs.Tail(4096))
		}
	})
}

// Start starts the process (it must not be running).
func (p *Proc) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	// Not bound to a test context: Kill, Stop and the test's cleanup end the process.
	cmd := exec.CommandContext(context.Background(), p.bin)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.Name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p.cmd, p.exited = cmd, exited
}

// WaitReady waits until the process answers 200 on /readyz.
func (p *Proc) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	testkit.Eventually(t, timeout, p.Name+" ready", func() bool { return p.Ready() })
}

// Ready reports whether /readyz answers 200 now.
func (p *Proc) Ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.HTTPAddr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s: %v", p.Name, err)
	}
	select {
	case err := <-p.exited:
		t.Logf("%s: %v", p.Name, err) // "signal: killed"
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still running 30s after SIGKILL", p.Name)
	}
}

// Stop sends SIGTERM and checks the process exits 0 within timeout.
func (p *Proc) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.Name, err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("%s exited with %v after SIGTERM", p.Name, err)
		}
	case <-time.After(timeout):
		t.Fatalf("%s did not stop within %s of SIGTERM", p.Name, timeout)
	}
}

// Logs returns the last n bytes of the process output (all its runs).
func (p *Proc) Logs(n int) string { return p.logs.Tail(n) }

// Endpoints returns the HTTP base URLs of the four services.
func (st *Stack) Endpoints() demo.Endpoints {
	u := func(n string) string { return "http://" + st.Services[n].HTTPAddr }
	return demo.Endpoints{Cart: u("cart"), Inventory: u("inventory"), Order: u("order"), Discount: u("discount")}
}

// Stop sends SIGTERM to every service (cart first) and checks each exits 0.
func (st *Stack) Stop(t testing.TB) {
	t.Helper()
	for _, name := range []string{"cart", "order", "discount", "inventory"} {
		st.Services[name].Stop(t, 60*time.Second)
	}
}
