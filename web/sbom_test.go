package web_test

import (
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/web"
)

func TestTheReleasePageListsAnSPDXSBOMsPackagesAndFilesLikeCycloneDXComponents(t *testing.T) {
	d := newDemo(t)
	rel := &d.catalog.products["acme-thermo-2"].Channels[0].Releases[0]
	rel.Artifacts = append(rel.Artifacts, web.Artifact{Name: "firmware.spdx.json", Size: 18624, SHA256: strings.Repeat("f", 64), URL: "/files/firmware.spdx.json",
		SBOM: &web.SBOM{Format: "SPDX 2.3", Subject: web.SBOMComponent{Name: "acme-thermo-firmware", Version: "2.4.1", Type: "file"},
			Components: []web.SBOMComponent{
				{Name: "gcc-arm-none-eabi", Version: "15:12.2.rel1-1"},
				{Name: "src/main.c", Type: "file", Digest: "sha256:0b2b99bf30a7733a8dcc8c134013646fdebc2ac03972b1cdde40e25a12810041"},
			}}})
	body := newClient(t, d).get("/products/acme-thermo-2").Body.String()
	for _, want := range []string{
		"Software bill of materials (SPDX 2.3): 2 components",
		"Describes acme-thermo-firmware 2.4.1.",
		"<li><code>gcc-arm-none-eabi</code> 15:12.2.rel1-1</li>",
		`<li><code>src/main.c</code> <span class="meta">(file)</span> <code class="digest">sha256:0b2b99bf30a7733a8dcc8c134013646fdebc2ac03972b1cdde40e25a12810041</code></li>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the release page lacks %q", want)
		}
	}
}
