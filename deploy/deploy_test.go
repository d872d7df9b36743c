package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// afterlifeBin is the binary built from this checkout by TestMain.
var afterlifeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "afterlife-deploy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	afterlifeBin = filepath.Join(dir, "afterlife")
	build := exec.Command("go", "build", "-o", afterlifeBin, "github.com/afterlife-oss/afterlife/cmd/afterlife")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "deploy: build afterlife:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool fails the test when a tool the checks rely on is missing.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run scripts/test-deps.sh (Debian package %s)", name, debianPackage)
	}
	return p
}

// cliHelp is what `afterlife CMD --help` declares.
type cliHelp struct {
	flags, env, yaml map[string]bool
}

var (
	helpFlagRE = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)
	helpEnvRE  = regexp.MustCompile(`env (AFTERLIFE_[A-Z0-9_]+)`)
	helpYAMLRE = regexp.MustCompile(`yaml ([a-z0-9_]+)\)`)
)

// helpOf parses `afterlife CMD --help`. A missing subcommand is reported
// as an error, and the other subcommands are still checked.
func helpOf(t *testing.T, cmd string) (cliHelp, bool) {
	t.Helper()
	out, err := exec.Command(afterlifeBin, append(strings.Fields(cmd), "--help")...).CombinedOutput()
	if err != nil {
		t.Errorf("afterlife %s --help: %v\n%s\n(the deploy files use `afterlife %s`; it must exist)", cmd, err, out, cmd)
		return cliHelp{}, false
	}
	h := cliHelp{flags: map[string]bool{}, env: map[string]bool{}, yaml: map[string]bool{}}
	for _, m := range helpFlagRE.FindAllStringSubmatch(string(out), -1) {
		h.flags[m[1]] = true
	}
	for _, m := range helpEnvRE.FindAllStringSubmatch(string(out), -1) {
		h.env[m[1]] = true
	}
	for _, m := range helpYAMLRE.FindAllStringSubmatch(string(out), -1) {
		h.yaml[m[1]] = true
	}
	if len(h.flags) == 0 {
		t.Errorf("afterlife %s --help lists no flags:\n%s", cmd, out)
		return cliHelp{}, false
	}
	return h, true
}

// allHelps parses the help of every subcommand the deploy files run.
func allHelps(t *testing.T) map[string]cliHelp {
	t.Helper()
	helps := map[string]cliHelp{}
	for _, sub := range []string{"serve", "migrate", "builder", "admin", "admin blobs init"} {
		if h, ok := helpOf(t, sub); ok {
			helps[sub] = h
		}
	}
	return helps
}

// invocation is one way the deploy files run the binary.
type invocation struct {
	where string   // file and service, for messages
	args  []string // after the binary: subcommand, flags
	env   []string // variable names set for it
}

// checkInvocation reports flags and AFTERLIFE_* variables the subcommand
// does not declare.
func checkInvocation(t *testing.T, inv invocation, helps map[string]cliHelp) {
	t.Helper()
	if len(inv.args) == 0 {
		t.Errorf("%s: no afterlife subcommand", inv.where)
		return
	}
	sub, args := inv.args[0], inv.args[1:]
	if len(inv.args) >= 3 { // a nested command: admin blobs init
		if nested := strings.Join(inv.args[:3], " "); helps[nested].flags != nil {
			sub, args = nested, inv.args[3:]
		}
	}
	h, ok := helps[sub]
	if !ok {
		t.Errorf("%s: runs `afterlife %s`, whose help could not be read", inv.where, sub)
		return
	}
	seen := map[string]bool{}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !h.flags[name] {
			t.Errorf("%s: `afterlife %s` has no flag --%s", inv.where, sub, name)
		}
		if seen[name] {
			t.Errorf("%s: --%s is given twice", inv.where, name)
		}
		seen[name] = true
	}
	for _, e := range inv.env {
		if strings.HasPrefix(e, "AFTERLIFE_") && !h.env[e] {
			t.Errorf("%s: `afterlife %s` does not read %s", inv.where, sub, e)
		}
	}
}

