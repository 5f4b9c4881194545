package testkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// PostgresProcess is a PostgreSQL cluster owned by one test, created and run through
// scripts/postgres.sh (the one place that finds the server binaries and knows how to run
// them, as the postgres user when root) in a temporary work folder on a free loopback
// port, so that the test may stop, crash and restart it without disturbing the shared
// test server other packages use.
type PostgresProcess struct {
	// URL is the superuser URL of the cluster's postgres database, like
	// EVENTSHOP_POSTGRES_URL; DatabaseOn creates a test's databases on it.
	URL    string
	script string
	env    []string
}

// OwnPostgres creates and starts a dedicated cluster for the test (initdb takes a few
// seconds) and removes it when the test ends. It needs what the shared server needs (the
// PostgreSQL server binaries); it skips under -short.
func OwnPostgres(t testing.TB) *PostgresProcess {
	t.Helper()
	need(t, EnvPostgresURL) // same precondition as the shared server
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	// Not t.TempDir: as root the server runs as the postgres user, which cannot enter the
	// test's 0700 temporary folders. A short path also keeps the unix socket under its limit.
	work, err := os.MkdirTemp("", "es-pg-")
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	if err := os.Chmod(work, 0o755); err != nil { //nolint:gosec // the postgres user must reach its data folder
		t.Fatalf("testkit: %v", err)
	}
	port := freePort(t)
	p := &PostgresProcess{
		URL:    "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable",
		script: filepath.Join(root, "scripts", "postgres.sh"),
		env:    append(os.Environ(), "EVENTSHOP_WORK="+work, "EVENTSHOP_PG_PORT="+strconv.Itoa(port)),
	}
	t.Cleanup(func() {
		p.run(t, "stop", "EVENTSHOP_PG_STOP_MODE=immediate") // nothing to keep
		if err := os.RemoveAll(work); err != nil {
			t.Logf("testkit: remove %s: %v", work, err)
		}
	})
	p.Start(t)
	return p
}

// Start starts the server (a no-op when it runs) and waits until it accepts connections.
func (p *PostgresProcess) Start(t testing.TB) { t.Helper(); p.run(t, "start") }

// Stop shuts the server down with pg_ctl -m fast: sessions are terminated, open
// transactions rolled back, a checkpoint written; clients see their connections closed.
func (p *PostgresProcess) Stop(t testing.TB) { t.Helper(); p.run(t, "stop") }

// Crash stops the server with pg_ctl -m immediate: every process quits at once without a
// checkpoint, as after a power loss of the server alone; the next Start runs crash
// recovery from the WAL.
func (p *PostgresProcess) Crash(t testing.TB) {
	t.Helper()
	p.run(t, "stop", "EVENTSHOP_PG_STOP_MODE=immediate")
}

// Restart stops the server (crash when immediate, else fast), waits down, then starts it
// again on the same data and port.
func (p *PostgresProcess) Restart(t testing.TB, immediate bool, down time.Duration) {
	t.Helper()
	if immediate {
		p.Crash(t)
	} else {
		p.Stop(t)
	}
	time.Sleep(down)
	p.Start(t)
}

func (p *PostgresProcess) run(t testing.TB, verb string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", p.script, verb)
	cmd.Env = append(append([]string(nil), p.env...), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testkit: postgres.sh %s (%s): %v\n%s", verb, p.URL, err, out)
	}
}
