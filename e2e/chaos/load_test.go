package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/auth"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// scale is how much load one scenario drives.
type scale struct {
	name   string
	users  int           // simulated users, each its own goroutine
	rounds int           // carts each user fills and checks out
	pause  time.Duration // between two commands of one user
	// hold pauses the users while the fault runs (they resume when it returns), so that
	// the rest of the load meets the system as the fault left it.
	hold bool
}

func currentScale() scale {
	if os.Getenv("EVENTSHOP_CHAOS") == "full" {
		return scale{name: "full", users: 40, rounds: 3, pause: 60 * time.Millisecond}
	}
	return scale{name: "small", users: 10, rounds: 1, pause: 100 * time.Millisecond}
}

func full() bool { return currentScale().name == "full" }

// products the simulated users buy; limited-print (5 in stock) and desk-lamp (30) run out.
var products = []string{"mug", "tshirt", "hoodie", "cap", "poster", "limited-print", "desk-lamp", "backpack"}

// coupon has a usage limit of 3 (seeded by the discount service), so some checkouts lose the race.
const coupon = "FIRST3"

// ack is one command the cart acknowledged (2xx): its cart and the version it produced.
type ack struct {
	op         string
	cartID     string
	version    int64
	checkoutID string
}

// load counts what the simulated users sent and what the cart answered.
type load struct {
	sent, acked, rejected, failed atomic.Int64
	holdMu                        sync.Mutex
	resumed                       chan struct{} // non-nil while a fault holds the load; closed to resume

	mu      sync.Mutex
	acks    []ack
	reasons map[string]int // 4xx answers by operation and message
}

// hold makes the users wait before their next command until release is called (once
// or more).
func (l *load) hold() (release func()) {
	ch := make(chan struct{})
	l.holdMu.Lock()
	l.resumed = ch
	l.holdMu.Unlock()
	return sync.OnceFunc(func() {
		l.holdMu.Lock()
		l.resumed = nil
		l.holdMu.Unlock()
		close(ch)
	})
}

func (l *load) waitWhileHeld() {
	l.holdMu.Lock()
	ch := l.resumed
	l.holdMu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (l *load) String() string {
	return fmt.Sprintf("commands sent %d, acknowledged %d, rejected (4xx) %d, unanswered %d",
		l.sent.Load(), l.acked.Load(), l.rejected.Load(), l.failed.Load())
}

// runLoad starts the users and returns at once; wait blocks until every user is done.
func runLoad(ctx context.Context, t *testing.T, st *stack.Stack, sc scale) (l *load, wait func()) {
	t.Helper()
	l = &load{reasons: map[string]int{}}
	run := uuid.NewString()[:8]
	base := st.Endpoints().Cart
	hc := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for i := range sc.users {
		tok, err := auth.Mint(st.Auth, fmt.Sprintf("chaos-%s-%d", run, i), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		u := &user{l: l, hc: hc, base: base, token: tok, rng: rand.New(rand.NewPCG(uint64(i), 7))}
		wg.Go(func() {
			for r := range sc.rounds {
				u.round(ctx, i+r, sc.pause)
			}
		})
	}
	return l, wg.Wait
}

type user struct {
	l     *load
	hc    *http.Client
	base  string
	token string
	rng   *rand.Rand
}

// round fills one cart with a few edits and checks it out.
func (u *user) round(ctx context.Context, i int, pause time.Duration) {
	p1 := products[u.rng.IntN(len(products))]
	p2 := products[(u.rng.IntN(len(products)-1)+1+indexOf(p1))%len(products)]
	q := 1 + u.rng.IntN(3)
	steps := []struct{ op, method, path, body string }{
		{"add", http.MethodPost, "/v1/cart/items", fmt.Sprintf(`{"product_id":%q,"quantity":%d}`, p1, q)},
		{"add", http.MethodPost, "/v1/cart/items", fmt.Sprintf(`{"product_id":%q,"quantity":1}`, p2)},
		{"set", http.MethodPut, "/v1/cart/items/" + p1, fmt.Sprintf(`{"quantity":%d}`, q+1)},
	}
	if i%3 == 0 {
		steps = append(steps, struct{ op, method, path, body string }{"remove", http.MethodDelete, "/v1/cart/items/" + p2, ""})
	}
	if i%4 == 0 {
		steps = append(steps, struct{ op, method, path, body string }{"coupon", http.MethodPost, "/v1/cart/coupon", `{"coupon_code":"` + coupon + `"}`})
	}
	steps = append(steps, struct{ op, method, path, body string }{"checkout", http.MethodPost, "/v1/cart/checkout", `{}`})
	for _, s := range steps {
		if ctx.Err() != nil {
			return
		}
		u.l.waitWhileHeld()
		u.do(ctx, s.op, s.method, s.path, s.body)
		time.Sleep(pause/2 + time.Duration(u.rng.Int64N(int64(pause))))
	}
}

func indexOf(p string) int {
	for i, x := range products {
		if x == p {
			return i
		}
	}
	return 0
}

// do sends one command with an Idempotency-Key and retries it (same key) through
// outages: a 5xx or a broken connection is not an answer. It gives up after 2 minutes.
func (u *user) do(ctx context.Context, op, method, path, body string) {
	u.l.sent.Add(1)
	key := uuid.NewString()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		status, raw, err := u.send(ctx, key, method, path, body)
		switch {
		case err == nil && status < 300:
			var res cartpb.CheckoutResponse // every command answers {"cart": ...}; a checkout adds its id
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &res); err != nil || res.GetCart().GetCartId() == "" {
				u.l.failed.Add(1)
				return
			}
			u.l.acked.Add(1)
			u.l.mu.Lock()
			u.l.acks = append(u.l.acks, ack{op: op, cartID: res.GetCart().GetCartId(), version: res.GetCart().GetVersion(), checkoutID: res.GetCheckoutId()})
			u.l.mu.Unlock()
			return
		case err == nil && status < 500:
			u.l.rejected.Add(1)
			var body struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal(raw, &body)
			u.l.mu.Lock()
			u.l.reasons[fmt.Sprintf("%s %d %s", op, status, body.Message)]++
			u.l.mu.Unlock()
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			u.l.failed.Add(1)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (u *user) send(ctx context.Context, key, method, path, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+u.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := u.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}