// ---- compose ----

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Command     []string       `yaml:"command"`
	Environment map[string]any `yaml:"environment"`
	Volumes     []string       `yaml:"volumes"`
	Ports       []string       `yaml:"ports"`
	DependsOn   map[string]any `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	readYAML(t, "compose/compose.yaml", &c)
	if len(c.Services) == 0 {
		t.Fatal("compose/compose.yaml: no services")
	}
	return c
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func isAfterlifeImage(image string) bool {
	name, _, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	return name == "afterlife" || name == "afterlife-builder"
}

func envNames(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ---- kubernetes ----

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type podSpec struct {
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
}

type probe struct {
	HTTPGet struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
}

// decodeAll reads every document of a multi-document YAML stream.
func decodeAll(t *testing.T, where string, b []byte) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if o.Kind != "" {
			out = append(out, o)
		}
	}
	return out
}

func kustomize(t *testing.T, dir string) []k8sObject {
	t.Helper()
	kubectl := requireTool(t, "kubectl", "kubernetes-client")
	cmd := exec.Command(kubectl, "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	objs := decodeAll(t, "kubectl kustomize "+dir, out)
	if len(objs) == 0 {
		t.Fatalf("kubectl kustomize %s produced nothing", dir)
	}
	return objs
}

// generatedSuffix is the content hash kustomize appends to generated names.
var generatedSuffix = regexp.MustCompile(`^-[a-z0-9]{10}$`)

// find returns the object kind/name, also under a generated name.
func find(objs []k8sObject, kind, name string) (k8sObject, bool) {
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Metadata.Name, name)
		if o.Kind == kind && ok && (rest == "" || generatedSuffix.MatchString(rest)) {
			return o, true
		}
	}
	return k8sObject{}, false
}

// ---- systemd ----

// unitFile is a parsed unit: section → key → values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{}
	section := ""
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, i+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// has reports whether any value of key starts with prefix.
func (u unitFile) has(section, key, prefix string) bool {
	for _, v := range u[section][key] {
		if strings.HasPrefix(v, prefix) {
			return true
		}
	}
	return false
}

func (u unitFile) get(section, key string) (string, bool) {
	v := u[section][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

func readEnvFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if k, _, ok := strings.Cut(line, "="); ok && regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(k) {
			names = append(names, k)
		}
	}
	return names
}

// ---- the tests ----

func TestEveryAfterlifeInvocationUsesFlagsAndVariablesTheBinaryHas(t *testing.T) {
	helps := allHelps(t)
	var invs []invocation

	units := map[string]string{"afterlife.service": "serve.env", "afterlife-builder@.service": "builder.env"}
	for unit, envFile := range units {
		u := parseUnit(t, filepath.Join("systemd", unit))
		exe, _ := u.get("Service", "ExecStart")
		words := strings.Fields(exe)
		if len(words) < 2 || words[0] != "/usr/local/bin/afterlife" {
			t.Errorf("systemd/%s: ExecStart=%q does not run /usr/local/bin/afterlife", unit, exe)
			continue
		}
		invs = append(invs, invocation{where: "systemd/" + unit, args: words[1:], env: readEnvFile(t, filepath.Join("systemd", envFile))})
	}

	c := loadCompose(t)
	for name, s := range c.Services {
		if isAfterlifeImage(s.Image) {
			invs = append(invs, invocation{where: "compose service " + name, args: s.Command, env: envNames(s.Environment)})
		}
	}

	secrets := map[string][]string{}
	for _, o := range decodeAll(t, "k8s/overlays/example/secrets.example.yaml", mustRead(t, "k8s/overlays/example/secrets.example.yaml")) {
		secrets[o.Metadata.Name] = envNames(anyMap(o.StringData))
	}
	for _, path := range k8sFiles(t) {
		for _, o := range decodeAll(t, path, mustRead(t, path)) {
			for _, ct := range append(o.Spec.Template.Spec.InitContainers, o.Spec.Template.Spec.Containers...) {
				if !isAfterlifeImage(ct.Image) || len(ct.Args) == 0 {
					continue
				}
				inv := invocation{where: fmt.Sprintf("%s %s/%s", path, o.Metadata.Name, ct.Name), args: ct.Args}
				for _, e := range ct.Env {
					inv.env = append(inv.env, e.Name)
				}
				for _, ef := range ct.EnvFrom {
					if ef.SecretRef != nil {
						inv.env = append(inv.env, secrets[ef.SecretRef.Name]...)
					}
				}
				invs = append(invs, inv)
			}
		}
	}
	if len(invs) < 9 {
		t.Fatalf("found only %d invocations of afterlife in deploy/; the parsers lost some", len(invs))
	}
	run := map[string]bool{}
	for _, inv := range invs {
		checkInvocation(t, inv, helps)
		if len(inv.args) > 0 {
			run[inv.args[0]] = true
		}
	}
	for _, sub := range []string{"serve", "builder", "migrate"} {
		if !run[sub] {
			t.Errorf("nothing in deploy/ runs `afterlife %s`", sub)
		}
	}
}

func TestEveryAfterlifeVariableMentionedAnywhereExists(t *testing.T) {
	known := map[string]bool{}
	for _, h := range allHelps(t) {
		for e := range h.env {
			known[e] = true
		}
	}
	re := regexp.MustCompile(`AFTERLIFE_[A-Z0-9_]*[A-Z0-9]`)
	files := append(allFiles(t), "../docs/deploy.md")
	for _, f := range files {
		for _, m := range re.FindAllString(string(mustRead(t, f)), -1) {
			if !known[m] && !composeOnlyVariable(m) {
				t.Errorf("%s mentions %s, which no afterlife command reads", f, m)
			}
		}
	}
}

// composeOnlyVariable is a variable of compose's .env, not of the binary.
func composeOnlyVariable(name string) bool {
	return name == "AFTERLIFE_S3_SECRET" || name == "AFTERLIFE_HTTP_PORT"
}

func TestConfigFilesUseServeYAMLKeys(t *testing.T) {
	h, ok := helpOf(t, "serve")
	if !ok {
		return
	}
	for _, path := range []string{"k8s/base/config.yaml", "k8s/overlays/example/config.yaml"} {
		t.Run(path+" has version 1 and only known keys", func(t *testing.T) {
			var m map[string]any
			readYAML(t, path, &m)
			if v, _ := m["version"].(int); v != 1 {
				t.Errorf("version = %v, want 1", m["version"])
			}
			for k := range m {
				if k != "version" && !h.yaml[k] {
					t.Errorf("unknown setting %q (serve --help has no \"yaml %s\")", k, k)
				}
			}
		})
	}
}

var pinnedTag = regexp.MustCompile(`^[^:@]+(:[A-Za-z0-9._-]*[0-9][A-Za-z0-9._-]*)?(@sha256:[0-9a-f]{64})?$`)

func checkImage(t *testing.T, where, image string) {
	t.Helper()
	if isAfterlifeImage(image) {
		return
	}
	if !pinnedTag.MatchString(image) || (!strings.Contains(image, ":") && !strings.Contains(image, "@")) || strings.HasSuffix(image, ":latest") {
		t.Errorf("%s: image %q is neither afterlife's nor pinned to a version", where, image)
	}
}

func TestImagesAreAfterlifeOrPinned(t *testing.T) {
	for name, s := range loadCompose(t).Services {
		if s.Image == "" {
			t.Errorf("compose service %s has no image", name)
		}
		checkImage(t, "compose service "+name, s.Image)
	}
	for _, o := range kustomize(t, "k8s/overlays/example") {
		for _, ct := range append(o.Spec.Template.Spec.InitContainers, o.Spec.Template.Spec.Containers...) {
			if isAfterlifeImage(ct.Image) && !pinnedTag.MatchString(ct.Image[strings.LastIndex(ct.Image, "/")+1:]) {
				t.Errorf("k8s overlay %s/%s: afterlife image %q has no version tag", o.Metadata.Name, ct.Name, ct.Image)
			}
			checkImage(t, "k8s overlay "+o.Metadata.Name+"/"+ct.Name, ct.Image)
		}
	}
	stages := map[string]bool{}
	for _, line := range strings.Split(string(mustRead(t, "Containerfile")), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "FROM" {
			if !stages[f[1]] {
				checkImage(t, "Containerfile", f[1])
			}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				stages[f[3]] = true
			}
		}
	}
	for _, want := range []string{"build", "serve", "builder"} {
		if !stages[want] {
			t.Errorf("Containerfile has no stage %q", want)
		}
	}
	if !strings.Contains(string(mustRead(t, "Containerfile")), "-trimpath") {
		t.Error("Containerfile does not build with -trimpath")
	}
}

func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func portOf(t *testing.T, where, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%s: %q: %v", where, hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s: %q: port is not a number", where, hostport)
	}
	return n
}

func urlHostPort(t *testing.T, where, raw string) (string, int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Port() == "" {
		t.Fatalf("%s: %q is not a URL with an explicit port", where, raw)
	}
	return u.Hostname(), portOf(t, where, u.Host)
}

func TestComposePortsAgree(t *testing.T) {
	c := loadCompose(t)
	conf := string(mustRead(t, "compose/nginx.conf"))
	upstreams := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([a-z0-9-]+):(\d+)`).FindAllStringSubmatch(conf, -1) {
		upstreams[m[1]], _ = strconv.Atoi(m[2])
	}
	listen := regexp.MustCompile(`(?m)^\s*listen\s+(\d+);`).FindStringSubmatch(conf)
	if listen == nil {
		t.Fatal("compose/nginx.conf: no listen port")
	}
	proxyPort, _ := strconv.Atoi(listen[1])

	replicas := 0
	for name, s := range c.Services {
		if len(s.Command) == 0 || !isAfterlifeImage(s.Image) {
			continue
		}
		switch s.Command[0] {
		case "serve":
			replicas++
			addr, ok := flagValue(s.Command, "addr")
			if !ok {
				t.Errorf("compose service %s: serve without --addr", name)
				continue
			}
			port := portOf(t, name, addr)
			if up, ok := upstreams[name]; !ok || up != port {
				t.Errorf("compose/nginx.conf: upstream %s:%d, want %s:%d (its --addr)", name, up, name, port)
			}
			if len(s.Healthcheck.Test) == 0 {
				t.Errorf("compose service %s has no health check", name)
			} else if _, hp := urlHostPort(t, name, s.Healthcheck.Test[len(s.Healthcheck.Test)-1]); hp != port {
				t.Errorf("compose service %s: health check on port %d, serve listens on %d", name, hp, port)
			}
		case "builder":
			coord, ok := flagValue(s.Command, "coordinator")
			if !ok {
				t.Errorf("compose service %s: builder without --coordinator", name)
				continue
			}
			host, port := urlHostPort(t, name, coord)
			if _, ok := c.Services[host]; !ok || port != proxyPort {
				t.Errorf("compose service %s: coordinator %s:%d, want a service listening there (proxy listens on %d)", name, host, port, proxyPort)
			}
		}
	}
	if replicas < 2 {
		t.Errorf("compose runs %d serve replicas, want 2", replicas)
	}
	for up := range upstreams {
		if s, ok := c.Services[up]; !ok || len(s.Command) == 0 || s.Command[0] != "serve" {
			t.Errorf("compose/nginx.conf: upstream %s is not a serve service", up)
		}
	}
	proxy, ok := c.Services["proxy"]
	if !ok || len(proxy.Ports) != 1 || !strings.HasSuffix(proxy.Ports[0], ":"+strconv.Itoa(proxyPort)) {
		t.Errorf("compose service proxy publishes %v, want HOST:%d", proxy.Ports, proxyPort)
	}
}

