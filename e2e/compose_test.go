package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/modfile"

	"github.com/eventshop/eventshop/pkg/envelope"
)

// The Docker Compose stack cannot run here (no Docker engine), so these tests hold
// docker-compose.yml, deploy/Dockerfile and the kafka-init script to what the code reads:
// the services' Config env tags, their ports, the topic catalog of pkg/envelope.

const (
	composeFile   = "docker-compose.yml"
	dockerfile    = "deploy/Dockerfile"
	topicsScript  = "deploy/kafka/compose-topics.sh"
	postgresInit  = "deploy/postgres"
	projectName   = "eventshop"
	kafkaInitName = "kafka-init"
)

// appService is one eventshop service as the local stack runs it.
type appService struct {
	name       string
	http, grpc int    // published on the host, same as the native stack (scripts/services.sh)
	database   string // its database on the shared PostgreSQL
}

var appServices = []appService{
	{name: "cart", http: 8081, grpc: 9081, database: "cart"},
	{name: "inventory", http: 8082, grpc: 9082, database: "inventory"},
	{name: "order", http: 8083, grpc: 9083, database: "orders"},
	{name: "discount", http: 8084, grpc: 9084, database: "discount"},
}

// containerRequiredEnv are variables whose defaults (127.0.0.1 addresses) are wrong inside a
// container, so every service must get them from the Compose file.
var containerRequiredEnv = []string{"HTTP_ADDR", "GRPC_ADDR", "DATABASE_URL", "KAFKA_BROKERS"}

func repoPath(t *testing.T, rel string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, rel))
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return string(b)
}

// loadProject parses and validates docker-compose.yml the way `docker compose` does. Only the
// file's own defaults are used for interpolation, never the caller's environment.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{repoPath(t, composeFile)},
		cli.WithWorkingDirectory(repoPath(t, ".")))
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s does not load: %v", composeFile, err)
	}
	if project.Name != projectName {
		t.Fatalf("%s: project name = %q, want %q (set `name:` at the top)", composeFile, project.Name, projectName)
	}
	return project
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("%s: no service %q", composeFile, name)
	}
	return s
}

func envValue(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

func TestComposeServicesAndImages(t *testing.T) {
	p := loadProject(t)
	want := []string{"postgres", "kafka", kafkaInitName}
	for _, s := range appServices {
		want = append(want, s.name)
	}
	for _, name := range want {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("%s: service %q is missing", composeFile, name)
		}
	}
	for name, s := range p.Services {
		if s.Build != nil && s.Image == "" {
			continue
		}
		if err := pinned(s.Image); err != nil {
			t.Errorf("%s: service %s: image %q: %v", composeFile, name, s.Image, err)
		}
	}
}

