// Command kfake runs an in-process Kafka-protocol broker (github.com/twmb/franz-go/pkg/kfake)
// on a loopback address. It is the zero-dependency fallback for the real Apache Kafka broker
// started by scripts/kafka.sh: no Java, no Maven, starts in milliseconds.
//
// Like the real local broker it does not create topics automatically: our code creates them
// explicitly. State lives in memory unless -data-dir is given.
//
// Usage:
//
//	go run ./cmd/kfake -addr 127.0.0.1:19092 -partitions 6
//
// It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

type config struct {
	addr       string
	partitions int
	dataDir    string
	clusterID  string
	logLevel   string
}

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("cmd", "kfake")
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		logger.Error("bad flags", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, cfg); err != nil {
		logger.Error("kfake failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("kfake", flag.ContinueOnError)
	var cfg config
	var port int
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:19092", "listen address host:port (the host is advertised to clients)")
	fs.IntVar(&port, "port", 0, "listen port; overrides the port of -addr when non-zero")
	fs.IntVar(&cfg.partitions, "partitions", 6, "default number of partitions for topics created without an explicit count")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "persist state in this directory (default: in memory only)")
	fs.StringVar(&cfg.clusterID, "cluster-id", "eventshop-kfake", "cluster id reported to clients")
	fs.StringVar(&cfg.logLevel, "log-level", "warn", "broker log level: none, error, warn, info, debug")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	host, p, err := net.SplitHostPort(cfg.addr)
	if err != nil {
		return cfg, fmt.Errorf("-addr %q: %w", cfg.addr, err)
	}
	if port != 0 {
		p = strconv.Itoa(port)
	}
	if _, err := strconv.ParseUint(p, 10, 16); err != nil {
		return cfg, fmt.Errorf("port %q: %w", p, err)
	}
	cfg.addr = net.JoinHostPort(host, p)
	if cfg.partitions < 1 {
		return cfg, errors.New("-partitions must be at least 1")
	}
	if _, err := parseLevel(cfg.logLevel); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func parseLevel(s string) (kfake.LogLevel, error) {
	switch strings.ToLower(s) {
	case "none":
		return kfake.LogLevelNone, nil
	case "error":
		return kfake.LogLevelError, nil
	case "warn":
		return kfake.LogLevelWarn, nil
	case "info":
		return kfake.LogLevelInfo, nil
	case "debug":
		return kfake.LogLevelDebug, nil
	}
	return 0, fmt.Errorf("-log-level %q: want none, error, warn, info or debug", s)
}

func run(ctx context.Context, logger *slog.Logger, cfg config) error {
	level, _ := parseLevel(cfg.logLevel)
	_, portStr, _ := net.SplitHostPort(cfg.addr)
	port, _ := strconv.Atoi(portStr)

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		// kfake always asks for 127.0.0.1:<port>; listen on the requested host instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			var lc net.ListenConfig
			return lc.Listen(ctx, network, cfg.addr)
		}),
		kfake.DefaultNumPartitions(cfg.partitions),
		kfake.ClusterID(cfg.clusterID),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)),
	}
	if cfg.dataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.dataDir))
	}

	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start broker on %s: %w", cfg.addr, err)
	}
	defer cluster.Close()

	logger.Info("kfake broker listening",
		"addrs", cluster.ListenAddrs(),
		"partitions", cfg.partitions,
		"data_dir", cfg.dataDir,
		"auto_create_topics", false,
	)

	<-ctx.Done()
	logger.Info("signal received, stopping kfake broker")
	return nil
}
