package proto_test

import (
	"bytes"
	"fmt"
	"go/format"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tools pinned in tools/go.mod that scripts/proto.sh uses; the tests build
// and run the same ones.
var toolPackages = []string{
	"github.com/bufbuild/buf/cmd/buf",
	"google.golang.org/protobuf/cmd/protoc-gen-go",
	"google.golang.org/grpc/cmd/protoc-gen-go-grpc",
	"github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway",
	"github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2",
}

var (
	toolsOnce sync.Once
	toolsDir  string // holds the built tools; removed by TestMain
	toolsErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if toolsDir != "" {
		os.RemoveAll(toolsDir)
	}
	os.Exit(code)
}

// buildTools builds the tools of tools/go.mod (outside the workspace, as
// scripts/proto.sh does) once per test binary and returns a PATH that starts
// with their directory. The first build of buf takes minutes; later ones are
// served by the Go build cache.
func buildTools(t *testing.T) (path string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped under -short: builds buf and the protoc plugins (minutes on a cold cache); run without -short or scripts/proto.sh check")
	}
	toolsOnce.Do(func() {
		toolsDir, toolsErr = os.MkdirTemp("", "eventshop-proto-tools")
		if toolsErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			toolsErr = fmt.Errorf("go toolchain not on PATH: %w", err)
			return
		}
		start := time.Now()
		args := append([]string{"build", "-o", toolsDir + string(filepath.Separator)}, toolPackages...)
		cmd := exec.Command(goBin, args...)
		cmd.Dir = filepath.Join("..", "tools")
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			toolsErr = fmt.Errorf("(cd tools && GOWORK=off go %s): %w\n%s", strings.Join(args, " "), err, out)
			return
		}
		t.Logf("built buf and protoc plugins from tools/go.mod in %s", time.Since(start).Round(time.Millisecond))
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return toolsDir + string(os.PathListSeparator) + os.Getenv("PATH")
}

// buf runs buf in the proto module directory with the built tools on PATH and
// returns its combined output.
func buf(t *testing.T, path string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(toolsDir, "buf"), args...)
	cmd.Env = append(os.Environ(), "PATH="+path)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestBufLint(t *testing.T) {
	path := buildTools(t)
	if out, err := buf(t, path, "lint"); err != nil {
		t.Errorf("buf lint: %v\n%s", err, out)
	}
	if out, err := buf(t, path, "format", "--diff", "--exit-code"); err != nil {
		t.Errorf("buf format: .proto files are not formatted (run: cd proto && buf format -w): %v\n%s", err, out)
	}
}

// isGenerated reports whether a path (slash-separated, relative to the proto
// module) is an output of buf.gen.yaml.
func isGenerated(rel string) bool {
	if strings.HasPrefix(rel, "third_party/") {
		return false
	}
	return strings.HasSuffix(rel, ".pb.go") || strings.HasSuffix(rel, ".pb.gw.go") || strings.HasSuffix(rel, ".swagger.json")
}

// generatedFiles returns the generated files under dir, keyed by their path
// relative to dir.
func generatedFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !isGenerated(rel) {
			return nil
		}
		b, err := os.ReadFile(p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return files
}

func TestGeneratedCodeUpToDate(t *testing.T) {
	path := buildTools(t)
	out := t.TempDir()
	if msg, err := buf(t, path, "generate", "-o", out); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, msg)
	}
	want := generatedFiles(t, out)
	got := generatedFiles(t, ".")
	if len(want) == 0 {
		t.Fatal("buf generate produced no files")
	}

	var problems []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		b, ok := got[name]
		switch {
		case !ok:
			problems = append(problems, "missing: proto/"+name)
		case !bytes.Equal(b, want[name]):
			problems = append(problems, "stale:   proto/"+name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[name]; !ok {
			problems = append(problems, "extra:   proto/"+name+" (no .proto generates it)")
		}
	}
	if len(problems) > 0 {
		t.Errorf("committed generated code differs from buf generate; run make proto (scripts/proto.sh):\n%s", strings.Join(problems, "\n"))
	}

	// The generators gofmt their output; keep it that way (go vet and review
	// tools read these files too).
	for name, b := range want {
		if !strings.HasSuffix(name, ".go") {
			continue
		}
		formatted, err := format.Source(b)
		if err != nil {
			t.Errorf("%s: generated code does not parse: %v", name, err)
		} else if !bytes.Equal(formatted, b) {
			t.Errorf("%s: generated code is not gofmt-clean", name)
		}
	}
}
