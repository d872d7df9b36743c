// The Kubernetes manifests: decoding, kustomize builds and the checks on them.

package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

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
