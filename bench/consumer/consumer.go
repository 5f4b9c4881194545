// Package consumer measures how fast the inventory service applies cart events into
// PostgreSQL with idempotency on: N ItemAdded events are produced into a topic of this
// run first, then the inventory process starts on a fresh database and the clock runs
// until its processed_events table holds all N.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/postgres"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// Config says what to measure and where.
type Config struct {
	Binary      string // the inventory command, built by Build
	PostgresURL string // a server URL whose user may create databases
	Brokers     string
	Events      int // ItemAdded events to apply
	Run         string
	Log         *slog.Logger
}

// Result is one measurement.
type Result struct {
	Events int
	// PerSec counts from the first applied event to the last (start-up excluded).
	PerSec float64
	// Elapsed runs from the process start to the last applied event.
	Elapsed time.Duration
}

// eventsPerCart is how many ItemAdded events each simulated cart gets (versions 1..n).
const eventsPerCart = 10

var products = []string{"mug", "tshirt", "poster", "pen", "notebook"}

// Build compiles the inventory command of the repository at root into dir.
func Build(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "inventory")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/inventory")
	cmd.Dir = filepath.Join(root, "services", "inventory")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build inventory: %w\n%s", err, out)
	}
	return bin, nil
}

// Measure runs the experiment and removes its database and topics afterwards.
func Measure(ctx context.Context, cfg Config) (Result, error) {
	db, dbURL, drop, err := freshDatabase(ctx, cfg.PostgresURL, "bench_inv_"+cfg.Run)
	if err != nil {
		return Result{}, err
	}
	defer drop()
	defer func() { _ = db.Close() }()

	topics := map[string]string{}
	var specs []kafka.TopicSpec
	for _, s := range envelope.DefaultTopics() {
		topics[s.Name] = "bench." + cfg.Run + "." + s.Name
		s.Name = topics[s.Name]
		specs = append(specs, s)
	}
	if err := kafka.EnsureTopics(ctx, cfg.Brokers, specs...); err != nil {
		return Result{}, err
	}
	defer func() {
		names := make([]string, 0, len(topics))
		for _, n := range topics {
			names = append(names, n)
		}
		_ = kafka.DeleteTopics(context.WithoutCancel(ctx), cfg.Brokers, names...)
	}()
	group := "bench-" + cfg.Run + "-inventory"
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+cfg.Brokers, "DEV_MODE=true",
		"KAFKA_CREATE_TOPICS=false", "LOG_LEVEL=warn", "CONSUMER_GROUP="+group,
		"CART_EVENTS_TOPIC="+topics[envelope.TopicCartEvents],
		"INVENTORY_EVENTS_TOPIC="+topics[envelope.TopicInventoryEvents],
		"PRODUCTS_TOPIC="+topics[envelope.TopicProducts])

	// A first start migrates the database; then every product gets ample stock, so that
	// each event takes the reservation path (the heavier one), not a rejection.
	p, err := start(ctx, cfg.Binary, env)
	if err != nil {
		return Result{}, err
	}
	if err := p.stop(); err != nil {
		return Result{}, err
	}
	if _, err := db.ExecContext(ctx, `UPDATE products SET available = 10000000`); err != nil {
		return Result{}, fmt.Errorf("restock: %w", err)
	}
	if err := produce(ctx, cfg, topics[envelope.TopicCartEvents]); err != nil {
		return Result{}, err
	}

	began := time.Now()
	p, err = start(ctx, cfg.Binary, env)
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = p.stop() }()
	var first time.Time
	var firstCount int
	deadline := began.Add(time.Duration(cfg.Events)*20*time.Millisecond + 2*time.Minute)
	for {
		var n int
		if err := db.GetContext(ctx, &n, `SELECT count(*) FROM processed_events WHERE consumer = $1`, group); err != nil {
			return Result{}, fmt.Errorf("count processed events: %w", err)
		}
		now := time.Now()
		if n > 0 && first.IsZero() {
			first, firstCount = now, n
		}
		if n >= cfg.Events {
			r := Result{Events: n, Elapsed: now.Sub(began)}
			if d := now.Sub(first); d > 0 && n > firstCount {
				r.PerSec = float64(n-firstCount) / d.Seconds()
			} else {
				// Everything committed in the first batch seen: count from the start.
				r.PerSec = float64(n) / r.Elapsed.Seconds()
			}
			return r, nil
		}
		if now.After(deadline) {
			return Result{}, fmt.Errorf("inventory applied %d of %d events in %s", n, cfg.Events, now.Sub(began).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-p.exited:
			return Result{}, fmt.Errorf("inventory exited during the run: %w\n%s", p.err, p.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// produce writes cfg.Events ItemAdded events: carts of eventsPerCart adds each, one unit
// at a time over the products, as the cart service would publish them.
func produce(ctx context.Context, cfg Config, topic string) error {
	pr, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: cfg.Brokers, ClientID: "bench-consumer"}, cfg.Log)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for i := range cfg.Events {
		cart := fmt.Sprintf("00000000-0000-7000-8000-%012d", i/eventsPerCart)
		n := i % eventsPerCart
		product := products[n%len(products)]
		e := &cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cart, AggregateVersion: int64(n + 1),
			Payload: &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{UserId: "bench-" + cart[len(cart)-6:], ProductId: product,
				Quantity: 1, LineQuantity: int32(n/len(products) + 1), UnitPriceCents: 100}}}
		m, err := envelope.Encode(ctx, topic, "eventshop/bench", e)
		if err != nil {
			return err
		}
		wg.Add(1)
		if err := pr.PublishAsync(ctx, m, func(err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}); err != nil {
			wg.Done()
			return err
		}
	}
	wg.Wait()
	if _, err := pr.Close(ctx); err != nil {
		return err
	}
	return errors.Join(errs...)
}

