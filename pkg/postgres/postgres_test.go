package postgres_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
)

func table(t *testing.T, db *sqlx.DB) {
	t.Helper()
	if _, err := db.Exec(`CREATE TABLE items (id INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, db *sqlx.DB) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM items`); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInTxCommitsAndRollsBack(t *testing.T) {
	db, _ := testkit.Database(t)
	table(t, db)
	ctx := testkit.Context(t, 10*time.Second)

	if err := postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		_, err := tx.Exec(`INSERT INTO items VALUES (1)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		if _, err := tx.Exec(`INSERT INTO items VALUES (2)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic was swallowed")
			}
		}()
		_ = postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
			_, _ = tx.Exec(`INSERT INTO items VALUES (3)`)
			panic("handler bug")
		})
	}()
	if n := count(t, db); n != 1 {
		t.Fatalf("%d rows, want 1 (error and panic rolled back)", n)
	}
	// The pool is not left with a connection stuck in a transaction.
	if s := db.Stats(); s.InUse != 0 {
		t.Fatalf("%d connections in use after InTx", s.InUse)
	}
}

func TestInTxRetriesSerializationFailures(t *testing.T) {
	db, _ := testkit.Database(t)
	table(t, db)
	ctx := testkit.Context(t, 10*time.Second)
	calls := 0
	err := postgres.InTx(ctx, db, postgres.TxOptions{MaxAttempts: 4}, func(tx *sqlx.Tx) error {
		calls++
		if _, err := tx.Exec(`INSERT INTO items VALUES (1)`); err != nil {
			return err
		}
		if calls < 3 {
			return &pq.Error{Code: "40001", Message: "could not serialize access"}
		}
		return nil
	})
	if err != nil || calls != 3 || count(t, db) != 1 {
		t.Fatalf("InTx = %v after %d calls, %d rows; want nil, 3, 1", err, calls, count(t, db))
	}
	calls = 0
	err = postgres.InTx(ctx, db, postgres.TxOptions{MaxAttempts: 2}, func(tx *sqlx.Tx) error {
		calls++
		return &pq.Error{Code: "40P01", Message: "deadlock detected"}
	})
	if !postgres.IsRetryable(err) || calls != 2 {
		t.Fatalf("InTx = %v after %d calls; want the deadlock after 2", err, calls)
	}
}

func TestInTxRealSerializationConflict(t *testing.T) {
	db, _ := testkit.Database(t)
	ctx := testkit.Context(t, 30*time.Second)
	if _, err := db.Exec(`CREATE TABLE acct (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO acct VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			err := postgres.InTx(ctx, db, postgres.TxOptions{Isolation: postgres.Serializable, MaxAttempts: 50}, func(tx *sqlx.Tx) error {
				var n int
				if err := tx.Get(&n, `SELECT n FROM acct WHERE id = 1`); err != nil {
					return err
				}
				_, err := tx.Exec(`UPDATE acct SET n = $1 WHERE id = 1`, n+1)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var n int
	if err := db.Get(&n, `SELECT n FROM acct WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Fatalf("n = %d after 10 serializable read-modify-writes, want 10 (lost updates)", n)
	}
}

func TestMigrateAppliesOnceEvenConcurrently(t *testing.T) {
	db, _ := testkit.Database(t)
	ctx := testkit.Context(t, 30*time.Second)
	set := postgres.MigrationSet{Name: "demo", FS: fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE a (id INT);\n-- +goose Down\nDROP TABLE a;\n")},
		"00002_b.sql": {Data: []byte("-- +goose Up\nINSERT INTO a VALUES (1);\n-- +goose Down\nDELETE FROM a;\n")},
	}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := postgres.Migrate(ctx, db, set); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := postgres.Migrate(ctx, db, set); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM a`); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("migration 2 ran %d times, want once", n)
	}
}

func TestOpenFailsClearlyWithinPingTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	start := time.Now()
	_, err = postgres.Open(context.Background(), postgres.Config{URL: "postgres://u:secret@" + addr + "/x?sslmode=disable", PingTimeout: time.Second})
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks the password: %v", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %q should name the server", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Open took %s to fail with a 1s ping timeout", time.Since(start))
	}
	if _, err := postgres.Open(context.Background(), postgres.Config{URL: "mysql://x"}); err == nil {
		t.Fatal("Open accepted a non-postgres URL")
	}
}

// TestOpenSetsStatementTimeoutAndApplicationName checks the per-connection limits Open
// promises: the default statement_timeout, a configured one that cancels a statement
// running past it (IsTimeout), one given in the URL winning, and application_name.
func TestOpenSetsStatementTimeoutAndApplicationName(t *testing.T) {
	_, dbURL := testkit.Database(t)
	ctx := testkit.Context(t, 30*time.Second)
	show := func(db *sqlx.DB, setting string) string {
		t.Helper()
		var v string
		if err := db.GetContext(ctx, &v, `SELECT current_setting($1)`, setting); err != nil {
			t.Fatal(err)
		}
		return v
	}

	def, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = def.Close() }()
	if v := show(def, "statement_timeout"); v != "15s" {
		t.Fatalf("default statement_timeout = %q, want 15s", v)
	}

	db, err := postgres.Open(ctx, postgres.Config{URL: dbURL, MaxOpenConns: 1, StatementTimeout: 200 * time.Millisecond, ApplicationName: "limits-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if v := show(db, "application_name"); v != "limits-test" {
		t.Fatalf("application_name = %q, want limits-test", v)
	}
	start := time.Now()
	_, err = db.ExecContext(ctx, `SELECT pg_sleep(5)`)
	if !postgres.IsTimeout(err) {
		t.Fatalf("pg_sleep(5) with a 200ms statement_timeout = %v, want a statement timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the statement was canceled after %s, want about 200ms", d)
	}
	// The connection survives a server-side cancel and goes back to the pool.
	if v := show(db, "statement_timeout"); v != "200ms" {
		t.Fatalf("statement_timeout = %q, want 200ms", v)
	}
	if s := db.Stats(); s.InUse != 0 || s.OpenConnections != 1 {
		t.Fatalf("pool after a timed-out statement: %+v, want the one connection idle", s)
	}

	own, err := postgres.Open(ctx, postgres.Config{URL: dbURL + "&statement_timeout=1500&application_name=mine", MaxOpenConns: 1, ApplicationName: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = own.Close() }()
	if v, a := show(own, "statement_timeout"), show(own, "application_name"); v != "1500ms" || a != "mine" {
		t.Fatalf("URL parameters: statement_timeout %q, application_name %q; want 1500ms, mine", v, a)
	}
}