func TestComposeReferencesResolve(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("compose service %s depends on unknown service %s", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("compose service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("compose service %s uses volume %s, which is not declared", name, src)
			}
		}
	}
}

func TestNginxAcceptsTheProxyConfig(t *testing.T) {
	nginx := requireTool(t, "nginx", "nginx-light")
	dir := t.TempDir()
	// nginx resolves upstream names at load time; compose's service names
	// exist only on its network, so the check points them at loopback.
	conf := regexp.MustCompile(`server\s+serve-\d+:`).ReplaceAllString(string(mustRead(t, "compose/nginx.conf")), "server 127.0.0.1:")
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-q", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"),
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func TestKubernetesPortsAgree(t *testing.T) {
	objs := kustomize(t, "k8s/overlays/example")
	dep, ok := find(objs, "Deployment", "afterlife")
	if !ok || len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("no afterlife Deployment with one container")
	}
	ct := dep.Spec.Template.Spec.Containers[0]
	addr, ok := flagValue(ct.Args, "addr")
	if !ok {
		t.Fatal("serve container has no --addr")
	}
	port := portOf(t, "serve --addr", addr)
	named := map[string]int{}
	for _, p := range ct.Ports {
		named[p.Name] = p.ContainerPort
	}
	if named["http"] != port {
		t.Errorf("containerPort http = %d, --addr port = %d", named["http"], port)
	}
	resolve := func(n yaml.Node) int {
		if v, err := strconv.Atoi(n.Value); err == nil {
			return v
		}
		return named[n.Value]
	}
	for _, p := range []struct {
		name, path string
		pr         *probe
	}{{"readiness", "/readyz", ct.ReadinessProbe}, {"liveness", "/healthz", ct.LivenessProbe}} {
		if p.pr == nil {
			t.Errorf("serve has no %s probe", p.name)
			continue
		}
		if p.pr.HTTPGet.Path != p.path || resolve(p.pr.HTTPGet.Port) != port {
			t.Errorf("%s probe: GET %s on port %d, want %s on %d", p.name, p.pr.HTTPGet.Path, resolve(p.pr.HTTPGet.Port), p.path, port)
		}
	}
	svc, ok := find(objs, "Service", "afterlife")
	if !ok || len(svc.Spec.Ports) != 1 {
		t.Fatal("no afterlife Service with one port")
	}
	if resolve(svc.Spec.Ports[0].TargetPort) != port {
		t.Errorf("Service targetPort %q reaches port %d, serve listens on %d", svc.Spec.Ports[0].TargetPort.Value, resolve(svc.Spec.Ports[0].TargetPort), port)
	}
	b, ok := find(objs, "Deployment", "afterlife-builder")
	if !ok || len(b.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("no afterlife-builder Deployment with one container")
	}
	coord, ok := flagValue(b.Spec.Template.Spec.Containers[0].Args, "coordinator")
	if !ok {
		t.Fatal("builder has no --coordinator")
	}
	host, cport := urlHostPort(t, "builder --coordinator", coord)
	if host != svc.Metadata.Name || cport != svc.Spec.Ports[0].Port {
		t.Errorf("builder --coordinator %s:%d, the Service is %s:%d", host, cport, svc.Metadata.Name, svc.Spec.Ports[0].Port)
	}
}

