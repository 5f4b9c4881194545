package stock_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/services/inventory/internal/stock"
)

func TestRetarget(t *testing.T) {
	tests := []struct {
		name         string
		held, target int32
		want         stock.Move
	}{
		{"first add reserves the line", 0, 3, stock.Move{Reserve: 3}},
		{"increase reserves the difference", 2, 5, stock.Move{Reserve: 3}},
		{"decrease releases the difference", 5, 2, stock.Move{Release: 3, Reason: stock.ReasonQuantityDecreased}},
		{"removal releases everything", 4, 0, stock.Move{Release: 4, Reason: stock.ReasonItemRemoved}},
		{"same quantity moves nothing", 3, 3, stock.Move{}},
		{"removing nothing held moves nothing", 0, 0, stock.Move{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, stock.Retarget(tt.held, tt.target)); diff != "" {
				t.Fatalf("Retarget(%d, %d) (-want +got):\n%s", tt.held, tt.target, diff)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	tests := []struct {
		name      string
		lines     []stock.Line
		held      map[string]int32
		available map[string]int32
		want      stock.Settlement
	}{
		{
			name:      "exact holds are sold",
			lines:     []stock.Line{{"mug", 2}, {"cap", 1}},
			held:      map[string]int32{"mug": 2, "cap": 1},
			available: map[string]int32{"mug": 10, "cap": 0},
			want: stock.Settlement{
				Deltas:    []stock.Delta{{ProductID: "cap", Reserved: -1, Sold: 1}, {ProductID: "mug", Reserved: -2, Sold: 2}},
				Committed: []stock.Line{{"mug", 2}, {"cap", 1}},
			},
		},
		{
			name:      "shortfall reserved, excess and dropped lines released",
			lines:     []stock.Line{{"mug", 3}, {"cap", 1}},
			held:      map[string]int32{"mug": 1, "cap": 2, "pen": 4},
			available: map[string]int32{"mug": 2, "cap": 0, "pen": 0},
			want: stock.Settlement{
				Deltas: []stock.Delta{
					{ProductID: "cap", Available: 1, Reserved: -2, Sold: 1},
					{ProductID: "mug", Available: -2, Reserved: -1, Sold: 3},
					{ProductID: "pen", Available: 4, Reserved: -4},
				},
				Committed: []stock.Line{{"mug", 3}, {"cap", 1}},
			},
		},
		{
			name:      "a line that cannot be met releases everything held",
			lines:     []stock.Line{{"mug", 5}, {"cap", 1}},
			held:      map[string]int32{"mug": 1, "cap": 1},
			available: map[string]int32{"mug": 3, "cap": 7},
			want: stock.Settlement{
				Deltas:   []stock.Delta{{ProductID: "cap", Available: 1, Reserved: -1}, {ProductID: "mug", Available: 1, Reserved: -1}},
				Rejected: []stock.Shortfall{{ProductID: "mug", Requested: 4, Available: 3}},
			},
		},
		{
			name:      "unknown product is rejected with nothing available",
			lines:     []stock.Line{{"ghost", 1}},
			held:      map[string]int32{},
			available: map[string]int32{},
			want:      stock.Settlement{Rejected: []stock.Shortfall{{ProductID: "ghost", Requested: 1, Available: 0}}},
		},
		{
			name:      "every short line is reported",
			lines:     []stock.Line{{"a", 2}, {"b", 2}, {"c", 1}},
			held:      map[string]int32{},
			available: map[string]int32{"a": 1, "b": 0, "c": 1},
			want: stock.Settlement{Rejected: []stock.Shortfall{
				{ProductID: "a", Requested: 2, Available: 1}, {ProductID: "b", Requested: 2, Available: 0},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stock.Settle(tt.lines, tt.held, tt.available)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Settle (-want +got):\n%s", diff)
			}
			if got.OK() != (len(tt.want.Rejected) == 0) {
				t.Fatalf("OK() = %v", got.OK())
			}
			// Conservation: no delta changes a product's total, and after the deltas the
			// cart holds nothing.
			var reserved int32
			for _, d := range got.Deltas {
				if d.Available+d.Reserved+d.Sold != 0 {
					t.Fatalf("delta %+v changes the product's total", d)
				}
				reserved += d.Reserved
			}
			var held int32
			for _, h := range tt.held {
				held += h
			}
			if reserved != -held {
				t.Fatalf("deltas release %d reserved units, the cart held %d", -reserved, held)
			}
		})
	}
}

func TestValidateLines(t *testing.T) {
	long := strings.Repeat("x", stock.MaxIDLength+1)
	tests := []struct {
		name      string
		lines     []stock.Line
		wantField string
	}{
		{"valid", []stock.Line{{"mug", 1}, {"cap", stock.MaxQuantity}}, ""},
		{"empty", nil, "lines"},
		{"missing product id", []stock.Line{{"", 1}}, "lines[0].product_id"},
		{"long product id", []stock.Line{{long, 1}}, "lines[0].product_id"},
		{"bad characters", []stock.Line{{"mug", 1}, {"a b", 1}}, "lines[1].product_id"},
		{"zero quantity", []stock.Line{{"mug", 0}}, "lines[0].quantity"},
		{"negative quantity", []stock.Line{{"mug", -2}}, "lines[0].quantity"},
		{"too many units", []stock.Line{{"mug", stock.MaxQuantity + 1}}, "lines[0].quantity"},
		{"duplicate product", []stock.Line{{"mug", 1}, {"mug", 2}}, "lines[1].product_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := stock.ValidateLines(tt.lines)
			var fe *stock.FieldError
			switch {
			case tt.wantField == "" && err != nil:
				t.Fatalf("ValidateLines: %v, want nil", err)
			case tt.wantField != "" && (!errors.As(err, &fe) || fe.Field != tt.wantField):
				t.Fatalf("ValidateLines: %v, want a field error on %s", err, tt.wantField)
			}
		})
	}
}

func TestRestockAndSetPrice(t *testing.T) {
	p := stock.Product{ID: "mug", Name: "Mug", PriceCents: 1250, Available: 3, Reserved: 2, Sold: 5}

	got, err := stock.Restock(p, 10)
	if err != nil || got.Available != 13 || got.Reserved != 2 || got.Sold != 5 {
		t.Fatalf("Restock(10) = %+v, %v; want 13 available", got, err)
	}
	for _, q := range []int32{0, -1, stock.MaxRestock + 1} {
		var fe *stock.FieldError
		if _, err := stock.Restock(p, q); !errors.As(err, &fe) || fe.Field != "quantity" {
			t.Fatalf("Restock(%d): %v, want a field error on quantity", q, err)
		}
	}
	full := stock.Product{ID: "x", Available: stock.MaxStock - 10}
	if _, err := stock.Restock(full, 11); !errors.Is(err, stock.ErrStockLimit) {
		t.Fatalf("Restock past MaxStock: %v, want ErrStockLimit", err)
	}

	got, changed, err := stock.SetPrice(p, 999)
	if err != nil || !changed || got.PriceCents != 999 {
		t.Fatalf("SetPrice(999) = %+v, %v, %v", got, changed, err)
	}
	if _, changed, err := stock.SetPrice(p, 1250); err != nil || changed {
		t.Fatalf("SetPrice(same) changed=%v err=%v; want unchanged", changed, err)
	}
	for _, c := range []int64{-1, stock.MaxPriceCents + 1} {
		var fe *stock.FieldError
		if _, _, err := stock.SetPrice(p, c); !errors.As(err, &fe) || fe.Field != "price_cents" {
			t.Fatalf("SetPrice(%d): %v, want a field error on price_cents", c, err)
		}
	}
}

func TestValidateIDAndQuantity(t *testing.T) {
	for _, id := range []string{"mug", "sku-1.2_3:x"} {
		if err := stock.ValidateID("product_id", id); err != nil {
			t.Fatalf("ValidateID(%q): %v", id, err)
		}
	}
	for _, id := range []string{"", "a/b", "\xff", strings.Repeat("a", 65)} {
		if err := stock.ValidateID("product_id", id); err == nil {
			t.Fatalf("ValidateID(%q) accepted", id)
		}
	}
	if err := stock.ValidateQuantity("line_quantity", -1); err == nil || !strings.HasPrefix(err.Error(), "line_quantity:") {
		t.Fatalf("ValidateQuantity(-1) = %v, want an error naming line_quantity", err)
	}
}

func TestSortedHolds(t *testing.T) {
	got := stock.SortedHolds(map[string]int32{"pen": 1, "cap": 2, "mug": 3})
	want := []stock.Line{{"cap", 2}, {"mug", 3}, {"pen", 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("SortedHolds (-want +got):\n%s", diff)
	}
}
