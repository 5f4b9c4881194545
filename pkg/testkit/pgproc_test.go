package testkit_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// TestOwnPostgres checks that an owned cluster serves, keeps committed data across a
// fast restart and a crash, and refuses connections while it is down.
func TestOwnPostgres(t *testing.T) {
	pg := testkit.OwnPostgres(t)
	db, url := testkit.DatabaseOn(t, pg.URL)
	if _, err := db.Exec(`CREATE TABLE t (n int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM t`); err != nil {
			t.Fatalf("after restart: %v", err)
		}
		return n
	}

	pg.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if down, err := postgres.Open(ctx, postgres.Config{URL: url, PingTimeout: time.Second}); err == nil {
		_ = down.Close()
		t.Fatal("connected to a stopped cluster")
	}
	pg.Start(t)
	if _, err := db.Exec(`INSERT INTO t VALUES (2)`); err != nil { // the pool's old connections are dead; database/sql retries on a new one
		t.Logf("first statement after restart: %v", err)
	}
	if n := count(); n < 1 {
		t.Fatalf("rows after fast restart = %d", n)
	}
	before := count()
	pg.Restart(t, true, 0)
	if n := count(); n != before {
		t.Fatalf("rows after crash = %d, want %d (committed before the crash)", n, before)
	}
}
