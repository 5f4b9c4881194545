package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// KafkaProcess is a real Apache Kafka broker owned by one test, started through
// scripts/kafka.sh in a temporary work folder on free loopback ports, so that the test
// may stop, kill and restart it without disturbing other tests.
type KafkaProcess struct {
	// Brokers is the bootstrap address.
	Brokers string
	script  string
	env     []string
	work    string
}

// OwnKafka starts a dedicated broker for the test and stops it when the test ends. It needs
// what the shared broker needs (Java 17, Maven's cache); it skips under -short.
func OwnKafka(t testing.TB) *KafkaProcess {
	t.Helper()
	need(t, EnvKafkaBrokers) // same precondition as the shared broker
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	port, cport := freePort(t), freePort(t)
	work := t.TempDir()
	k := &KafkaProcess{
		Brokers: "127.0.0.1:" + strconv.Itoa(port),
		script:  filepath.Join(root, "scripts", "kafka.sh"),
		work:    work,
		env: append(os.Environ(),
			"EVENTSHOP_WORK="+work,
			"EVENTSHOP_KAFKA=kafka",
			"EVENTSHOP_KAFKA_PORT="+strconv.Itoa(port),
			"EVENTSHOP_KAFKA_CONTROLLER_PORT="+strconv.Itoa(cport),
			"EVENTSHOP_KAFKA_HEAP=-Xms128m -Xmx384m",
		),
	}
	k.Start(t)
	t.Cleanup(func() { k.Stop(t) })
	return k
}

// Start starts the broker (a no-op when it runs) and waits until it answers.
func (k *KafkaProcess) Start(t testing.TB) { t.Helper(); k.run(t, "start") }

// Stop stops the broker gracefully (SIGTERM) and waits for it to exit.
func (k *KafkaProcess) Stop(t testing.TB) { t.Helper(); k.run(t, "stop") }

// Kill kills the broker with SIGKILL (no controlled shutdown, no flush) and waits until
// the process is gone; Start brings it back on the same data and port.
func (k *KafkaProcess) Kill(t testing.TB) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(k.work, "pids", "kafka.pid"))
	if err != nil {
		t.Fatalf("testkit: kafka pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("testkit: kafka pid %q: %v", raw, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("testkit: SIGKILL kafka (pid %d): %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("testkit: kafka (pid %d) still alive 30s after SIGKILL", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (k *KafkaProcess) run(t testing.TB, verb string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", k.script, verb)
	cmd.Env = k.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testkit: kafka.sh %s (%s): %v\n%s", verb, k.Brokers, err, out)
	}
}

// RepoRoot finds the repository root (the folder holding go.work) above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory")
		}
		dir = parent
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: free port: %v", err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}
