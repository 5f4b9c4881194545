package chaos

import (
	"testing"
	"time"

	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/testkit"
)

// TestPostgresRestarted restarts the (dedicated) PostgreSQL server that holds all four
// services' databases under load and keeps it down a few seconds. The services are not
// restarted: their pools, outbox relays (LISTEN connections included) and consumers must
// recover on their own. make chaos also crashes it (pg_ctl -m immediate: no checkpoint,
// crash recovery at start).
func TestPostgresRestarted(t *testing.T) {
	modes := []string{"fast"}
	if full() {
		modes = append(modes, "immediate")
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			pg := testkit.OwnPostgres(t)
			scenario(t, stack.Options{PostgresURL: pg.URL}, func(t *testing.T, st *stack.Stack) {
				pg.Restart(t, mode == "immediate", 4*time.Second)
				t.Logf("PostgreSQL restarted (pg_ctl -m %s, down 4s)", mode)
				for _, name := range stack.Names {
					st.Services[name].WaitReady(t, 90*time.Second)
				}
				t.Log("every service ready again without a restart")
				// The relays' LISTEN sessions died with the server: each must be back, or
				// new rows would wait for the polling fallback.
				for _, name := range stack.Names {
					testkit.Eventually(t, 30*time.Second, name+"'s outbox relay listening again", func() bool {
						var n int
						err := st.DBs[name].Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = $1`,
							`LISTEN "`+outbox.NotifyChannel+`"`)
						return err == nil && n > 0
					})
				}
				t.Log("every outbox relay listening again")
			})
		})
	}
}
