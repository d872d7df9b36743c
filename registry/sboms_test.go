package registry

import (
	"encoding/json"
	"net/http"
	"os"
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
		t.Run("an SPDX 2.3 SBOM made by syft is published with its packages and files", func(t *testing.T) {
			spdx, err := os.ReadFile("sbom/testdata/syft-cortex-m3.spdx.json")
			if err != nil {
				t.Fatal(err)
			}
			rel := e.publish(PublishRequest{BuildID: e.build(map[string][]byte{"fw.bin": []byte("firmware 3"), "firmware.spdx.json": spdx}), Version: "1.2.0", Channel: Stable})
			var got *Artifact
			for i := range rel.Artifacts {
				if rel.Artifacts[i].Kind == KindSBOM {
					got = &rel.Artifacts[i]
				}
			}
			if got == nil || got.SBOM == nil || got.SBOM.Format != "SPDX 2.3" || got.SBOM.Subject.Name != "acme-thermo-firmware" {
				t.Fatalf("artifacts: %+v", rel.Artifacts)
			}
			resp, body := e.do("GET", "/v1/releases/"+rel.ID, "", nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"gcc-arm-none-eabi","version":"15:12.2.rel1-1"`) ||
				!strings.Contains(string(body), `"name":"src/main.c","type":"file","digest":"sha256:0b2b99bf30a7733a8dcc8c134013646fdebc2ac03972b1cdde40e25a12810041"`) {
				t.Fatalf("GET the release: %d %s", resp.StatusCode, body)
			}
			if _, err := e.tufClient().GetTargetInfo(got.Target); err != nil {
				t.Fatalf("the SPDX SBOM is not a signed target: %v", err)
			}
		})
		for _, c := range []struct{ name, file, doc, says string }{
			{"an SBOM in another format is refused at publish, naming both formats read", "fw.cdx.json", `{"sbom_format":"afterlife-sbom/1"}`, "neither bomFormat nor spdxVersion"},
			{"a malformed CycloneDX SBOM is refused at publish, naming the problem", "fw.cdx.json", `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}`, "no metadata.component"},
			{"a malformed SPDX SBOM is refused at publish, naming the problem", "fw.spdx.json",
				`{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"fw","documentNamespace":"fw","creationInfo":{"creators":["Tool: x"],"created":"2023-11-14T22:13:20Z"}}`,
				"documentNamespace"},
		} {
			t.Run(c.name, func(t *testing.T) {
				build := e.build(map[string][]byte{"fw.bin": []byte("firmware for " + c.name), c.file: []byte(c.doc)})
				resp, body := e.do("POST", "/v1/releases", e.admin, PublishRequest{BuildID: build, Product: "demo-cam", Version: "1.1.0"})
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), c.says) {
					t.Fatalf("publish: %d %s", resp.StatusCode, body)
				}
			})
		}
	})
}