// pinned accepts an image reference with a digest, or with an explicit tag other than latest.
func pinned(ref string) error {
	if ref == "" {
		return fmt.Errorf("no image and no build")
	}
	if strings.Contains(ref, "@sha256:") {
		return nil
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	i := strings.LastIndex(name, ":")
	if i < 0 {
		return fmt.Errorf("no tag: pin an explicit version")
	}
	if tag := name[i+1:]; tag == "" || strings.EqualFold(tag, "latest") {
		return fmt.Errorf("tag %q is not a pinned version", tag)
	}
	return nil
}

func TestComposeAppServices(t *testing.T) {
	p := loadProject(t)
	entrypoint := dockerEntrypoint(t)
	for _, as := range appServices {
		t.Run(as.name, func(t *testing.T) {
			s := service(t, p, as.name)

			if s.Build == nil {
				t.Fatalf("%s: %s has no build section; want deploy/Dockerfile with SERVICE=%s", composeFile, as.name, as.name)
			}
			if got := filepath.Clean(s.Build.Context); got != repoPath(t, ".") {
				t.Errorf("%s: %s build context = %s, want the repository root (go.work needs pkg/ and proto/)", composeFile, as.name, got)
			}
			if s.Build.Dockerfile != dockerfile {
				t.Errorf("%s: %s build dockerfile = %q, want %q", composeFile, as.name, s.Build.Dockerfile, dockerfile)
			}
			if arg := s.Build.Args["SERVICE"]; arg == nil || *arg != as.name {
				t.Errorf("%s: %s build arg SERVICE = %v, want %q", composeFile, as.name, deref(arg), as.name)
			}

			for _, port := range []int{as.http, as.grpc} {
				if !publishes(s, port, port) {
					t.Errorf("%s: %s does not publish %d:%d (ports: %s)", composeFile, as.name, port, port, portList(s))
				}
			}

			switch hc := s.HealthCheck; {
			case hc == nil || hc.Disable || len(hc.Test) == 0:
				t.Errorf("%s: %s has no healthcheck; want [CMD, %s, healthcheck]", composeFile, as.name, entrypoint)
			case hc.Test[0] != "CMD" || len(hc.Test) != 3 || hc.Test[1] != entrypoint || hc.Test[2] != "healthcheck":
				t.Errorf("%s: %s healthcheck = %q, want [CMD %s healthcheck] (the runtime image has no shell)", composeFile, as.name, hc.Test, entrypoint)
			}

			for dep, cond := range map[string]string{
				"postgres":    types.ServiceConditionHealthy,
				kafkaInitName: types.ServiceConditionCompletedSuccessfully,
			} {
				if got, ok := s.DependsOn[dep]; !ok || got.Condition != cond {
					t.Errorf("%s: %s must depend on %s with condition %s (depends_on: %v)", composeFile, as.name, dep, cond, s.DependsOn)
				}
			}

			for _, key := range containerRequiredEnv {
				if _, ok := envValue(s, key); !ok {
					t.Errorf("%s: %s does not set %s (its default points at 127.0.0.1, which is the container itself)", composeFile, as.name, key)
				}
			}
			checkAddr(t, s, as.name, "HTTP_ADDR", as.http)
			checkAddr(t, s, as.name, "GRPC_ADDR", as.grpc)
			checkDatabaseURL(t, p, s, as)
			checkBrokers(t, p, s, as.name)
		})
	}
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func publishes(s types.ServiceConfig, host, container int) bool {
	for _, p := range s.Ports {
		if int(p.Target) == container && p.Published == strconv.Itoa(host) && (p.Protocol == "" || p.Protocol == "tcp") {
			return true
		}
	}
	return false
}

func portList(s types.ServiceConfig) string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, fmt.Sprintf("%s:%d", p.Published, p.Target))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// checkAddr: the listener must bind every interface (published ports reach the container's
// eth0, not its loopback) on the port the host publishes.
func checkAddr(t *testing.T, s types.ServiceConfig, name, key string, want int) {
	t.Helper()
	v, ok := envValue(s, key)
	if !ok {
		return
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		t.Errorf("%s: %s %s=%q: %v", composeFile, name, key, v, err)
		return
	}
	if port != strconv.Itoa(want) {
		t.Errorf("%s: %s %s=%s listens on port %s, but the published port is %d", composeFile, name, key, v, port, want)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("%s: %s %s=%s binds %s; want 0.0.0.0 so the published port reaches it", composeFile, name, key, v, host)
	}
}

func checkDatabaseURL(t *testing.T, p *types.Project, s types.ServiceConfig, as appService) {
	t.Helper()
	v, ok := envValue(s, "DATABASE_URL")
	if !ok {
		return
	}
	u, err := url.Parse(v)
	if err != nil {
		t.Errorf("%s: %s DATABASE_URL: %v", composeFile, as.name, err)
		return
	}
	if _, ok := p.Services[u.Hostname()]; !ok || u.Port() != "5432" {
		t.Errorf("%s: %s DATABASE_URL host %s is not the postgres service on 5432", composeFile, as.name, u.Host)
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != as.database {
		t.Errorf("%s: %s DATABASE_URL database = %q, want %q", composeFile, as.name, db, as.database)
	}
}

func checkBrokers(t *testing.T, p *types.Project, s types.ServiceConfig, name string) {
	t.Helper()
	v, ok := envValue(s, "KAFKA_BROKERS")
	if !ok {
		return
	}
	for _, b := range strings.Split(v, ",") {
		host, port, err := net.SplitHostPort(strings.TrimSpace(b))
		if err != nil || host != "kafka" || port != "9092" {
			t.Errorf("%s: %s KAFKA_BROKERS=%s; want kafka:9092 (the in-network listener)", composeFile, name, v)
			continue
		}
		if _, ok := p.Services[host]; !ok {
			t.Errorf("%s: %s KAFKA_BROKERS names %s, which is no service", composeFile, name, host)
		}
	}
}

// TestComposeEnvMatchesServiceConfig fails when the Compose file sets a variable that the
// service's Config does not read (a typo or a renamed variable silently does nothing), or
// leaves out one the Config marks required.
func TestComposeEnvMatchesServiceConfig(t *testing.T) {
	p := loadProject(t)
	topics := scriptTopics(t)
	for _, as := range appServices {
		t.Run(as.name, func(t *testing.T) {
			s := service(t, p, as.name)
			dir := "services/" + as.name + "/internal/app"
			vars, ok := configEnv(t, repoPath(t, dir))
			if !ok {
				t.Skipf("%s has no Go source yet: the env-tag comparison for %s waits for it (Compose structure is checked by TestComposeAppServices)", dir, as.name)
			}

			var unknown []string
			for key := range s.Environment {
				if _, ok := vars[key]; !ok {
					unknown = append(unknown, key)
				}
			}
			sort.Strings(unknown)
			for _, key := range unknown {
				t.Errorf("%s: %s sets %s, but %s Config reads no such variable (it reads: %s)", composeFile, as.name, key, dir, strings.Join(sortedKeys(vars), ", "))
			}

			for key, v := range vars {
				if v.required && v.def == "" {
					if _, ok := envValue(s, key); !ok {
						t.Errorf("%s: %s does not set %s, which %s Config requires", composeFile, as.name, key, dir)
					}
				}
				// Every topic the service uses by default must be one kafka-init creates
				// (auto topic creation is off).
				if strings.HasSuffix(key, "_TOPIC") {
					topic := v.def
					if set, ok := envValue(s, key); ok {
						topic = set
					}
					if _, ok := topics[topic]; topic != "" && !ok {
						t.Errorf("%s uses topic %q (%s), which %s does not create", as.name, topic, key, topicsScript)
					}
				}
			}
			for _, key := range containerRequiredEnv {
				if _, ok := vars[key]; !ok {
					t.Errorf("%s Config does not read %s; the Compose stack relies on it", dir, key)
				}
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type envVar struct {
	def      string
	required bool
}

// configEnv collects the `env:"NAME"` tags of the Config struct declared in dir (nested
// structs of the same package are followed, with their envPrefix). ok is false when dir has
// no Go source yet; a package with source but no Config type is a test failure. Structs
// of pkg/host embedded or named as host.X are followed too.
func configEnv(t *testing.T, dir string) (map[string]envVar, bool) {
	t.Helper()
	structs, files := structTypes(t, dir)
	if files == 0 {
		return nil, false
	}
	cfg, ok := structs["Config"]
	if !ok {
		t.Fatalf("%s: no Config struct type; the services read their environment into app.Config", dir)
	}
	// The settings every service shares are a pkg/host struct embedded in Config.
	hostStructs, _ := structTypes(t, repoPath(t, "pkg/host"))
	vars := map[string]envVar{}
	var walk func(st *ast.StructType, pkg map[string]*ast.StructType, prefix string, depth int)
	walk = func(st *ast.StructType, pkg map[string]*ast.StructType, prefix string, depth int) {
		for _, field := range st.Fields.List {
			var tag reflect.StructTag
			if field.Tag != nil {
				raw, err := strconv.Unquote(field.Tag.Value)
				if err != nil {
					t.Fatalf("%s: struct tag %s: %v", dir, field.Tag.Value, err)
				}
				tag = reflect.StructTag(raw)
			}
			if name, opts, _ := strings.Cut(tag.Get("env"), ","); name != "" {
				required := slices.Contains(strings.Split(opts, ","), "required") || slices.Contains(strings.Split(opts, ","), "notEmpty")
				vars[prefix+name] = envVar{def: tag.Get("envDefault"), required: required}
				continue
			}
			if depth >= 5 {
				continue
			}
			switch typ := field.Type.(type) {
			case *ast.Ident:
				if nested, ok := pkg[typ.Name]; ok {
					walk(nested, pkg, prefix+tag.Get("envPrefix"), depth+1)
				}
			case *ast.SelectorExpr:
				if x, ok := typ.X.(*ast.Ident); ok && x.Name == "host" {
					if nested, ok := hostStructs[typ.Sel.Name]; ok {
						walk(nested, hostStructs, prefix+tag.Get("envPrefix"), depth+1)
					}
				}
			}
		}
	}
	walk(cfg, structs, "", 0)
	return vars, true
}

// structTypes returns the struct types declared in the non-test Go files of dir, and how
// many such files there are.
func structTypes(t *testing.T, dir string) (map[string]*ast.StructType, int) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	structs := map[string]*ast.StructType{}
	files := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", e.Name(), err)
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				if st, ok := ts.Type.(*ast.StructType); ok {
					structs[ts.Name.Name] = st
				}
			}
			return true
		})
	}
	return structs, files
}

func TestComposeInfrastructure(t *testing.T) {
	p := loadProject(t)

	t.Run("postgres", func(t *testing.T) {
		pg := service(t, p, "postgres")
		if !publishes(pg, 15432, 5432) {
			t.Errorf("%s: postgres does not publish 15432:5432 (ports: %s)", composeFile, portList(pg))
		}
		if pg.HealthCheck == nil || !slices.Contains(pg.HealthCheck.Test, "pg_isready") {
			t.Errorf("%s: postgres needs a pg_isready healthcheck (services wait for service_healthy)", composeFile)
		}
		if !mounts(pg, repoPath(t, postgresInit), "/docker-entrypoint-initdb.d") {
			t.Errorf("%s: postgres does not mount ./%s at /docker-entrypoint-initdb.d", composeFile, postgresInit)
		}
		created := createdDatabases(t)
		for _, as := range appServices {
			if !created[as.database] {
				t.Errorf("%s/*.sql does not create database %q (used by %s)", postgresInit, as.database, as.name)
			}
		}
	})

	t.Run("kafka", func(t *testing.T) {
		k := service(t, p, "kafka")
		if !publishes(k, 19092, 19092) {
			t.Errorf("%s: kafka does not publish 19092 for host clients (ports: %s)", composeFile, portList(k))
		}
		if k.HealthCheck == nil || len(k.HealthCheck.Test) == 0 {
			t.Errorf("%s: kafka has no healthcheck (kafka-init waits for service_healthy)", composeFile)
		}
		for key, want := range map[string]string{
			"KAFKA_NODE_ID":                          "1",
			"KAFKA_PROCESS_ROLES":                    "broker,controller",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":        "false",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
		} {
			if got, _ := envValue(k, key); got != want {
				t.Errorf("%s: kafka %s = %q, want %q", composeFile, key, got, want)
			}
		}
		if adv, _ := envValue(k, "KAFKA_ADVERTISED_LISTENERS"); !strings.Contains(adv, "//kafka:9092") || !strings.Contains(adv, "//localhost:19092") {
			t.Errorf("%s: kafka advertised listeners %q must include kafka:9092 (in-network) and localhost:19092 (host)", composeFile, adv)
		}
	})

	t.Run(kafkaInitName, func(t *testing.T) {
		ki := service(t, p, kafkaInitName)
		if k := service(t, p, "kafka"); ki.Image != k.Image {
			t.Errorf("%s: kafka-init image %q differs from kafka's %q", composeFile, ki.Image, k.Image)
		}
		if dep, ok := ki.DependsOn["kafka"]; !ok || dep.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: kafka-init must depend on kafka with condition service_healthy", composeFile)
		}
		if !mounts(ki, repoPath(t, topicsScript), "/compose-topics.sh") {
			t.Errorf("%s: kafka-init does not mount ./%s at /compose-topics.sh", composeFile, topicsScript)
		}
		if !slices.Contains(ki.Entrypoint, "/compose-topics.sh") {
			t.Errorf("%s: kafka-init entrypoint %q does not run /compose-topics.sh", composeFile, ki.Entrypoint)
		}
	})
}

func mounts(s types.ServiceConfig, source, target string) bool {
	for _, v := range s.Volumes {
		if filepath.Clean(v.Source) == source && v.Target == target {
			return true
		}
	}
	return false
}

var createDatabase = regexp.MustCompile(`(?im)^\s*CREATE\s+DATABASE\s+"?(\w+)"?`)

func createdDatabases(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoPath(t, postgresInit), "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no init SQL (%v)", postgresInit, err)
	}
	dbs := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range createDatabase.FindAllStringSubmatch(string(b), -1) {
			dbs[m[1]] = true
		}
	}
	return dbs
}

