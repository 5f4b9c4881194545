package app_test

import (
	"strings"
	"testing"
)

// FuzzAddItemHTTP posts arbitrary bodies to AddItem through the real gateway of a running
// cart (real PostgreSQL and Kafka): whatever the body, the answer is never a 5xx, and an
// error body is the documented JSON that names no internals.
func FuzzAddItemHTTP(f *testing.F) {
	for _, s := range []string{
		`{"product_id":"mug","quantity":2}`,
		`{"product_id":"mug","quantity":0}`,
		`{"product_id":"nope","quantity":1}`,
		`{"product_id":"mug","quantity":"2"}`,
		`{"product_id":"mug","quantity":2147483648}`,
		`{"product_id":"` + strings.Repeat("x", 100) + `","quantity":1}`,
		`{"productId":"poster","quantity":99}`,
		`{"product_id":"mug","quantity":1,"extra":true}`,
		`[1,2,3]`, `null`, `{`, ``, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	h := start(f)
	bearer := "Bearer " + token(f, h, "fuzz-user")
	f.Fuzz(func(t *testing.T, body []byte) {
		res := h.do(t, "POST", "/v1/cart/items", bearer, body)
		if res.Status >= 500 {
			t.Fatalf("AddItem with body %q: %d %s", body, res.Status, res.Raw)
		}
		if res.Status >= 400 {
			if res.Body["code"] == nil || res.Body["message"] == nil {
				t.Fatalf("AddItem with body %q: %d with a body that is not the error JSON: %s", body, res.Status, res.Raw)
			}
			for _, leak := range []string{"pq:", "sql", "goroutine", "panic", ".go:"} {
				if strings.Contains(res.Raw, leak) {
					t.Fatalf("AddItem with body %q: error body leaks %q: %s", body, leak, res.Raw)
				}
			}
		}
	})
}
