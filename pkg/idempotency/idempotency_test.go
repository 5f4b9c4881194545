package idempotency_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/testkit"
)

func setup(t testing.TB) *sqlx.DB {
	t.Helper()
	db, _ := testkit.Database(t)
	ctx := testkit.Context(t, time.Minute)
	if err := postgres.Migrate(ctx, db, idempotency.Migrations); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE counter (n INT NOT NULL); INSERT INTO counter VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	return db
}

func increment(ctx context.Context) func(tx *sqlx.Tx) error {
	return func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE counter SET n = n + 1`)
		return err
	}
}

func counter(t testing.TB, db *sqlx.DB) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT n FROM counter`); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSameEventTwiceChangesOnce(t *testing.T) {
	db := setup(t)
	ctx := testkit.Context(t, 10*time.Second)
	first, err := idempotency.Apply(ctx, db, "inventory", "evt-1", increment(ctx))
	if err != nil || !first {
		t.Fatalf("first Apply = %v, %v; want true, nil", first, err)
	}
	again, err := idempotency.Apply(ctx, db, "inventory", "evt-1", increment(ctx))
	if err != nil || again {
		t.Fatalf("second Apply = %v, %v; want false, nil", again, err)
	}
	if n := counter(t, db); n != 1 {
		t.Fatalf("counter = %d, want 1", n)
	}
	// Another consumer applies the same event independently.
	if other, err := idempotency.Apply(ctx, db, "discount", "evt-1", increment(ctx)); err != nil || !other {
		t.Fatalf("other consumer Apply = %v, %v; want true, nil", other, err)
	}
	if n := counter(t, db); n != 2 {
		t.Fatalf("counter = %d, want 2", n)
	}
}

func TestConcurrentDuplicatesApplyOnce(t *testing.T) {
	db := setup(t)
	ctx := testkit.Context(t, 30*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	for range 20 {
		wg.Go(func() {
			ok, err := idempotency.Apply(ctx, db, "order", "evt-dup", increment(ctx))
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				applied++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if applied != 1 || counter(t, db) != 1 {
		t.Fatalf("applied %d times, counter %d; want 1 and 1", applied, counter(t, db))
	}
}

func TestFailedEffectIsNotRecorded(t *testing.T) {
	db := setup(t)
	ctx := testkit.Context(t, 10*time.Second)
	_, err := idempotency.Apply(ctx, db, "inventory", "evt-2", func(tx *sqlx.Tx) error {
		if err := increment(ctx)(tx); err != nil {
			return err
		}
		return context.DeadlineExceeded // the effect fails after a partial write
	})
	if err == nil {
		t.Fatal("Apply hid the effect's error")
	}
	if n := counter(t, db); n != 0 {
		t.Fatalf("counter = %d after a failed effect, want 0 (rolled back)", n)
	}
	if ok, err := idempotency.Apply(ctx, db, "inventory", "evt-2", increment(ctx)); err != nil || !ok {
		t.Fatalf("retry after failure = %v, %v; want applied", ok, err)
	}
}
