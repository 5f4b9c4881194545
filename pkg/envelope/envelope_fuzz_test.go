package envelope_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
)

// FuzzDecode feeds arbitrary bytes to Decode for every envelope type: it never panics,
// classifies every failure (unknown payload kind, or permanent so the runner dead-letters
// it), and whatever it accepts survives Encode and Decode unchanged.
func FuzzDecode(f *testing.F) {
	valid, err := proto.Marshal(itemAdded())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, value []byte) {
		for _, newEnv := range []func() envelope.Envelope{
			func() envelope.Envelope { return &cartpb.CartEvent{} },
			func() envelope.Envelope { return &inventorypb.InventoryEvent{} },
			func() envelope.Envelope { return &inventorypb.ProductEvent{} },
			func() envelope.Envelope { return &discountpb.DiscountEvent{} },
			func() envelope.Envelope { return &orderpb.OrderEvent{} },
		} {
			env := newEnv()
			err := envelope.Decode(kafka.Message{Topic: "t", Value: value}, env)
			if err != nil {
				if !errors.Is(err, envelope.ErrUnknownPayload) && !kafka.IsPermanent(err) {
					t.Fatalf("%T: error neither unknown-payload nor permanent: %v", env, err)
				}
				continue
			}
			m, err := envelope.Encode(context.Background(), "t", "fuzz", env)
			if err != nil {
				t.Fatalf("%T: Decode accepted what Encode rejects: %v (%v)", env, err, env)
			}
			again := newEnv()
			if err := envelope.Decode(m, again); err != nil {
				t.Fatalf("%T: re-decode: %v", env, err)
			}
			if !proto.Equal(env, again) {
				t.Fatalf("%T: round trip changed the envelope:\n got %v\nwant %v", env, again, env)
			}
		}
	})
}
