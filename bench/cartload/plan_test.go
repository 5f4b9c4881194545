package cartload_test

import (
	"testing"

	"github.com/eventshop/eventshop/bench/cartload"
)

// TestPlanKeepsLinesBelowTheCartLimit: however many requests a run sends, no user's line
// of one product gets 99 units.
func TestPlanKeepsLinesBelowTheCartLimit(t *testing.T) {
	p := cartload.NewPlan("t", 5)
	lines := map[[2]string]int{}
	users := map[string]bool{}
	for i := range 5 * len(cartload.Products) * 200 {
		u, tok, product, err := p.Request(i)
		if err != nil || tok == "" {
			t.Fatalf("request %d: %q %v", i, tok, err)
		}
		users[u] = true
		lines[[2]string{u, product}]++
		if n := lines[[2]string{u, product}]; n >= 99 {
			t.Fatalf("request %d: %s has %d of %s", i, u, n, product)
		}
	}
	if len(users) <= 5 {
		t.Fatalf("%d users: the plan never moved to fresh users", len(users))
	}
}
