// Command dlq inspects a dead-letter topic (<topic>.dlq.<group>) and replays chosen
// messages to their original topic once the cause is fixed.
//
//	go run ./cmd/dlq list   -brokers 127.0.0.1:19092 -topic cart.events.v1.dlq.inventory
//	go run ./cmd/dlq replay -brokers 127.0.0.1:19092 -topic cart.events.v1.dlq.inventory -offsets 3,7
//
// list prints one JSON object per message: its offset, the error and origin the consumer
// runner recorded in the dlq_* headers, the CloudEvents headers and, when the value
// decodes, the envelope as protojson. replay publishes the chosen offsets back to their
// dlq_origin_topic with their original key and headers (ce_id included, so consumers
// deduplicate an event that was applied after all) minus the dlq_* headers. The replayed
// messages reach every consumer group of the original topic; groups that already applied
// them skip them by event id.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "dlq:", err)
		}
		os.Exit(2)
	}
}

const usage = "usage: dlq list|replay -brokers HOST:PORT -topic DLQ_TOPIC [-offsets N,M,...] [-timeout 30s]"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		_, _ = fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	verb := args[0]
	fs := flag.NewFlagSet("dlq "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", envOr("KAFKA_BROKERS", "127.0.0.1:19092"), "bootstrap servers (default $KAFKA_BROKERS)")
	topic := fs.String("topic", "", "dead-letter topic, e.g. cart.events.v1.dlq.inventory (required)")
	offsets := fs.String("offsets", "", "replay: comma-separated offsets to replay (required)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound for reading the topic and for publishing")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *topic == "" {
		return errors.New("-topic is required")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	msgs, err := readAll(ctx, *brokers, *topic)
	if err != nil {
		return err
	}
	if verb == "list" {
		enc := json.NewEncoder(stdout)
		for _, m := range msgs {
			if err := enc.Encode(inspect(m)); err != nil {
				return err
			}
		}
		return nil
	}
	want, err := parseOffsets(*offsets)
	if err != nil {
		return err
	}
	p, err := kafka.NewProducer(ctx, kafka.ProducerConfig{Brokers: *brokers, ClientID: "eventshop-dlq"}, nil)
	if err != nil {
		return err
	}
	defer func() { _, _ = p.Close(context.WithoutCancel(ctx)) }()
	return replay(ctx, p, msgs, want, stdout)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func parseOffsets(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("-offsets is required for replay (see dlq list)")
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-offsets: %q is not an offset", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Entry is what list prints for one dead-lettered message.
type Entry struct {
	Partition       int32             `json:"partition"`
	Offset          int64             `json:"offset"`
	Key             string            `json:"key"`
	Error           string            `json:"error"`
	OriginTopic     string            `json:"origin_topic"`
	OriginPartition string            `json:"origin_partition"`
	OriginOffset    string            `json:"origin_offset"`
	Group           string            `json:"group"`
	FailedAt        string            `json:"failed_at"`
	Headers         map[string]string `json:"headers"`
	Envelope        json.RawMessage   `json:"envelope,omitempty"`
	DecodeError     string            `json:"decode_error,omitempty"`
}

func inspect(m kafka.Message) Entry {
	e := Entry{
		Partition: m.Partition, Offset: m.Offset, Key: string(m.Key),
		Error:           m.Header(kafka.HeaderDLQError),
		OriginTopic:     m.Header(kafka.HeaderDLQTopic),
		OriginPartition: m.Header(kafka.HeaderDLQPartition),
		OriginOffset:    m.Header(kafka.HeaderDLQOffset),
		Group:           m.Header(kafka.HeaderDLQGroup),
		FailedAt:        m.Header(kafka.HeaderDLQTime),
		Headers:         map[string]string{},
	}
	for _, h := range m.Headers {
		if !isDLQHeader(h.Key) {
			e.Headers[h.Key] = string(h.Value)
		}
	}
	env := envelopeFor(m.Header(envelope.HeaderType))
	if env == nil {
		e.DecodeError = "unknown ce_type " + strconv.Quote(m.Header(envelope.HeaderType))
		return e
	}
	if err := envelope.Decode(m, env); err != nil && !errors.Is(err, envelope.ErrUnknownPayload) {
		e.DecodeError = err.Error()
		return e
	}
	b, err := protojson.Marshal(env)
	if err != nil {
		e.DecodeError = err.Error()
		return e
	}
	e.Envelope = b
	return e
}

// envelopeFor returns an empty envelope for a ce_type, chosen by its producer prefix.
func envelopeFor(ceType string) envelope.Envelope {
	switch {
	case strings.HasPrefix(ceType, "cart."):
		return &cartpb.CartEvent{}
	case strings.HasPrefix(ceType, "inventory.product."):
		return &inventorypb.ProductEvent{}
	case strings.HasPrefix(ceType, "inventory."):
		return &inventorypb.InventoryEvent{}
	case strings.HasPrefix(ceType, "discount."):
		return &discountpb.DiscountEvent{}
	case strings.HasPrefix(ceType, "order."):
		return &orderpb.OrderEvent{}
	}
	return nil
}

func isDLQHeader(key string) bool { return strings.HasPrefix(key, "dlq_") }

// replayMessage is m as it was on its original topic: dlq_* headers removed.
func replayMessage(m kafka.Message) (kafka.Message, error) {
	origin := m.Header(kafka.HeaderDLQTopic)
	if origin == "" {
		return kafka.Message{}, fmt.Errorf("offset %d has no %s header: not a dead letter", m.Offset, kafka.HeaderDLQTopic)
	}
	out := kafka.Message{Topic: origin, Key: m.Key, Value: m.Value}
	for _, h := range m.Headers {
		if !isDLQHeader(h.Key) {
			out.Headers = append(out.Headers, h)
		}
	}
	return out, nil
}

// replay publishes the messages at offsets (all partitions) back to their origin topics.
func replay(ctx context.Context, p *kafka.Producer, msgs []kafka.Message, offsets []int64, stdout io.Writer) error {
	for _, off := range offsets {
		i := slices.IndexFunc(msgs, func(m kafka.Message) bool { return m.Offset == off })
		if i < 0 {
			return fmt.Errorf("no message at offset %d", off)
		}
		rm, err := replayMessage(msgs[i])
		if err != nil {
			return err
		}
		if err := p.Publish(ctx, rm); err != nil {
			return fmt.Errorf("replay offset %d to %s: %w", off, rm.Topic, err)
		}
		_, _ = fmt.Fprintf(stdout, "replayed offset %d (ce_id %s) to %s\n", off, rm.Header(envelope.HeaderID), rm.Topic)
	}
	return nil
}

// readAll reads every message of topic up to the high watermarks seen at the start,
// without joining a consumer group or committing anything.
func readAll(ctx context.Context, brokers, topic string) ([]kafka.Message, error) {
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{
		"bootstrap.servers":      brokers,
		"group.id":               "eventshop-dlq-reader", // required by librdkafka; never used: no subscribe, no commit
		"enable.auto.commit":     false,
		"enable.partition.eof":   false,
		"go.logs.channel.enable": false,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer func() { _ = c.Close() }()
	ms := timeoutMs(ctx)
	md, err := c.GetMetadata(&topic, false, ms)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	tm, ok := md.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("topic %s: not in the metadata", topic)
	}
	if tm.Error.Code() != ckafka.ErrNoError {
		return nil, fmt.Errorf("topic %s: %w", topic, tm.Error)
	}
	var assign []ckafka.TopicPartition
	remaining := map[int32]int64{} // partition -> high watermark
	for _, pm := range tm.Partitions {
		low, high, err := c.QueryWatermarkOffsets(topic, pm.ID, timeoutMs(ctx))
		if err != nil {
			return nil, fmt.Errorf("watermarks of %s/%d: %w", topic, pm.ID, err)
		}
		if high > low {
			remaining[pm.ID] = high
			assign = append(assign, ckafka.TopicPartition{Topic: &topic, Partition: pm.ID, Offset: ckafka.Offset(low)})
		}
	}
	if len(assign) == 0 {
		return nil, nil
	}
	if err := c.Assign(assign); err != nil {
		return nil, fmt.Errorf("assign %s: %w", topic, err)
	}
	var out []kafka.Message
	for len(remaining) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", topic, err)
		}
		ev := c.Poll(100)
		km, ok := ev.(*ckafka.Message)
		if !ok {
			if e, isErr := ev.(ckafka.Error); isErr && e.IsFatal() {
				return nil, fmt.Errorf("reading %s: %w", topic, e)
			}
			continue
		}
		if km.TopicPartition.Error != nil {
			return nil, fmt.Errorf("reading %s: %w", topic, km.TopicPartition.Error)
		}
		out = append(out, fromCkafka(km))
		p := km.TopicPartition.Partition
		if int64(km.TopicPartition.Offset)+1 >= remaining[p] {
			delete(remaining, p)
		}
	}
	return out, nil
}

func timeoutMs(ctx context.Context) int {
	if dl, ok := ctx.Deadline(); ok {
		return max(int(time.Until(dl).Milliseconds()), 1)
	}
	return 10000
}

func fromCkafka(km *ckafka.Message) kafka.Message {
	m := kafka.Message{Partition: km.TopicPartition.Partition, Offset: int64(km.TopicPartition.Offset), Key: km.Key, Value: km.Value, Timestamp: km.Timestamp}
	if km.TopicPartition.Topic != nil {
		m.Topic = *km.TopicPartition.Topic
	}
	for _, h := range km.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	return m
}
