package host

import (
	"errors"
	"fmt"
	"time"

	"github.com/eventshop/eventshop/pkg/kafka"
)

// ConsumerTuning is the consumer-group timing a service takes from the environment: embed
// it in the service's Config and pass each kafka.ConsumerConfig through Apply. Zero values
// keep the defaults of pkg/kafka (session 10s, poll interval 5m).
type ConsumerTuning struct {
	// SessionTimeout (KAFKA_SESSION_TIMEOUT): a member whose heartbeats stop for this
	// long (a dead process) is removed from the group. The broker bounds it (6s-30m by default).
	SessionTimeout time.Duration `env:"KAFKA_SESSION_TIMEOUT"`
	// MaxPollInterval (KAFKA_MAX_POLL_INTERVAL): the longest one batch (see BatchSize, with
	// its one-at-a-time redo if it fails) or one message's handler and in-place retries may
	// take. Past it the member leaves the group, its
	// partitions go to another member, and it rejoins once the message is done (the
	// message is then delivered again; processed_events makes that harmless). Must not be
	// below the session timeout.
	MaxPollInterval time.Duration `env:"KAFKA_MAX_POLL_INTERVAL"`
	// BatchSize (KAFKA_BATCH_SIZE): at most this many already-fetched events are applied
	// in one database transaction (default DefaultBatchSize; 1 applies each alone).
	BatchSize int `env:"KAFKA_BATCH_SIZE"`
}

// DefaultBatchSize is how many fetched events Consume applies in one transaction at most.
const DefaultBatchSize = 100

// Validate checks what librdkafka would otherwise refuse only when the consumer starts.
func (c ConsumerTuning) Validate() error {
	var errs []error
	if c.SessionTimeout < 0 {
		errs = append(errs, fmt.Errorf("config: KAFKA_SESSION_TIMEOUT must not be negative, got %s", c.SessionTimeout))
	}
	if c.MaxPollInterval < 0 {
		errs = append(errs, fmt.Errorf("config: KAFKA_MAX_POLL_INTERVAL must not be negative, got %s", c.MaxPollInterval))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("config: KAFKA_BATCH_SIZE must not be negative, got %d", c.BatchSize))
	}
	if c.SessionTimeout > 0 && c.MaxPollInterval > 0 && c.MaxPollInterval < c.SessionTimeout {
		errs = append(errs, fmt.Errorf("config: KAFKA_MAX_POLL_INTERVAL (%s) must not be below KAFKA_SESSION_TIMEOUT (%s)", c.MaxPollInterval, c.SessionTimeout))
	}
	return errors.Join(errs...)
}

// Apply returns cfg with the tuning's non-zero values.
func (c ConsumerTuning) Apply(cfg kafka.ConsumerConfig) kafka.ConsumerConfig {
	if c.SessionTimeout > 0 {
		cfg.SessionTimeout = c.SessionTimeout
	}
	if c.MaxPollInterval > 0 {
		cfg.MaxPollInterval = c.MaxPollInterval
	}
	if c.BatchSize > 0 {
		cfg.BatchSize = c.BatchSize
	}
	return cfg
}
