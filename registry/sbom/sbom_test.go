package sbom_test

import (
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/sbom"
)

const good = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
 "metadata":{"component":{"type":"application","name":"afterlife.example/cam","version":"v1.0.0","purl":"pkg:golang/afterlife.example/cam@v1.0.0?type=module"}},
 "components":[{"type":"library","name":"std","version":"go1.26.8","purl":"pkg:golang/std@go1.26.8?type=module"}]}`

func TestSBOMsAreReadWithCycloneDXsOwnLibrary(t *testing.T) {
	s, err := sbom.Parse(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != "CycloneDX 1.6" || s.Subject.Name != "afterlife.example/cam" || len(s.Components) != 1 || s.Components[0].Version != "go1.26.8" {
		t.Fatalf("%+v", s)
	}
	for _, c := range []struct{ name, doc, says string }{
		{"afterlife's old home-made format is refused", `{"sbom_format":"afterlife-sbom/1","name":"afterlife-cam"}`, "want a CycloneDX JSON SBOM"},
		{"SPDX is refused, naming what is read", `{"spdxVersion":"SPDX-2.3"}`, "want a CycloneDX JSON SBOM"},
		{"a spec version the library does not know is refused", strings.Replace(good, `"1.6"`, `"9.9"`, 1), "CycloneDX"},
		{"an SBOM that says not what it describes is refused", `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}`, "metadata.component"},
		{"a component without a name is refused", strings.Replace(good, `"name":"std"`, `"name":""`, 1), "components[0] needs a name"},
		{"text is refused", `not json`, "not JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := sbom.Parse(strings.NewReader(c.doc))
			if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err = %v, want Invalid saying %q", err, c.says)
			}
		})
	}
	t.Run("an SBOM above the limit is refused", func(t *testing.T) {
		_, err := sbom.Parse(strings.NewReader(good + strings.Repeat(" ", sbom.MaxSize)))
		if !errs.Is(err, errs.TooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
}
