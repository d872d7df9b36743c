package sbom_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/sbom"
)

const good = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,
 "metadata":{"component":{"type":"application","name":"afterlife.example/cam","version":"v1.0.0","purl":"pkg:golang/afterlife.example/cam@v1.0.0?type=module"}},
 "components":[{"type":"library","name":"std","version":"go1.26.8","purl":"pkg:golang/std@go1.26.8?type=module"}]}`

func testdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit changes one field of a JSON document, the way a broken or hostile
// generator would: path names nested keys and array indexes ("packages.0.name").
func edit(t *testing.T, doc, path string, value any) string {
	t.Helper()
	var m any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	cur := m
	for i, k := range keys {
		last := i == len(keys)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if value == nil {
					delete(c, k)
				} else {
					c[k] = value
				}
			} else {
				cur = c[k]
			}
		case []any:
			var n int
			if err := json.Unmarshal([]byte(k), &n); err != nil || n >= len(c) {
				t.Fatalf("edit %s: bad index %s", path, k)
			}
			if last {
				c[n] = value
			} else {
				cur = c[n]
			}
		default:
			t.Fatalf("edit %s: nothing at %s", path, k)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRealGeneratorsOutputsAreReadWithTheirFormatsOwnLibraries(t *testing.T) {
	for _, c := range []struct {
		name, file, format string
		subject            string
		component, digest  string // one component listed, with its digest when it has one
		components         int
	}{
		{"cyclonedx-gomod's CycloneDX 1.6 of the camera daemon lists its module and the standard library", "cyclonedx-gomod-afterlife-cam.cdx.json",
			"CycloneDX 1.6", "afterlife.example/cam", "std", "", 1},
		{"syft's CycloneDX 1.6 of the Cortex-M3 deposit lists the compiler and each source file by digest", "syft-cortex-m3.cdx.json",
			"CycloneDX 1.6", "acme-thermo-firmware", "/src/main.c", "sha256:0b2b99bf30a7733a8dcc8c134013646fdebc2ac03972b1cdde40e25a12810041", 9},
		{"syft's SPDX 2.3 of the Cortex-M3 build lists the toolchain's packages and each source file by digest", "syft-cortex-m3.spdx.json",
			"SPDX 2.3", "acme-thermo-firmware", "src/main.c", "sha256:0b2b99bf30a7733a8dcc8c134013646fdebc2ac03972b1cdde40e25a12810041", 19},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := sbom.Parse(strings.NewReader(testdata(t, c.file)))
			if err != nil {
				t.Fatal(err)
			}
			if s.Format != c.format || s.Subject.Name != c.subject || len(s.Components) != c.components {
				t.Fatalf("%s of %+v with %d components: %+v", s.Format, s.Subject, len(s.Components), s.Components)
			}
			for _, comp := range s.Components {
				if comp.Name == c.component && comp.Digest == c.digest {
					return
				}
			}
			t.Fatalf("no component %s %s in %+v", c.component, c.digest, s.Components)
		})
	}
	t.Run("an SPDX package names its version", func(t *testing.T) {
		s, err := sbom.Parse(strings.NewReader(testdata(t, "syft-cortex-m3.spdx.json")))
		if err != nil {
			t.Fatal(err)
		}
		for _, comp := range s.Components {
			if comp.Name == "gcc-arm-none-eabi" {
				if comp.Version != "15:12.2.rel1-1" {
					t.Fatalf("%+v", comp)
				}
				return
			}
		}
		t.Fatalf("no gcc-arm-none-eabi in %+v", s.Components)
	})
}

func TestAMalformedSBOMIsRefusedNamingTheProblem(t *testing.T) {
	spdx := testdata(t, "syft-cortex-m3.spdx.json")
	for _, c := range []struct{ name, doc, says string }{
		{"afterlife's old home-made format is refused", `{"sbom_format":"afterlife-sbom/1","name":"afterlife-cam"}`, "neither bomFormat nor spdxVersion"},
		{"text is refused", `not json`, "not JSON"},
		{"a document claiming both formats is refused", `{"bomFormat":"CycloneDX","spdxVersion":"SPDX-2.3"}`, "want one format"},

		{"another bomFormat is refused", strings.Replace(good, `"CycloneDX"`, `"CycloneDx"`, 1), `bomFormat "CycloneDx"`},
		{"a CycloneDX spec version the library does not know is refused", strings.Replace(good, `"1.6"`, `"9.9"`, 1), `specVersion "9.9"`},
		{"CycloneDX 1.7, newer than the registry reads, is refused naming the versions it reads", testdata(t, "syft-cortex-m3.cdx-1.7.json"), "1.4 to 1.6"},
		{"CycloneDX 1.3 is refused", strings.Replace(good, `"1.6"`, `"1.3"`, 1), "want 1.4 to 1.6"},
		{"an SBOM that says not what it describes is refused", `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}`, "metadata.component"},
		{"a component without a name is refused", strings.Replace(good, `"name":"std"`, `"name":""`, 1), "components[0] needs a name"},
		{"a component of a type CycloneDX lacks is refused", strings.Replace(good, `"type":"library"`, `"type":"gadget"`, 1), `components[0] (std) has type "gadget"`},

		{"SPDX 2.2 is refused naming the version read", edit(t, spdx, "spdxVersion", "SPDX-2.2"), `spdxVersion "SPDX-2.2": want "SPDX-2.3"`},
		{"SPDX 3.0 JSON-LD is refused", `{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","spdxVersion":"SPDX-3.0"}`, `want "SPDX-2.3"`},
		{"another data licence is refused", edit(t, spdx, "dataLicense", "MIT"), `dataLicense "MIT": want "CC0-1.0"`},
		{"a document SPDXID other than SPDXRef-DOCUMENT is refused", edit(t, spdx, "SPDXID", "SPDXRef-ME"), `SPDXID "SPDXRef-ME"`},
		{"an SPDXID without its prefix is refused by the library", edit(t, spdx, "packages.0.SPDXID", "gcc"), "SPDX"},
		{"a document without a name is refused", edit(t, spdx, "name", nil), "no name"},
		{"a relative namespace is refused", edit(t, spdx, "documentNamespace", "acme/thermo"), "documentNamespace \"acme/thermo\": want an absolute URI"},
		{"a namespace with a fragment is refused", edit(t, spdx, "documentNamespace", "https://acme.example/thermo#1"), "without '#'"},
		{"a document without creators is refused", edit(t, spdx, "creationInfo.creators", []any{}), "at least one creator"},
		{"a creation time that is not RFC 3339 is refused", edit(t, spdx, "creationInfo.created", "14/11/2023"), `creationInfo.created "14/11/2023"`},
		{"a package without a name is refused", edit(t, spdx, "packages.1.name", ""), "packages[1] needs a name"},
		{"a package without a download location is refused", edit(t, spdx, "packages.0.downloadLocation", nil), "packages[0] (binutils-arm-none-eabi) needs a downloadLocation"},
		{"a file without a SHA1 is refused", edit(t, spdx, "files.2.checksums", []any{map[string]any{"algorithm": "SHA256", "checksumValue": "00"}}), "files[2] (firmware/firmware.bin) needs a SHA1"},
		{"an SPDXID used twice is refused", edit(t, spdx, "files.1.SPDXID", "SPDXRef-Package-deb-binutils-arm-none-eabi-159e3c50ea59228c"), "is used twice"},
		{"a relationship naming an element the document lacks is refused", edit(t, spdx, "relationships.0.relatedSpdxElement", "SPDXRef-Nowhere"), `names "SPDXRef-Nowhere"`},
		{"a document that says not what it describes is refused", edit(t, spdx, "relationships", []any{}), "what does the document describe"},
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
	t.Run("the real generators' outputs pass unchanged through the edits' round trip", func(t *testing.T) {
		if _, err := sbom.Parse(bytes.NewReader([]byte(edit(t, spdx, "name", "acme-thermo-firmware")))); err != nil {
			t.Fatal(err)
		}
	})
}