type process struct {
	cmd    *exec.Cmd
	logs   *syncWriter
	exited chan struct{}
	err    error
}

// start runs the inventory command on a free HTTP and gRPC port and waits until it is ready.
func start(ctx context.Context, bin string, env []string) (*process, error) {
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// Cancelling ctx (an interrupted bench) stops the process as stop would.
	p := &process{cmd: exec.CommandContext(ctx, bin), logs: &syncWriter{w: &strings.Builder{}}, exited: make(chan struct{})}
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(syscall.SIGTERM) }
	p.cmd.WaitDelay = 30 * time.Second
	p.cmd.Env = append(env, "HTTP_ADDR="+httpAddr, "GRPC_ADDR="+grpcAddr)
	w := p.logs
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start inventory: %w", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/readyz", nil)
		if err != nil {
			return nil, err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("inventory exited during start-up: %w\n%s", p.err, w.String())
		case <-ctx.Done():
			_ = p.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.stop()
			return nil, fmt.Errorf("inventory not ready after 90s\n%s", w.String())
		}
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 30s).
func (p *process) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop inventory: %w", err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("inventory did not stop within 30s of SIGTERM")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func freeAddr() (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// freshDatabase creates database name on the server of admin and returns a pool on it, its
// URL and a function that drops it.
func freshDatabase(ctx context.Context, admin, name string) (*sqlx.DB, string, func(), error) {
	adb, err := postgres.Open(ctx, postgres.Config{URL: admin, MaxOpenConns: 1})
	if err != nil {
		return nil, "", nil, err
	}
	if _, err := adb.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		_ = adb.Close()
		return nil, "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = adb.ExecContext(dctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		_ = adb.Close()
	}
	u, err := url.Parse(admin)
	if err != nil {
		drop()
		return nil, "", nil, fmt.Errorf("postgres url: %w", err)
	}
	u.Path = "/" + name
	db, err := postgres.Open(ctx, postgres.Config{URL: u.String(), MaxOpenConns: 2})
	if err != nil {
		drop()
		return nil, "", nil, err
	}
	return db, u.String(), drop, nil
}
