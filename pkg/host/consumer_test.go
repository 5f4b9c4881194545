package host_test

import (
	"strings"
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/host"
	"github.com/eventshop/eventshop/pkg/kafka"
)

func TestConsumerTuning(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tuning  host.ConsumerTuning
		wantErr string
	}{
		{"zero keeps defaults", host.ConsumerTuning{}, ""},
		{"both set", host.ConsumerTuning{SessionTimeout: 6 * time.Second, MaxPollInterval: 8 * time.Second}, ""},
		{"poll below session", host.ConsumerTuning{SessionTimeout: 10 * time.Second, MaxPollInterval: 8 * time.Second}, "KAFKA_MAX_POLL_INTERVAL (8s) must not be below"},
		{"negative", host.ConsumerTuning{SessionTimeout: -time.Second}, "KAFKA_SESSION_TIMEOUT must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.tuning.Validate()
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
	base := kafka.ConsumerConfig{GroupID: "g", SessionTimeout: time.Second}
	if got := (host.ConsumerTuning{}).Apply(base); got.SessionTimeout != time.Second || got.MaxPollInterval != 0 || got.GroupID != "g" {
		t.Fatalf("zero tuning changed the config: %+v", got)
	}
	if got := (host.ConsumerTuning{SessionTimeout: 6 * time.Second, MaxPollInterval: 8 * time.Second}).Apply(base); got.SessionTimeout != 6*time.Second || got.MaxPollInterval != 8*time.Second {
		t.Fatalf("Apply = %+v", got)
	}
}
