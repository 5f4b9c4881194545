package stock_test

import (
	"testing"

	"github.com/eventshop/eventshop/services/inventory/internal/stock"
)

// BenchmarkRetarget is the decision taken for every ItemAdded / quantity change.
func BenchmarkRetarget(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		held, target := int32(i%50), int32((i+7)%50)
		mv := stock.Retarget(held, target)
		if mv.Reserve < 0 || mv.Release < 0 {
			b.Fatalf("move %+v", mv)
		}
	}
}

// BenchmarkSettle plans a checkout of a five-line cart that holds part of its lines.
func BenchmarkSettle(b *testing.B) {
	lines := []stock.Line{{ProductID: "mug", Quantity: 2}, {ProductID: "tshirt", Quantity: 1}, {ProductID: "poster", Quantity: 3},
		{ProductID: "pen", Quantity: 10}, {ProductID: "notebook", Quantity: 1}}
	held := map[string]int32{"mug": 2, "tshirt": 1, "poster": 1, "cap": 1}
	available := map[string]int32{"mug": 200, "tshirt": 150, "poster": 300, "pen": 1000, "notebook": 250, "cap": 120}
	for b.Loop() {
		if s := stock.Settle(lines, held, available); !s.OK() {
			b.Fatalf("settlement rejected: %+v", s.Rejected)
		}
	}
}

// BenchmarkValidateLines is the check of a checkout snapshot before any SQL.
func BenchmarkValidateLines(b *testing.B) {
	lines := []stock.Line{{ProductID: "mug", Quantity: 2}, {ProductID: "tshirt", Quantity: 1}, {ProductID: "poster", Quantity: 3}}
	for b.Loop() {
		if err := stock.ValidateLines(lines); err != nil {
			b.Fatal(err)
		}
	}
}
