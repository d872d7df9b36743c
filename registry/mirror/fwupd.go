package mirror

import (
	"encoding/xml"
	"path"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// fwupdDoc is the part of the fwupd remote's AppStream metadata a mirror
// reads: where each release's cabinet is and its container checksum.
type fwupdDoc struct {
	Components []struct {
		Releases []struct {
			Location  string `xml:"location"`
			Checksums []struct {
				Type   string `xml:"type,attr"`
				Target string `xml:"target,attr"`
				Value  string `xml:",chardata"`
			} `xml:"checksum"`
		} `xml:"releases>release"`
	} `xml:"component"`
}

func parseCabs(b []byte) ([]cabRef, error) {
	var d fwupdDoc
	if err := xml.Unmarshal(b, &d); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "mirror: the fwupd metadata is not AppStream XML")
	}
	var out []cabRef
	for _, c := range d.Components {
		for _, r := range c.Releases {
			name := path.Base(r.Location)
			if !safeID(name) {
				continue
			}
			ref := cabRef{Name: name}
			for _, cs := range r.Checksums {
				if cs.Type == "sha256" && cs.Target == "container" {
					ref.SHA256 = cs.Value
				}
			}
			out = append(out, ref)
		}
	}
	return out, nil
}
