package host_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// startHost runs a host with a real database and producer (no API) until the test ends.
func startHost(t *testing.T, dbURL, brokers string) *host.Host {
	t.Helper()
	ctx := testkit.Context(t, 5*time.Minute)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := host.New(ctx, host.Config{Name: "readyz", HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Auth: auth.Config{Secret: auth.DevSigningKey, DevMode: true}}, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Postgres(ctx, postgres.Config{URL: dbURL, MaxOpenConns: 4}); err != nil {
		h.Close(ctx)
		t.Fatal(err)
	}
	if _, err := h.Producer(ctx, kafka.ProducerConfig{Brokers: brokers}); err != nil {
		h.Close(ctx)
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Logf("host run: %v", err)
		}
	})
	return h
}

type readiness struct {
	code   int
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func readyz(t *testing.T, h *host.Host) readiness {
	t.Helper()
	resp, err := http.Get("http://" + h.HTTPAddr() + "/readyz") //nolint:noctx // the test's HTTP client; /readyz is bounded server-side
	if err != nil {
		return readiness{Status: err.Error()}
	}
	defer func() { _ = resp.Body.Close() }()
	r := readiness{code: resp.StatusCode}
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return r
}

// waitReady polls /readyz until it answers 200 (ready) or 503 with check failing.
func waitReady(t *testing.T, h *host.Host, ready bool, check string) readiness {
	t.Helper()
	var last readiness
	what := "ready"
	if !ready {
		what = "unready because of " + check
	}
	testkit.Eventually(t, 90*time.Second, what, func() bool {
		last = readyz(t, h)
		if ready {
			return last.code == http.StatusOK && last.Checks[check] == "ok"
		}
		return last.code == http.StatusServiceUnavailable && last.Checks[check] != "" && last.Checks[check] != "ok"
	})
	return last
}

func TestReadyzFollowsKafka(t *testing.T) {
	k := testkit.OwnKafka(t)
	_, dbURL := testkit.Database(t)
	h := startHost(t, dbURL, k.Brokers)

	waitReady(t, h, true, "kafka")
	healthz, err := http.Get("http://" + h.HTTPAddr() + "/healthz") //nolint:noctx // test client
	if err != nil {
		t.Fatal(err)
	}
	_ = healthz.Body.Close()

	k.Stop(t)
	r := waitReady(t, h, false, "kafka")
	if r.Checks["postgres"] != "ok" {
		t.Errorf("postgres = %q while only Kafka is down", r.Checks["postgres"])
	}
	t.Logf("broker stopped: /readyz %d %v", r.code, r.Checks)
	if resp, err := http.Get("http://" + h.HTTPAddr() + "/healthz"); err != nil || resp.StatusCode != http.StatusOK { //nolint:noctx // test client
		t.Errorf("/healthz with the broker down = %v %v, want 200 (the process is alive)", resp, err)
	} else {
		_ = resp.Body.Close()
	}

	k.Start(t)
	waitReady(t, h, true, "kafka")
}

func TestReadyzFollowsPostgres(t *testing.T) {
	admin, _ := testkit.Database(t) // a pool on the server, for ALTER DATABASE
	_, dbURL := testkit.Database(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	h := startHost(t, dbURL, testkit.KafkaBrokers(t))
	waitReady(t, h, true, "postgres")

	// Nobody (superusers included) may connect, and the pool's connections are cut.
	exec := func(q string) {
		t.Helper()
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`ALTER DATABASE ` + name + ` ALLOW_CONNECTIONS false`)
	t.Cleanup(func() { _, _ = admin.Exec(`ALTER DATABASE ` + name + ` ALLOW_CONNECTIONS true`) })
	exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + name + `'`)
	r := waitReady(t, h, false, "postgres")
	if r.Checks["kafka"] != "ok" {
		t.Errorf("kafka = %q while only PostgreSQL is down", r.Checks["kafka"])
	}
	t.Logf("database closed: /readyz %d %v", r.code, r.Checks)

	exec(`ALTER DATABASE ` + name + ` ALLOW_CONNECTIONS true`)
	waitReady(t, h, true, "postgres")
}
