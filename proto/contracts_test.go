package proto_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	eventspb "github.com/eventshop/eventshop/proto/eventshop/events/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
	"github.com/eventshop/eventshop/proto/openapi"
)

// envelopes maps every topic envelope to its default topic.
var envelopes = map[protoreflect.FullName]string{
	"eventshop.cart.v1.CartEvent":           "cart.events.v1",
	"eventshop.inventory.v1.InventoryEvent": "inventory.events.v1",
	"eventshop.inventory.v1.ProductEvent":   "inventory.products.v1",
	"eventshop.discount.v1.DiscountEvent":   "discount.events.v1",
	"eventshop.order.v1.OrderEvent":         "order.events.v1",
}

// wantCETypes is the CloudEvents type of every payload. Consumers filter on
// these strings, and buf breaking does not see option values, so a change here
// is a deliberate contract change.
var wantCETypes = map[protoreflect.FullName]string{
	"eventshop.cart.v1.ItemAdded":                "cart.item.added",
	"eventshop.cart.v1.ItemRemoved":              "cart.item.removed",
	"eventshop.cart.v1.ItemQuantityChanged":      "cart.item.quantity_changed",
	"eventshop.cart.v1.CouponApplied":            "cart.coupon.applied",
	"eventshop.cart.v1.CheckedOut":               "cart.checked_out",
	"eventshop.inventory.v1.StockReserved":       "inventory.stock.reserved",
	"eventshop.inventory.v1.ReservationRejected": "inventory.reservation.rejected",
	"eventshop.inventory.v1.StockReleased":       "inventory.stock.released",
	"eventshop.inventory.v1.StockCommitted":      "inventory.stock.committed",
	"eventshop.inventory.v1.ProductSnapshot":     "inventory.product.snapshot",
	"eventshop.discount.v1.DiscountCalculated":   "discount.calculated",
	"eventshop.discount.v1.CouponRedeemed":       "discount.coupon.redeemed",
	"eventshop.discount.v1.CouponRejected":       "discount.coupon.rejected",
	"eventshop.order.v1.OrderPlaced":             "order.placed",
	"eventshop.order.v1.OrderConfirmed":          "order.confirmed",
	"eventshop.order.v1.OrderRejected":           "order.rejected",
}

// eventshopMessages returns every message (nested ones included) of the
// eventshop.* packages linked into this test binary.
func eventshopMessages() []protoreflect.MessageDescriptor {
	var all []protoreflect.MessageDescriptor
	var walk func(protoreflect.MessageDescriptors)
	walk = func(mds protoreflect.MessageDescriptors) {
		for i := range mds.Len() {
			all = append(all, mds.Get(i))
			walk(mds.Get(i).Messages())
		}
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "eventshop.") {
			walk(fd.Messages())
		}
		return true
	})
	return all
}

// envelope is what a generic consumer reads from any envelope (see
// pkg/envelope.Envelope). The assertions also link the generated packages in, so
// the registry walk sees them.
type envelope interface {
	GetEventId() string
	GetOccurredAt() *timestamppb.Timestamp
	GetAggregateId() string
	GetAggregateVersion() int64
}

var (
	_ envelope = (*cartpb.CartEvent)(nil)
	_ envelope = (*inventorypb.InventoryEvent)(nil)
	_ envelope = (*inventorypb.ProductEvent)(nil)
	_ envelope = (*discountpb.DiscountEvent)(nil)
	_ envelope = (*orderpb.OrderEvent)(nil)
)

func TestEnvelopesShareHeaderFields(t *testing.T) {
	header := []struct {
		number  protoreflect.FieldNumber
		name    protoreflect.Name
		kind    protoreflect.Kind
		message protoreflect.FullName
	}{
		{1, "event_id", protoreflect.StringKind, ""},
		{2, "occurred_at", protoreflect.MessageKind, "google.protobuf.Timestamp"},
		{3, "aggregate_id", protoreflect.StringKind, ""},
		{4, "aggregate_version", protoreflect.Int64Kind, ""},
	}
	found := map[protoreflect.FullName]bool{}
	for _, md := range eventshopMessages() {
		if md.Oneofs().ByName(eventspb.PayloadOneof) != nil {
			found[md.FullName()] = true
		}
	}
	for name := range envelopes {
		if !found[name] {
			t.Errorf("envelope %s: not found, or has no %q oneof", name, eventspb.PayloadOneof)
		}
	}
	for name := range found {
		if _, ok := envelopes[name]; !ok {
			t.Errorf("%s has a %q oneof but is not a known envelope; add it to envelopes in this test", name, eventspb.PayloadOneof)
		}
	}

	for name := range envelopes {
		desc, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			continue // reported above
		}
		md := desc.(protoreflect.MessageDescriptor)
		for _, h := range header {
			fd := md.Fields().ByNumber(h.number)
			switch {
			case fd == nil:
				t.Errorf("%s: no field %d (want %s)", name, h.number, h.name)
			case fd.Name() != h.name || fd.Kind() != h.kind || fd.Cardinality() == protoreflect.Repeated ||
				fd.ContainingOneof() != nil || (h.message != "" && fd.Message().FullName() != h.message):
				got := kindName(fd) + " " + string(fd.Name())
				if fd.IsList() {
					got = "repeated " + got
				}
				if od := fd.ContainingOneof(); od != nil {
					got += " in oneof " + string(od.Name())
				}
				t.Errorf("%s: field %d is %s, want %s %s", name, h.number, got, kindOrMessage(h.kind, h.message), h.name)
			}
		}
		payload := md.Oneofs().ByName(eventspb.PayloadOneof)
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Number() <= 4 {
				continue
			}
			if fd.ContainingOneof() != payload {
				t.Errorf("%s: field %s (%d) is outside the payload oneof; envelopes carry only fields 1-4 and a payload", name, fd.Name(), fd.Number())
			} else if fd.Number() < 10 {
				t.Errorf("%s: payload field %s is numbered %d, want >= 10", name, fd.Name(), fd.Number())
			}
		}
	}
}

