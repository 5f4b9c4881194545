// Package cartload sends AddItem requests to the cart API over HTTP or gRPC as many
// simulated users, and remembers what each accepted request answered so that the
// inventory's reaction can be matched to it.
package cartload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/eventshop/eventshop/bench/load"
	"github.com/eventshop/eventshop/pkg/auth"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// Products are ids from the inventory's seed catalog.
var Products = []string{"mug", "tshirt", "poster", "pen"}

// maxLine keeps every cart line below the cart's 99-unit limit: after this many adds of
// one product the plan moves to a fresh generation of users.
const maxLine = 90

// Accepted is what the API answered to one accepted AddItem.
type Accepted struct {
	CartID    string
	Version   int64
	ProductID string
	Responded time.Time
}

// Plan spreads request numbers over Users simulated users and Products, so that no line
// reaches maxLine: request i goes to user i%Users and product (i/Users)%len(Products),
// and every Users*len(Products)*maxLine requests a new set of users takes over.
type Plan struct {
	Prefix string // user id prefix, unique per run (fresh carts)
	Users  int
	Auth   auth.Config

	mu     sync.Mutex
	tokens map[string]string
	seen   map[[2]string]bool // (user, product) pairs touched, for Cleanup
}

// NewPlan returns a plan for users users named prefix-<generation>-<n>, with tokens
// minted with the development key.
func NewPlan(prefix string, users int) *Plan {
	return &Plan{Prefix: prefix, Users: users, Auth: auth.Config{Secret: auth.DevSigningKey, DevMode: true},
		tokens: map[string]string{}, seen: map[[2]string]bool{}}
}

// Request returns the user, its bearer token and the product of request i.
func (p *Plan) Request(i int) (user, token, product string, err error) {
	perGen := p.Users * len(Products) * maxLine
	user = fmt.Sprintf("%s-%d-%d", p.Prefix, i/perGen, i%p.Users)
	product = Products[(i/p.Users)%len(Products)]
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[[2]string{user, product}] = true
	if tok, ok := p.tokens[user]; ok {
		return user, tok, product, nil
	}
	tok, err := auth.Mint(p.Auth, user, time.Hour)
	if err != nil {
		return "", "", "", err
	}
	p.tokens[user] = tok
	return user, tok, product, nil
}

// Client is one transport of the cart API.
type Client interface {
	AddItem(ctx context.Context, token, product string) (cartID string, version int64, err error)
	RemoveItem(ctx context.Context, token, product string) error
	Close() error
}

// Op returns a load.Op that sends request i of plan through c; when rec is not nil,
// every accepted request is appended to it.
func Op(c Client, plan *Plan, rec *Recorder) load.Op {
	return func(ctx context.Context, i int) error {
		_, tok, product, err := plan.Request(i)
		if err != nil {
			return err
		}
		cartID, v, err := c.AddItem(ctx, tok, product)
		if err != nil {
			return err
		}
		if rec != nil {
			rec.add(Accepted{CartID: cartID, Version: v, ProductID: product, Responded: time.Now()})
		}
		return nil
	}
}

// Cleanup removes every line the plan touched, which releases the stock the run
// reserved in the inventory. It returns the number of failed removals.
func (p *Plan) Cleanup(ctx context.Context, c Client, workers int) int {
	p.mu.Lock()
	type job struct{ token, product string }
	jobs := make(chan job, len(p.seen))
	for k := range p.seen {
		jobs <- job{p.tokens[k[0]], k[1]}
	}
	p.mu.Unlock()
	close(jobs)
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if err := c.RemoveItem(ctx, j.token, j.product); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return failed
}

// Recorder collects accepted requests from concurrent goroutines.
type Recorder struct {
	mu  sync.Mutex
	all []Accepted
}

func (r *Recorder) add(a Accepted) {
	r.mu.Lock()
	r.all = append(r.all, a)
	r.mu.Unlock()
}

// All returns what was recorded.
func (r *Recorder) All() []Accepted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Accepted(nil), r.all...)
}

// HTTP is the cart's HTTP/JSON API (grpc-gateway).
type HTTP struct {
	base string
	hc   *http.Client
}

// NewHTTP returns a client for base (e.g. http://127.0.0.1:8081) keeping up to conns
// idle keep-alive connections.
func NewHTTP(base string, conns int) *HTTP {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
	}
	return &HTTP{base: base, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

type cartJSON struct {
	Cart struct {
		CartID  string `json:"cart_id"`
		Version string `json:"version"` // int64 is a string in protojson
	} `json:"cart"`
}

func (h *HTTP) do(ctx context.Context, method, path, token string, body []byte) (cartJSON, error) {
	var out cartJSON
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.hc.Do(req)
	if err != nil {
		return out, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("%s %s: %s: %.200s", method, path, resp.Status, b)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return out, nil
}

// AddItem adds one unit of product to the token's cart.
func (h *HTTP) AddItem(ctx context.Context, token, product string) (string, int64, error) {
	body, err := json.Marshal(map[string]any{"product_id": product, "quantity": 1})
	if err != nil {
		return "", 0, err
	}
	out, err := h.do(ctx, http.MethodPost, "/v1/cart/items", token, body)
	if err != nil {
		return "", 0, err
	}
	v, err := strconv.ParseInt(out.Cart.Version, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("add item: version %q: %w", out.Cart.Version, err)
	}
	return out.Cart.CartID, v, nil
}

// RemoveItem removes product's line from the token's cart.
func (h *HTTP) RemoveItem(ctx context.Context, token, product string) error {
	_, err := h.do(ctx, http.MethodDelete, "/v1/cart/items/"+product, token, nil)
	return err
}

// Close releases idle connections.
func (h *HTTP) Close() error {
	h.hc.CloseIdleConnections()
	return nil
}

// GRPC is the cart's gRPC API.
type GRPC struct {
	conn *grpc.ClientConn
	c    cartpb.CartServiceClient
}

// NewGRPC connects to addr (host:port) over one HTTP/2 connection.
func NewGRPC(addr string) (*GRPC, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("grpc client %s: %w", addr, err)
	}
	return &GRPC{conn: conn, c: cartpb.NewCartServiceClient(conn)}, nil
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// AddItem adds one unit of product to the token's cart.
func (g *GRPC) AddItem(ctx context.Context, token, product string) (string, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := g.c.AddItem(withToken(ctx, token), &cartpb.AddItemRequest{ProductId: product, Quantity: 1})
	if err != nil {
		return "", 0, fmt.Errorf("AddItem: %w", err)
	}
	return resp.GetCart().GetCartId(), resp.GetCart().GetVersion(), nil
}

// RemoveItem removes product's line from the token's cart.
func (g *GRPC) RemoveItem(ctx context.Context, token, product string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := g.c.RemoveItem(withToken(ctx, token), &cartpb.RemoveItemRequest{ProductId: product}); err != nil {
		return fmt.Errorf("RemoveItem: %w", err)
	}
	return nil
}

// Close closes the connection.
func (g *GRPC) Close() error { return g.conn.Close() }
