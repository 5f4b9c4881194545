// Package chaos holds the fault-injection suite: it runs the four services as real
// processes, drives a bounded load of cart commands from many simulated users, injects one
// fault per scenario (broker, consumer or cart SIGKILL; PostgreSQL restarted or crashed; a
// consumer group scaled from one to three instances; a handler slower than
// max.poll.interval.ms; poison and disorder straight into the topics), waits for recovery
// and checks the books across Kafka and every database.
//
// The scale comes from EVENTSHOP_CHAOS: "full" (make chaos) or empty (make test, small).
package chaos
