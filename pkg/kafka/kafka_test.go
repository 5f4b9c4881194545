package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/eventshop/eventshop/pkg/kafka"
)

func TestPermanent(t *testing.T) {
	base := errors.New("bad payload")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"plain error is transient", base, false},
		{"marked", kafka.Permanent(base), true},
		{"wrapped mark", fmt.Errorf("decode: %w", kafka.Permanent(base)), true},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kafka.IsPermanent(tt.err); got != tt.want {
				t.Fatalf("IsPermanent = %v, want %v", got, tt.want)
			}
		})
	}
	if kafka.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) should stay nil")
	}
	if !errors.Is(kafka.Permanent(base), base) {
		t.Fatal("Permanent must keep the cause for errors.Is")
	}
}

func TestDLQTopic(t *testing.T) {
	if got := kafka.DLQTopic("cart.events.v1", "inventory"); got != "cart.events.v1.dlq.inventory" {
		t.Fatalf("DLQTopic = %s", got)
	}
}

func TestNewRunnerValidates(t *testing.T) {
	h := func(_ context.Context, _ kafka.Message) error { return nil }
	p := &kafka.Producer{}
	tests := []struct {
		name string
		cfg  kafka.ConsumerConfig
		h    kafka.Handler
		p    *kafka.Producer
	}{
		{"no brokers", kafka.ConsumerConfig{GroupID: "g", Topics: []string{"t"}}, h, p},
		{"no group", kafka.ConsumerConfig{Brokers: "b", Topics: []string{"t"}}, h, p},
		{"no topics", kafka.ConsumerConfig{Brokers: "b", GroupID: "g"}, h, p},
		{"no handler", kafka.ConsumerConfig{Brokers: "b", GroupID: "g", Topics: []string{"t"}}, nil, p},
		{"no producer", kafka.ConsumerConfig{Brokers: "b", GroupID: "g", Topics: []string{"t"}}, h, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kafka.NewRunner(tt.cfg, tt.p, tt.h, nil); err == nil {
				t.Fatal("NewRunner accepted an invalid config")
			}
		})
	}
}

func TestMessageHeader(t *testing.T) {
	m := kafka.Message{Headers: []kafka.Header{{Key: "ce_id", Value: []byte("1")}, {Key: "ce_id", Value: []byte("2")}}}
	if m.Header("ce_id") != "1" || m.Header("missing") != "" {
		t.Fatalf("Header lookup wrong: %q %q", m.Header("ce_id"), m.Header("missing"))
	}
}
