package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eventshop/eventshop/e2e/internal/stack"
	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/server"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
)

// idleTimeout is the HTTP_IDLE_TIMEOUT the services run with here (default 2m).
const idleTimeout = 2 * time.Second

// TestLimits checks, against the four services as real processes, the limits that keep
// a client from holding a connection or a request: slow and idle connections are closed
// (HTTP and gRPC), oversized bodies, headers and messages are refused while the server
// keeps serving, and a gRPC client that pings too often is sent away. Each check fails
// when its limit is removed. The database side (pool exhaustion, statement timeout) is
// TestDatabaseFaultsAreBoundedAndRecover in services/cart/cmd/cart.
func TestLimits(t *testing.T) {
	st := stack.Start(t, stack.Options{Env: []string{"HTTP_IDLE_TIMEOUT=" + idleTimeout.String()}})
	tok, err := auth.Mint(st.Auth, "limits", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cart := st.Services["cart"]

	t.Run("slow clients are disconnected", func(t *testing.T) {
		type closed struct {
			what  string
			after time.Duration
			err   error
		}
		results := make(chan closed, 64)
		var wg sync.WaitGroup
		// HTTP: a request line and part of the headers, then nothing (slowloris).
		// gRPC: a TCP connection that never sends the HTTP/2 preface.
		for _, name := range stack.Names {
			p := st.Services[name]
			for range 5 {
				wg.Go(func() {
					d, err := untilClosed(p.HTTPAddr, "POST /v1/cart/items HTTP/1.1\r\nHost: eventshop\r\nContent-Type: application/json\r\n", 30*time.Second)
					results <- closed{name + " HTTP", d, err}
				})
			}
			for range 2 {
				wg.Go(func() {
					d, err := untilClosed(p.GRPCAddr, "", 30*time.Second)
					results <- closed{name + " gRPC", d, err}
				})
			}
		}
		// Meanwhile every service keeps answering.
		stop := make(chan struct{})
		served := make(chan error, 1)
		go func() {
			defer close(served)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				p := st.Services[stack.Names[n%len(stack.Names)]]
				if code, body := get(t, "http://"+p.HTTPAddr+"/healthz", ""); code != http.StatusOK {
					served <- errors.New(p.Name + " /healthz: " + body)
					return
				}
				if code, body := get(t, "http://"+cart.HTTPAddr+"/v1/cart", tok); code != http.StatusOK {
					served <- errors.New("cart GetCart: " + body)
					return
				}
			}
		}()
		wg.Wait()
		close(stop)
		if err := <-served; err != nil {
			t.Errorf("a normal request failed while slow clients held connections: %v", err)
		}
		close(results)
		for r := range results {
			lo, hi := server.ReadHeaderTimeout-time.Second, server.ReadHeaderTimeout+3*time.Second
			if strings.HasSuffix(r.what, "gRPC") {
				lo, hi = 9*time.Second, 13*time.Second // grpc.ConnectionTimeout(10s) in pkg/server
			}
			if r.err != nil || r.after < lo || r.after > hi {
				t.Errorf("%s: stalled connection closed after %s (%v); want %s..%s", r.what, r.after.Round(time.Millisecond), r.err, lo, hi)
			}
		}
	})

	t.Run("idle keep-alive connections are closed", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, name := range stack.Names {
			p := st.Services[name]
			wg.Go(func() {
				c, err := net.DialTimeout("tcp", p.HTTPAddr, 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: eventshop\r\n\r\n"); err != nil {
					t.Error(err)
					return
				}
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Close {
					t.Errorf("%s /healthz: %s, close %v; want 200 on a kept-alive connection", name, resp.Status, resp.Close)
					return
				}
				start := time.Now()
				_, err = br.ReadByte()
				if d := time.Since(start); !errors.Is(err, io.EOF) || d < idleTimeout/2 || d > idleTimeout+3*time.Second {
					t.Errorf("%s: idle connection ended after %s with %v; want EOF after about %s", name, d.Round(time.Millisecond), err, idleTimeout)
				}
			})
		}
		wg.Wait()
	})

	t.Run("oversized requests are refused", func(t *testing.T) {
		big := strings.Repeat("x", server.MaxBodyBytes+1)
		for _, name := range stack.Names {
			code, body := post(t, "http://"+st.Services[name].HTTPAddr+"/v1/cart/items", tok, strings.NewReader(`{"product_id":"`+big+`"}`), nil)
			checkTooLarge(t, name+" declared body", code, body)
		}
		// Without a declared length the body is cut off while it is read.
		code, body := post(t, "http://"+cart.HTTPAddr+"/v1/cart/items", tok, io.MultiReader(strings.NewReader(`{"product_id":"`+big+`"}`)), nil)
		checkTooLarge(t, "cart chunked body", code, body)

		code, _ = post(t, "http://"+cart.HTTPAddr+"/v1/cart/items", tok, strings.NewReader(`{}`), http.Header{"X-Pad": {strings.Repeat("x", 2*server.MaxHeaderBytes)}})
		if code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("cart with %d bytes of headers: %d, want 431", 2*server.MaxHeaderBytes, code)
		}

		conn, err := grpc.NewClient(cart.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		ctx := metadata.AppendToOutgoingContext(testkit.Context(t, 30*time.Second), "authorization", "Bearer "+tok)
		client := cartpb.NewCartServiceClient(conn)
		// Between the server's 1 MiB and grpc-go's default 4 MiB.
		_, err = client.AddItem(ctx, &cartpb.AddItemRequest{ProductId: strings.Repeat("x", 2*server.MaxMessageBytes), Quantity: 1})
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("gRPC AddItem of %d bytes: %v, want ResourceExhausted", 2*server.MaxMessageBytes, err)
		}
		if _, err := client.GetCart(ctx, &cartpb.GetCartRequest{}); err != nil {
			t.Errorf("gRPC GetCart after the oversized message: %v", err)
		}
		if code, body := get(t, "http://"+cart.HTTPAddr+"/v1/cart", tok); code != http.StatusOK {
			t.Errorf("HTTP GetCart after the oversized requests: %d %s", code, body)
		}
	})

	t.Run("gRPC connection settings and ping flood", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", cart.GRPCAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok {
			t.Fatalf("first frame from the gRPC server: %v, want SETTINGS", f)
		}
		if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != server.MaxStreams {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d (sent: %v), want %d", v, ok, server.MaxStreams)
		}
		if v, ok := sf.Value(http2.SettingMaxHeaderListSize); !ok || v != 2*server.MaxHeaderBytes {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE = %d (sent: %v), want %d", v, ok, 2*server.MaxHeaderBytes)
		}
		// Pings far more often than the enforcement policy's 10s minimum: the server
		// answers a few, then sends GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
		for i := range 10 {
			if err := fr.WritePing(false, [8]byte{byte(i)}); err != nil {
				break // the server may already have closed the connection
			}
		}
		var away *http2.GoAwayFrame
		for away == nil {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("reading until GOAWAY: %v", err)
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				away = g
			}
		}
		if away.ErrCode != http2.ErrCodeEnhanceYourCalm || string(away.DebugData()) != "too_many_pings" {
			t.Errorf("GOAWAY %v %q, want ENHANCE_YOUR_CALM too_many_pings", away.ErrCode, away.DebugData())
		}
		// The server keeps serving everyone else.
		conn, err := grpc.NewClient(cart.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		ctx := metadata.AppendToOutgoingContext(testkit.Context(t, 30*time.Second), "authorization", "Bearer "+tok)
		if _, err := cartpb.NewCartServiceClient(conn).GetCart(ctx, &cartpb.GetCartRequest{}); err != nil {
			t.Errorf("gRPC GetCart after another client was sent away: %v", err)
		}
	})
}

// untilClosed connects to addr, writes prefix and waits for the server to close the
// connection, returning how long that took after the write.
func untilClosed(addr, prefix string, patience time.Duration) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	if _, err := io.WriteString(c, prefix); err != nil {
		return 0, err
	}
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(patience))
	// Whatever the server sends (gRPC: its SETTINGS) is read and dropped until it closes.
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return time.Since(start), errors.New("still open")
	}
	return time.Since(start), nil
}

func get(t *testing.T, url, tok string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return do(t, req)
}

func post(t *testing.T, url, tok string, body io.Reader, h http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, body)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL, err)
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func checkTooLarge(t *testing.T, what string, code int, body string) {
	t.Helper()
	var e server.ErrorBody
	if err := json.NewDecoder(bytes.NewReader([]byte(body))).Decode(&e); code != http.StatusRequestEntityTooLarge || err != nil || e.Field != "body" || e.Status != "INVALID_ARGUMENT" {
		t.Errorf("%s over %d bytes: %d %q, want 413 with a JSON error naming the body", what, server.MaxBodyBytes, code, body)
	}
}
