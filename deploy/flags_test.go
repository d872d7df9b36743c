// Every afterlife command line, variable and YAML key the deployment files
// use must be one the binary declares in its --help.

package deploy

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

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
	for _, sub := range []string{"serve", "migrate", "builder", "admin", "admin blobs init", "device run"} {
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
