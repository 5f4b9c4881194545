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
