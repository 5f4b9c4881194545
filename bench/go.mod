module github.com/eventshop/eventshop/bench

go 1.26.0

require github.com/eventshop/eventshop/pkg v0.0.0

require (
	github.com/confluentinc/confluent-kafka-go/v2 v2.11.1 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	go.opentelemetry.io/otel/metric v1.47.0 // indirect
)

replace (
	github.com/eventshop/eventshop/pkg => ../pkg
	github.com/eventshop/eventshop/proto => ../proto
)
