package sbom

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// parseCycloneDX reads a CycloneDX JSON SBOM with cyclonedx-go and checks
// bomFormat "CycloneDX", a specVersion from 1.4 to 1.6, the component the
// SBOM describes (metadata.component, with a name and a type), and a name
// and a type for every component.
func parseCycloneDX(data []byte, bomFormat, specVersion string) (Summary, error) {
	if bomFormat != cdx.BOMFormat {
		return Summary{}, errs.E(errs.Invalid, "sbom: bomFormat %q: want \"CycloneDX\"", bomFormat)
	}
	if !slices.Contains([]string{"1.4", "1.5", "1.6"}, specVersion) {
		return Summary{}, errs.E(errs.Invalid, "sbom: CycloneDX specVersion %q: want 1.4 to 1.6", specVersion)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return Summary{}, errs.Wrap(errs.Invalid, err, "sbom: CycloneDX")
	}
	if bom.SpecVersion < cdx.SpecVersion1_4 || bom.SpecVersion > cdx.SpecVersion1_6 {
		return Summary{}, errs.E(errs.Invalid, "sbom: CycloneDX specVersion %s: want 1.4 to 1.6", bom.SpecVersion)
	}
	if bom.Metadata == nil || bom.Metadata.Component == nil {
		return Summary{}, errs.E(errs.Invalid, "sbom: CycloneDX: no metadata.component: the SBOM must say what it describes")
	}
	subject, err := cdxComponent(*bom.Metadata.Component, "metadata.component")
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Format: "CycloneDX " + bom.SpecVersion.String(), Subject: subject, Components: []Component{}}
	if bom.Components != nil {
		for i, c := range *bom.Components {
			comp, err := cdxComponent(c, fmt.Sprintf("components[%d]", i))
			if err != nil {
				return Summary{}, err
			}
			s.add(comp)
		}
	}
	return s, nil
}

// componentTypes are the component types CycloneDX 1.6 defines.
var componentTypes = []cdx.ComponentType{
	cdx.ComponentTypeApplication, cdx.ComponentTypeContainer, cdx.ComponentTypeCryptographicAsset, cdx.ComponentTypeData,
	cdx.ComponentTypeDevice, cdx.ComponentTypeDeviceDriver, cdx.ComponentTypeFile, cdx.ComponentTypeFirmware,
	cdx.ComponentTypeFramework, cdx.ComponentTypeLibrary, cdx.ComponentTypeMachineLearningModel, cdx.ComponentTypeOS,
	cdx.ComponentTypePlatform,
}

func cdxComponent(c cdx.Component, where string) (Component, error) {
	if c.Name == "" || c.Type == "" {
		return Component{}, errs.E(errs.Invalid, "sbom: CycloneDX: %s needs a name and a type", where)
	}
	if !slices.Contains(componentTypes, c.Type) {
		return Component{}, errs.E(errs.Invalid, "sbom: CycloneDX: %s (%s) has type %q, which CycloneDX does not define", where, c.Name, c.Type)
	}
	out := Component{Name: c.Name, Version: c.Version, Type: string(c.Type), PURL: c.PackageURL}
	if c.Hashes != nil {
		for _, h := range *c.Hashes {
			if h.Algorithm == cdx.HashAlgoSHA256 {
				out.Digest = "sha256:" + strings.ToLower(h.Value)
			}
		}
	}
	return out, nil
}
