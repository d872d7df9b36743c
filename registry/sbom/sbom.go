// Package sbom reads the SBOMs releases carry, each with its format's own
// library: CycloneDX JSON (github.com/CycloneDX/cyclonedx-go) and SPDX 2.3
// JSON (github.com/spdx/tools-golang). The registry refuses, at publish,
// an output of kind sbom it cannot read this way, naming the problem, and
// lists the components (CycloneDX) or packages (SPDX) of those it can on
// the release page. It must not fetch anything an SBOM points to.
package sbom

import (
	"encoding/json"
	"io"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// MaxSize bounds an SBOM the registry reads.
const MaxSize = 16 << 20

// maxComponents bounds how many components a release lists.
const maxComponents = 1000

// Component is one component (CycloneDX) or package or file (SPDX) an
// SBOM lists.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Type    string `json:"type,omitempty"`
	PURL    string `json:"purl,omitempty"`
	// Digest is the component's SHA-256 when the SBOM gives one
	// ("sha256:<hex>"): for a file, what it was made from.
	Digest string `json:"digest,omitempty"`
}

// Summary is what the registry keeps of an SBOM.
type Summary struct {
	Format     string      `json:"format"` // e.g. "CycloneDX 1.6", "SPDX 2.3"
	Subject    Component   `json:"subject"`
	Components []Component `json:"components"`
	Truncated  bool        `json:"truncated,omitempty"` // more components than listed
}

// add lists c unless the list is full.
func (s *Summary) add(c Component) {
	if len(s.Components) == maxComponents {
		s.Truncated = true
		return
	}
	s.Components = append(s.Components, c)
}

// Parse reads a CycloneDX JSON SBOM (spec 1.4 to 1.6) or an SPDX 2.3 JSON
// document, telling them apart by their own version field (bomFormat,
// spdxVersion), and checks what each specification requires and the
// registry relies on (see parseCycloneDX and parseSPDX). Errors are of
// kind Invalid (TooLarge above MaxSize) and name the problem.
func Parse(r io.Reader) (Summary, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return Summary{}, err
	}
	if len(data) > MaxSize {
		return Summary{}, errs.E(errs.TooLarge, "sbom: larger than %d bytes", MaxSize)
	}
	var head struct {
		BOMFormat   *string `json:"bomFormat"`
		SpecVersion string  `json:"specVersion"`
		SPDXVersion *string `json:"spdxVersion"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Summary{}, errs.Wrap(errs.Invalid, err, "sbom: not JSON")
	}
	switch {
	case head.BOMFormat != nil && head.SPDXVersion != nil:
		return Summary{}, errs.E(errs.Invalid, "sbom: has both bomFormat (CycloneDX) and spdxVersion (SPDX): want one format")
	case head.BOMFormat != nil:
		return parseCycloneDX(data, *head.BOMFormat, head.SpecVersion)
	case head.SPDXVersion != nil:
		return parseSPDX(data, *head.SPDXVersion)
	}
	return Summary{}, errs.E(errs.Invalid, "sbom: neither bomFormat nor spdxVersion: want a CycloneDX JSON SBOM (bomFormat \"CycloneDX\", specVersion 1.4 to 1.6) or an SPDX 2.3 JSON document (spdxVersion \"SPDX-2.3\")")
}
