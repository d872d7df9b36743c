// Package sbom reads the SBOMs releases carry, with the format's own
// library: CycloneDX JSON (github.com/CycloneDX/cyclonedx-go). The registry
// refuses, at publish, an output of kind sbom it cannot read this way, and
// lists the components of those it can on the release page.
package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// MaxSize bounds an SBOM the registry reads.
const MaxSize = 16 << 20

// maxComponents bounds how many components a release lists.
const maxComponents = 1000

// Component is one component an SBOM lists.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Type    string `json:"type,omitempty"`
	PURL    string `json:"purl,omitempty"`
}

// Summary is what the registry keeps of an SBOM.
type Summary struct {
	Format     string      `json:"format"` // e.g. "CycloneDX 1.6"
	Subject    Component   `json:"subject"`
	Components []Component `json:"components"`
	Truncated  bool        `json:"truncated,omitempty"` // more components than listed
}

// Parse reads a CycloneDX JSON SBOM (spec 1.4 to 1.6) and checks what the
// specification requires and the registry relies on: bomFormat
// "CycloneDX", a specVersion the library knows, the component the SBOM
// describes (metadata.component, with a name and a type), and a name and a
// type for every component.
func Parse(r io.Reader) (Summary, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Summary{}, err
	}
	if len(data) > MaxSize {
		return Summary{}, errs.E(errs.TooLarge, "sbom: larger than %d bytes", MaxSize)
	}
	var head struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Summary{}, errs.Wrap(errs.Invalid, err, "sbom: not JSON")
	}
	if head.BOMFormat != cdx.BOMFormat {
		return Summary{}, errs.E(errs.Invalid, "sbom: bomFormat %q: want a CycloneDX JSON SBOM (bomFormat \"CycloneDX\", specVersion 1.4 to 1.6)", head.BOMFormat)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return Summary{}, errs.Wrap(errs.Invalid, err, "sbom: CycloneDX")
	}
	if bom.SpecVersion < cdx.SpecVersion1_4 || bom.SpecVersion > cdx.SpecVersion1_6 {
		return Summary{}, errs.E(errs.Invalid, "sbom: CycloneDX specVersion %q: want 1.4 to 1.6", head.SpecVersion)
	}
	if bom.Metadata == nil || bom.Metadata.Component == nil {
		return Summary{}, errs.E(errs.Invalid, "sbom: no metadata.component: the SBOM must say what it describes")
	}
	subject, err := component(*bom.Metadata.Component, "metadata.component")
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Format: "CycloneDX " + bom.SpecVersion.String(), Subject: subject, Components: []Component{}}
	if bom.Components != nil {
		for i, c := range *bom.Components {
			comp, err := component(c, fmt.Sprintf("components[%d]", i))
			if err != nil {
				return Summary{}, err
			}
			if len(s.Components) == maxComponents {
				s.Truncated = true
				break
			}
			s.Components = append(s.Components, comp)
		}
	}
	return s, nil
}

func component(c cdx.Component, where string) (Component, error) {
	if c.Name == "" || c.Type == "" {
		return Component{}, errs.E(errs.Invalid, "sbom: %s needs a name and a type", where)
	}
	return Component{Name: c.Name, Version: c.Version, Type: string(c.Type), PURL: c.PackageURL}, nil
}