func TestKustomizationsListFilesThatExistAndBuild(t *testing.T) {
	for _, dir := range []string{"k8s/base", "k8s/overlays/example"} {
		var k struct {
			Bases, Resources   []string
			ConfigMapGenerator []struct {
				Files []string
			} `yaml:"configMapGenerator"`
		}
		readYAML(t, filepath.Join(dir, "kustomization.yaml"), &k)
		paths := append(append([]string{}, k.Bases...), k.Resources...)
		for _, g := range k.ConfigMapGenerator {
			paths = append(paths, g.Files...)
		}
		if len(paths) == 0 {
			t.Errorf("%s/kustomization.yaml lists nothing", dir)
		}
		for _, p := range paths {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Errorf("%s/kustomization.yaml lists %s: %v", dir, p, err)
			}
		}
	}
	objs := kustomize(t, "k8s/overlays/example")
	for _, want := range []string{"Deployment/afterlife", "Deployment/afterlife-builder", "Service/afterlife", "Job/afterlife-migrate",
		"PodDisruptionBudget/afterlife", "ConfigMap/afterlife-config", "Secret/afterlife-env", "Secret/afterlife-keys", "Secret/afterlife-builder"} {
		kind, name, _ := strings.Cut(want, "/")
		if _, ok := find(objs, kind, name); !ok {
			t.Errorf("the example overlay has no %s", want)
		}
	}
	// Every Secret and ConfigMap a pod uses must be in the output (the
	// generator's hash suffix included).
	for _, o := range objs {
		ps := o.Spec.Template.Spec
		for _, v := range ps.Volumes {
			if v.ConfigMap != nil && !hasExact(objs, "ConfigMap", v.ConfigMap.Name) {
				t.Errorf("%s %s mounts ConfigMap %s, which the overlay does not produce", o.Kind, o.Metadata.Name, v.ConfigMap.Name)
			}
			if v.Secret != nil && !hasExact(objs, "Secret", v.Secret.SecretName) {
				t.Errorf("%s %s mounts Secret %s, which the overlay does not produce", o.Kind, o.Metadata.Name, v.Secret.SecretName)
			}
		}
		for _, ct := range append(ps.InitContainers, ps.Containers...) {
			for _, ef := range ct.EnvFrom {
				if ef.SecretRef != nil && !hasExact(objs, "Secret", ef.SecretRef.Name) {
					t.Errorf("%s/%s reads Secret %s, which the overlay does not produce", o.Metadata.Name, ct.Name, ef.SecretRef.Name)
				}
			}
			for _, e := range ct.Env {
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					s, ok := find(objs, "Secret", r.Name)
					if _, has := s.StringData[r.Key]; !ok || !has {
						t.Errorf("%s/%s reads %s from Secret %s, which has no such key", o.Metadata.Name, ct.Name, r.Key, r.Name)
					}
				}
			}
		}
	}
}

