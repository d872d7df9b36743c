package registry

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
)

func TestAnSBOMIsReadAtPublishAndItsComponentsListed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newEnv(t, d, envOptions{})
		cdx := []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
 "metadata":{"component":{"type":"application","name":"afterlife.example/cam","version":"v1.0.0"}},
 "components":[{"type":"library","name":"std","version":"go1.26.8","purl":"pkg:golang/std@go1.26.8?type=module"}]}`)
		t.Run("a CycloneDX SBOM is published with its components", func(t *testing.T) {
			rel := e.publish(PublishRequest{BuildID: e.build(map[string][]byte{"fw.bin": []byte("firmware 1"), "fw.cdx.json": cdx}), Version: "1.0.0", Channel: Stable})
			var got *Artifact
			for i := range rel.Artifacts {
				if rel.Artifacts[i].Kind == KindSBOM {
					got = &rel.Artifacts[i]
				}
			}
			if got == nil || got.SBOM == nil || got.SBOM.Format != "CycloneDX 1.6" || len(got.SBOM.Components) != 1 || got.SBOM.Components[0].Name != "std" {
				t.Fatalf("artifacts: %+v", rel.Artifacts)
			}
			resp, body := e.do("GET", "/v1/releases/"+rel.ID, "", nil)
			var again Release
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &again) != nil || !strings.Contains(string(body), `"components":[{"name":"std"`) {
				t.Fatalf("GET the release: %d %s", resp.StatusCode, body)
			}
			up := e.tufClient()
			if _, err := up.GetTargetInfo(got.Target); err != nil {
				t.Fatalf("the SBOM is not a signed target: %v", err)
			}
		})
		t.Run("an SBOM in another format is refused at publish", func(t *testing.T) {
			build := e.build(map[string][]byte{"fw.bin": []byte("firmware 2"), "fw.cdx.json": []byte(`{"sbom_format":"afterlife-sbom/1"}`)})
			resp, body := e.do("POST", "/v1/releases", e.admin, PublishRequest{BuildID: build, Product: "demo-cam", Version: "1.1.0"})
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "CycloneDX") {
				t.Fatalf("publish: %d %s", resp.StatusCode, body)
			}
		})
	})
}
