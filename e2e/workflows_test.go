package e2e

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eventshop/eventshop/pkg/testkit"
)

// workflowPaths returns the push path filters of a workflow (the `paths: &paths` list,
// which pull_request reuses through the *paths alias).
func workflowPaths(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var paths []string
	in, alias := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "paths: &paths":
			in = true
		case line == "paths: *paths":
			alias = true
		case in && strings.HasPrefix(line, "- "):
			paths = append(paths, strings.Trim(strings.TrimPrefix(line, "- "), `"`))
		case in:
			in = false
		}
	}
	if !alias {
		t.Errorf("%s: pull_request does not reuse the push paths (paths: *paths)", file)
	}
	slices.Sort(paths)
	return paths
}

// moduleDeps returns the workspace modules a module depends on, from its replace directives
// (e.g. ../../pkg -> "pkg").
func moduleDeps(t *testing.T, root, module string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, module, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var deps []string
	for _, line := range strings.Split(string(b), "\n") {
		if _, target, ok := strings.Cut(line, "=> "); ok {
			dir := filepath.ToSlash(filepath.Clean(filepath.Join(module, strings.TrimSpace(target))))
			deps = append(deps, dir)
		}
	}
	return deps
}

// TestWorkflowPathFiltersCoverExactlyTheModuleDependencies: each module's workflow runs
// when, and only when, that module, a workspace module it depends on, or the shared build
// inputs change.
func TestWorkflowPathFiltersCoverExactlyTheModuleDependencies(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shared := []string{"go.work", "go.work.sum", ".golangci.yml", "tools/lint/**", ".github/workflows/_go-module.yml"}
	cases := map[string]struct {
		module string
		extra  []string
	}{
		"cart":      {"services/cart", []string{"deploy/Dockerfile"}},
		"inventory": {"services/inventory", []string{"deploy/Dockerfile"}},
		"order":     {"services/order", []string{"deploy/Dockerfile"}},
		"discount":  {"services/discount", []string{"deploy/Dockerfile"}},
		"pkg":       {"pkg", nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			want := append([]string{c.module + "/**", ".github/workflows/" + name + ".yml"}, shared...)
			want = append(want, c.extra...)
			for _, dep := range moduleDeps(t, root, c.module) {
				want = append(want, dep+"/**")
			}
			slices.Sort(want)
			want = slices.Compact(want)
			got := workflowPaths(t, filepath.Join(root, ".github", "workflows", name+".yml"))
			if !slices.Equal(got, want) {
				t.Fatalf("%s.yml paths\n got  %v\n want %v", name, got, want)
			}
		})
	}
	t.Run("proto", func(t *testing.T) {
		want := []string{".github/workflows/proto.yml", "proto/**", "scripts/proto.sh", "tools/go.mod", "tools/go.sum"}
		if got := workflowPaths(t, filepath.Join(root, ".github", "workflows", "proto.yml")); !slices.Equal(got, want) {
			t.Fatalf("proto.yml paths\n got  %v\n want %v", got, want)
		}
	})
}
