// Every image is afterlife's own or pinned to a version or digest.

package deploy

import (
	"regexp"
	"strings"
	"testing"
)

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
