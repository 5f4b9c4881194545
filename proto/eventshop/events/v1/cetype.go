package eventspb

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// PayloadOneof is the name of the oneof that holds the payload in every
// eventshop envelope (CartEvent, InventoryEvent, ProductEvent, DiscountEvent,
// OrderEvent).
const PayloadOneof protoreflect.Name = "payload"

// CEType returns the CloudEvents type declared on md with the ce_type option,
// or "" if md declares none.
func CEType(md protoreflect.MessageDescriptor) string {
	opts := md.Options()
	if opts == nil || !proto.HasExtension(opts, E_CeType) {
		return ""
	}
	return proto.GetExtension(opts, E_CeType).(string)
}

// Payload returns the message set in envelope's payload oneof and its
// CloudEvents type. It returns nil and "" if envelope has no payload oneof or
// none of its fields is set.
func Payload(envelope proto.Message) (payload proto.Message, ceType string) {
	m := envelope.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName(PayloadOneof)
	if od == nil {
		return nil, ""
	}
	fd := m.WhichOneof(od)
	if fd == nil || fd.Message() == nil {
		return nil, ""
	}
	return m.Get(fd).Message().Interface(), CEType(fd.Message())
}