type topic struct {
	Partitions int
	Config     map[string]string
}

var createLine = regexp.MustCompile(`^create\s+(\S+)\s+(\d+)((?:\s+\S+=\S+)*)\s*$`)

// scriptTopics reads the `create <topic> <partitions> [key=value...]` lines of the
// kafka-init script.
func scriptTopics(t *testing.T) map[string]topic {
	t.Helper()
	src := readRepoFile(t, topicsScript)
	if !strings.Contains(src, "--if-not-exists") {
		t.Errorf("%s: topic creation must use --if-not-exists (kafka-init runs at every `up`)", topicsScript)
	}
	topics := map[string]topic{}
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "create ") {
			continue
		}
		m := createLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s:%d: %q is not `create <topic> <partitions> [key=value...]`", topicsScript, i+1, line)
		}
		n, _ := strconv.Atoi(m[2])
		tp := topic{Partitions: n, Config: map[string]string{}}
		for _, kv := range strings.Fields(m[3]) {
			k, v, _ := strings.Cut(kv, "=")
			tp.Config[k] = v
		}
		if _, dup := topics[m[1]]; dup {
			t.Errorf("%s:%d: topic %s created twice", topicsScript, i+1, m[1])
		}
		topics[m[1]] = tp
	}
	if len(topics) == 0 {
		t.Fatalf("%s: no `create <topic> <partitions>` lines", topicsScript)
	}
	return topics
}