func kindName(fd protoreflect.FieldDescriptor) string {
	if fd.Message() != nil {
		return string(fd.Message().FullName())
	}
	return fd.Kind().String()
}

func kindOrMessage(k protoreflect.Kind, msg protoreflect.FullName) string {
	if msg != "" {
		return string(msg)
	}
	return k.String()
}

var ceTypePattern = regexp.MustCompile(`^[a-z]+(\.[a-z][a-z_]*)+$`)

func TestPayloadsDeclareUniqueCETypes(t *testing.T) {
	got := map[protoreflect.FullName]string{}
	byType := map[string]protoreflect.FullName{}
	for name := range envelopes {
		desc, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			t.Errorf("envelope %s: %v", name, err)
			continue
		}
		od := desc.(protoreflect.MessageDescriptor).Oneofs().ByName(eventspb.PayloadOneof)
		if od == nil || od.Fields().Len() == 0 {
			t.Errorf("envelope %s: empty or missing %q oneof", name, eventspb.PayloadOneof)
			continue
		}
		for i := range od.Fields().Len() {
			fd := od.Fields().Get(i)
			if fd.Message() == nil {
				t.Errorf("%s.%s: payload is a %s, want a message", name, fd.Name(), fd.Kind())
				continue
			}
			payload := fd.Message().FullName()
			ceType := eventspb.CEType(fd.Message())
			if ceType == "" {
				t.Errorf("%s (payload %s of %s) declares no (eventshop.events.v1.ce_type) option", payload, fd.Name(), name)
				continue
			}
			if !ceTypePattern.MatchString(ceType) {
				t.Errorf("%s: ce_type %q is not dotted lower_snake_case", payload, ceType)
			}
			// eventshop.<domain>.v1.X has types "<domain>.…".
			if domain := strings.Split(string(payload), ".")[1]; !strings.HasPrefix(ceType, domain+".") {
				t.Errorf("%s: ce_type %q does not start with its domain %q", payload, ceType, domain+".")
			}
			if other, dup := byType[ceType]; dup && other != payload {
				t.Errorf("ce_type %q is declared by both %s and %s", ceType, other, payload)
			}
			byType[ceType] = payload
			got[payload] = ceType
		}
	}
	for payload, want := range wantCETypes {
		if got[payload] != want {
			t.Errorf("%s: ce_type %q, want %q", payload, got[payload], want)
		}
	}
	for payload, ceType := range got {
		if _, ok := wantCETypes[payload]; !ok {
			t.Errorf("new payload %s (%q): add it to wantCETypes in this test", payload, ceType)
		}
	}

	// A ce_type on a message no envelope carries would never be published.
	for _, md := range eventshopMessages() {
		if ceType := eventspb.CEType(md); ceType != "" && got[md.FullName()] == "" {
			t.Errorf("%s declares ce_type %q but is not a payload of any envelope", md.FullName(), ceType)
		}
	}
}

func TestCartOpenAPISpecEmbedded(t *testing.T) {
	var doc struct {
		Swagger string                     `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.CartSpec, &doc); err != nil {
		t.Fatalf("CartSpec is not JSON: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q, want 2.0", doc.Swagger)
	}
	for _, p := range []string{"/v1/cart", "/v1/cart/items", "/v1/cart/items/{product_id}", "/v1/cart/coupon", "/v1/cart/checkout"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("CartSpec has no path %s", p)
		}
	}
	// The gateway answers with proto field names (pkg/server: UseProtoNames); so must the document.
	if s := string(openapi.CartSpec); strings.Contains(s, `"cartId"`) || !strings.Contains(s, `"cart_id"`) {
		t.Errorf("CartSpec names fields in lowerCamelCase, the API answers with proto names (cart_id)")
	}
	if b, err := openapi.FS.ReadFile("cart.swagger.json"); err != nil || string(b) != string(openapi.CartSpec) {
		t.Errorf("FS does not hold cart.swagger.json (err %v)", err)
	}
}
