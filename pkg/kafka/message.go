// Package kafka holds the process-wide Kafka producer and the consumer runner of
// eventshop, built on confluent-kafka-go (librdkafka).
//
// The rule the package exists for: one Producer per process, created at start, shared by
// every handler, flushed and closed once at shutdown. Never a producer per message.
package kafka

import (
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is a Kafka record as eventshop code sees it, free of librdkafka types.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// Header returns the value of the first header named key, or "" when there is none.
func (m Message) Header(key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func toCkafka(m Message) *ckafka.Message {
	hs := make([]ckafka.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = ckafka.Header{Key: h.Key, Value: h.Value}
	}
	topic := m.Topic
	return &ckafka.Message{
		TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny},
		Key:            m.Key,
		Value:          m.Value,
		Headers:        hs,
	}
}

func fromCkafka(km *ckafka.Message) Message {
	hs := make([]Header, len(km.Headers))
	for i, h := range km.Headers {
		hs[i] = Header{Key: h.Key, Value: h.Value}
	}
	m := Message{
		Partition: km.TopicPartition.Partition,
		Offset:    int64(km.TopicPartition.Offset),
		Key:       km.Key,
		Value:     km.Value,
		Headers:   hs,
		Timestamp: km.Timestamp.UTC(),
	}
	if km.TopicPartition.Topic != nil {
		m.Topic = *km.TopicPartition.Topic
	}
	return m
}
