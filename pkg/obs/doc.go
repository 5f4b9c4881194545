// Package obs is the observability kit every eventshop service wires into
// its main: a JSON slog logger (with trace_id and span_id from the context),
// liveness and readiness probes mirrored into gRPC health (grpc.health.v1), and
// Prometheus metrics on a per-process registry with gRPC and HTTP
// instrumentation and the event metrics (Kafka producer and consumer,
// idempotency outcomes, outbox, database pool) that pkg/host feeds.
//
// A typical main:
//
//	log, err := obs.NewLogger(os.Stdout, cfg.LogLevel, "cart")
//	health := obs.NewHealth(log)
//	health.AddCheck("postgres", db.PingContext)
//	health.AddCheck("kafka", producer.Ping)
//	metrics := obs.NewMetrics("cart")
//
//	grpcSrv := grpc.NewServer(grpc.ChainUnaryInterceptor(metrics.UnaryServerInterceptor()))
//	healthpb.RegisterHealthServer(grpcSrv, health.GRPCServer())
//
//	mux := obs.Mux(health, metrics)
//	mux.Handle("/", gatewayMux)
//	httpSrv := &http.Server{Handler: metrics.HTTPMiddleware(mux)}
//
//	g.Go(func() error { health.Run(ctx, 0); return nil })
//	// on shutdown, before stopping servers:
//	health.ShuttingDown()
package obs