func TestComposeTopicsMatchCatalog(t *testing.T) {
	want := map[string]topic{}
	for _, s := range envelope.DefaultTopics() {
		tp := topic{Partitions: max(s.Partitions, 1), Config: map[string]string{}}
		for k, v := range s.Config {
			tp.Config[k] = v
		}
		if s.Compacted {
			tp.Config["cleanup.policy"] = "compact"
		}
		want[s.Name] = tp
	}
	if diff := cmp.Diff(want, scriptTopics(t)); diff != "" {
		t.Errorf("topics created by %s differ from pkg/envelope.DefaultTopics() (-catalog +script):\n%s", topicsScript, diff)
	}
}

var fromLine = regexp.MustCompile(`(?im)^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?`)

func TestDockerfile(t *testing.T) {
	src := readRepoFile(t, dockerfile)

	if !regexp.MustCompile(`(?m)^ARG SERVICE\s*$`).MatchString(src) {
		t.Errorf("%s: no `ARG SERVICE` (one Dockerfile builds every service)", dockerfile)
	}
	for _, want := range []string{"CGO_ENABLED=1", "-trimpath", "--mount=type=cache"} {
		if !strings.Contains(src, want) {
			t.Errorf("%s: does not contain %q", dockerfile, want)
		}
	}
	if regexp.MustCompile(`(?i):latest\b`).MatchString(src) {
		t.Errorf("%s: uses a `latest` tag; pin every image", dockerfile)
	}

	stages := map[string]bool{}
	froms := fromLine.FindAllStringSubmatchIndex(src, -1)
	if len(froms) < 2 {
		t.Fatalf("%s: want a multi-stage build (builder + runtime), found %d FROM", dockerfile, len(froms))
	}
	for _, m := range froms {
		image := src[m[2]:m[3]]
		if !stages[image] {
			if err := pinned(image); err != nil {
				t.Errorf("%s: FROM %s: %v", dockerfile, image, err)
			}
		}
		if m[4] >= 0 {
			stages[src[m[4]:m[5]]] = true
		}
	}

	final := src[froms[len(froms)-1][0]:]
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(final, -1)
	if len(users) == 0 {
		t.Errorf("%s: the runtime stage sets no USER; it must run as a non-root user", dockerfile)
	} else if u, _, _ := strings.Cut(users[len(users)-1][1], ":"); u == "root" || u == "0" {
		t.Errorf("%s: the runtime stage runs as %s; want a non-root user", dockerfile, users[len(users)-1][1])
	}

	// Workspace mode needs every module of go.work; their go.mod files are copied before the
	// sources so `go mod download` stays cached.
	work, err := modfile.ParseWork("go.work", []byte(readRepoFile(t, "go.work")), nil)
	if err != nil {
		t.Fatalf("go.work: %v", err)
	}
	for _, u := range work.Use {
		dir := strings.TrimPrefix(filepath.ToSlash(u.Path), "./")
		if !strings.Contains(src, "COPY "+dir+"/go.* "+dir+"/") {
			t.Errorf("%s: module %s of go.work: no `COPY %s/go.* %s/` before the sources", dockerfile, u.Path, dir, dir)
		}
	}
}

// dockerEntrypoint is the binary the image runs (the Compose health checks call it with
// `healthcheck`).
func dockerEntrypoint(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^ENTRYPOINT\s+(\[.*\])\s*$`).FindStringSubmatch(readRepoFile(t, dockerfile))
	if m == nil {
		t.Fatalf("%s: no exec-form ENTRYPOINT", dockerfile)
	}
	var argv []string
	if err := json.Unmarshal([]byte(m[1]), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("%s: ENTRYPOINT %s: %v", dockerfile, m[1], err)
	}
	return argv[0]
}

func TestDockerignore(t *testing.T) {
	lines := strings.Split(readRepoFile(t, ".dockerignore"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(lines[i]), "/"), "/")
	}
	for _, want := range []string{".git", ".work", "bin"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
