package eventspb_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	eventspb "github.com/eventshop/eventshop/proto/eventshop/events/v1"
)

func TestCEType(t *testing.T) {
	tests := []struct {
		name string
		msg  proto.Message
		want string
	}{
		{"payload", &cartpb.ItemAdded{}, "cart.item.added"},
		{"envelope has none", &cartpb.CartEvent{}, ""},
		{"plain message has none", &cartpb.CartLine{}, ""},
		{"foreign message has none", &timestamppb.Timestamp{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := eventspb.CEType(tt.msg.ProtoReflect().Descriptor()); got != tt.want {
				t.Errorf("CEType = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPayload(t *testing.T) {
	added := &cartpb.ItemAdded{ProductId: "p1", Quantity: 2}
	tests := []struct {
		name     string
		envelope proto.Message
		want     proto.Message
		wantType string
	}{
		{"set", &cartpb.CartEvent{Payload: &cartpb.CartEvent_ItemAdded{ItemAdded: added}}, added, "cart.item.added"},
		{"checked out", &cartpb.CartEvent{Payload: &cartpb.CartEvent_CheckedOut{CheckedOut: &cartpb.CheckedOut{}}}, &cartpb.CheckedOut{}, "cart.checked_out"},
		{"unset", &cartpb.CartEvent{EventId: "e1"}, nil, ""},
		{"not an envelope", &cartpb.ItemAdded{}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotType := eventspb.Payload(tt.envelope)
			if gotType != tt.wantType {
				t.Errorf("ce type = %q, want %q", gotType, tt.wantType)
			}
			if (got == nil) != (tt.want == nil) || (got != nil && !proto.Equal(got, tt.want)) {
				t.Errorf("payload = %v, want %v", got, tt.want)
			}
		})
	}
}