func hasExact(objs []k8sObject, kind, name string) bool {
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			return true
		}
	}
	return false
}

func TestSystemdUnitsAreHardenedAndValid(t *testing.T) {
	common := []string{"DynamicUser=yes", "StateDirectory=", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"NoNewPrivileges=yes", "LockPersonality=yes", "CapabilityBoundingSet=", "Restart=on-failure", "EnvironmentFile=/etc/afterlife/"}
	cases := []struct {
		unit, instance string
		want, absent   []string
		maxExposure    float64
	}{
		{"afterlife.service", "afterlife.service",
			[]string{"MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service", "RestrictNamespaces=yes", "EnvironmentFile=/etc/afterlife/serve.env"},
			nil, 2.0},
		{"afterlife-builder@.service", "afterlife-builder@1.service",
			[]string{"RestrictNamespaces=user mnt pid net ipc uts cgroup"},
			[]string{"MemoryDenyWriteExecute", "SystemCallFilter", "ProtectKernelTunables", "ProtectKernelLogs", "ProtectProc", "ProcSubset", "PrivateUsers"},
			5.0},
	}
	analyze := requireTool(t, "systemd-analyze", "systemd")
	root := systemdRoot(t)
	for _, c := range cases {
		t.Run(c.unit+" has its hardening and passes systemd-analyze", func(t *testing.T) {
			u := parseUnit(t, filepath.Join("systemd", c.unit))
			for _, kv := range append(append([]string{}, common...), c.want...) {
				k, v, _ := strings.Cut(kv, "=")
				got, _ := u.get("Service", k)
				// An empty CapabilityBoundingSet= means "no capability".
				if !u.has("Service", k, v) || (k == "CapabilityBoundingSet" && got != "") {
					t.Errorf("[Service] %s = %q, want %q", k, got, kv)
				}
			}
			for _, k := range c.absent {
				if _, ok := u.get("Service", k); ok {
					t.Errorf("[Service] sets %s, which breaks bubblewrap or the builds", k)
				}
			}
			var stderr bytes.Buffer
			verify := exec.Command(analyze, "verify", "--root="+root, c.instance)
			verify.Stderr = &stderr
			if err := verify.Run(); err != nil || stderr.Len() > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", c.instance, err, stderr.String())
			}
			out, err := exec.Command(analyze, "security", "--offline=true", "--root="+root, c.instance).CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security %s: %v\n%s", c.instance, err, out)
			}
			m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
			}
			if got, _ := strconv.ParseFloat(string(m[1]), 64); got > c.maxExposure {
				t.Errorf("exposure level %.1f, want at most %.1f:\n%s", got, c.maxExposure, out)
			}
		})
	}
}

