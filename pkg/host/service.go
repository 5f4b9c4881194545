package host

import (
	"time"

	"github.com/eventshop/eventshop/pkg/auth"
	"github.com/eventshop/eventshop/pkg/server"
)

// ServiceConfig is what every eventshop service reads from its environment the same way.
// Embed it in the service's Config next to the service's own addresses, database URL and
// topics; the env package fills embedded structs.
type ServiceConfig struct {
	DatabaseConns   int           `env:"DATABASE_MAX_CONNS" envDefault:"20"`
	KafkaBrokers    string        `env:"KAFKA_BROKERS" envDefault:"127.0.0.1:19092"`
	CreateTopics    bool          `env:"KAFKA_CREATE_TOPICS" envDefault:"true"`
	AuthSecret      string        `env:"AUTH_JWT_SECRET"`
	DevMode         bool          `env:"DEV_MODE" envDefault:"false"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s"`
	PprofAddr       string        `env:"PPROF_ADDR"` // e.g. 127.0.0.1:6061; off when empty
	RequestTimeout  time.Duration `env:"REQUEST_TIMEOUT" envDefault:"10s"`
	HTTPIdleTimeout time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"2m"`

	// Consumer holds KAFKA_SESSION_TIMEOUT, KAFKA_MAX_POLL_INTERVAL and KAFKA_BATCH_SIZE.
	Consumer ConsumerTuning
}

// Validate checks what the environment cannot type-check.
func (c ServiceConfig) Validate() error { return c.Consumer.Validate() }

// AuthConfig is the JWT configuration; in development mode without a secret the
// well-known development key is used.
func (c ServiceConfig) AuthConfig() auth.Config {
	secret := c.AuthSecret
	if secret == "" && c.DevMode {
		secret = auth.DevSigningKey
	}
	return auth.Config{Secret: secret, DevMode: c.DevMode}
}

// Host returns the process host's configuration for the service name listening on
// httpAddr and grpcAddr.
func (c ServiceConfig) Host(name, httpAddr, grpcAddr string) Config {
	return Config{Name: name, HTTPAddr: httpAddr, GRPCAddr: grpcAddr, Auth: c.AuthConfig(), ShutdownTimeout: c.ShutdownTimeout,
		PprofAddr: c.PprofAddr, Timeouts: server.Timeouts{Request: c.RequestTimeout, HTTPIdle: c.HTTPIdleTimeout}}
}
