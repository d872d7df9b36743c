package mirror

import (
	"crypto/x509"
	"encoding/xml"
	"os"
	"path"
	"path/filepath"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/fwupd/jcat"
)

// fwupdDoc is the part of the fwupd remote's AppStream metadata a mirror
// reads: where each release's cabinet is and its container checksum.
type fwupdDoc struct {
	Components []struct {
		Branch   string `xml:"branch"`
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
			ref := cabRef{Name: name, Branch: c.Branch}
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

// fwupd checks the mirrored fwupd remote: the metadata against every blob
// of its Jcat file (the sha256 and the PKCS#7 signature, chained to the
// CA certificate caPEM, or to the mirrored one when caPEM is nil: that
// checks the pair is intact, not who signed it), and every cabinet
// against the container sha256 the metadata states.
func (v *verifier) fwupd(caPEM []byte) {
	metaName := FwupdDir + "/firmware.xml.zst"
	meta, err := os.ReadFile(filepath.Join(v.dir, filepath.FromSlash(metaName)))
	if isNotExist(err) {
		return
	}
	if err != nil {
		v.r.fail(metaName, "unreadable: %v", err)
		return
	}
	jcatName := metaName + ".jcat"
	jb, ok := v.read(jcatName)
	if !ok {
		return
	}
	if caPEM == nil {
		if caPEM, ok = v.read(FwupdDir + "/afterlife-ca.pem"); !ok {
			return
		}
		v.r.FwupdCAFrom = FwupdDir + "/afterlife-ca.pem"
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		v.r.fail(FwupdDir+"/afterlife-ca.pem", "no PEM certificate")
		return
	}
	jf, err := jcat.Parse(jb)
	if err != nil {
		v.r.fail(jcatName, "%v", err)
		return
	}
	signed := false
	for _, it := range jf.Items {
		for _, b := range it.Blobs {
			if err := jcat.Verify(meta, b, roots); err != nil {
				v.r.fail(metaName, "%v", err)
				continue
			}
			signed = signed || b.Kind == jcat.PKCS7
		}
	}
	if !signed {
		v.r.fail(jcatName, "holds no PKCS#7 signature of the metadata")
	}
	cabs, err := cabsOf(meta)
	if err != nil {
		v.r.fail(metaName, "%v", err)
		return
	}
	for _, c := range cabs {
		rel := FwupdDir + "/cabs/" + c.Name
		got, _, err := hashFile(filepath.Join(v.dir, filepath.FromSlash(rel)))
		switch {
		case isNotExist(err):
			v.r.fail(rel, "missing")
		case err != nil || got != c.SHA256:
			v.r.fail(rel, "sha256 %s, the signed metadata states %s", got, c.SHA256)
		default:
			v.r.FwupdCabs++
		}
	}
}