// systemdRoot is a directory tree that systemd-analyze --root accepts: the
// host's system units, the afterlife binary where ExecStart expects it, and
// our units.
func systemdRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	units := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.CopyFS(units, os.DirFS("/usr/lib/systemd/system")); err != nil {
		t.Fatalf("copy the host's systemd units: %v", err)
	}
	etc := filepath.Join(root, "etc/systemd/system")
	bin := filepath.Join(root, "usr/local/bin")
	for _, d := range []string{etc, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(afterlifeBin, filepath.Join(bin, "afterlife")); err != nil {
		data := mustRead(t, afterlifeBin)
		if err := os.WriteFile(filepath.Join(bin, "afterlife"), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"afterlife.service", "afterlife-builder@.service"} {
		if err := os.WriteFile(filepath.Join(etc, u), mustRead(t, filepath.Join("systemd", u)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestEveryTargetHasAReadmeThatCoversBackups(t *testing.T) {
	for _, dir := range []string{"systemd", "compose", "k8s"} {
		t.Run(dir+"/README.md says how to start, back up and restore", func(t *testing.T) {
			text := string(mustRead(t, filepath.Join(dir, "README.md")))
			for _, want := range []string{"pg_dump", "pg_restore", "mc mirror", "root.key", "## Back up", "## Restore"} {
				if !strings.Contains(text, want) {
					t.Errorf("no %q", want)
				}
			}
		})
	}
	text := string(mustRead(t, "systemd/README.md"))
	for _, want := range []string{"afterlife admin backup", "afterlife admin restore"} {
		if !strings.Contains(text, want) {
			t.Errorf("systemd/README.md does not explain %q for the embedded default", want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func anyMap(m map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func allFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func k8sFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, p := range allFiles(t) {
		if strings.HasPrefix(p, "k8s/") && strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, "kustomization.yaml") && !strings.HasSuffix(p, "config.yaml") {
			out = append(out, p)
		}
	}
	return out
}
