package sbom

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// parseSPDX reads an SPDX 2.3 JSON document with tools-golang and checks
// what the specification makes mandatory and the library leaves to its
// callers: the document's SPDXID, data licence, name, namespace (an
// absolute URI without a fragment) and creation info (creators, an RFC
// 3339 time); every package's name, SPDXID and download location; every
// file's name, SPDXID and SHA-1; SPDXIDs used once; relationships naming
// elements the document has; and what the document describes (its
// DESCRIBES relationships, spdxlib), which becomes the subject. Packages
// and files are listed as components, with their SHA-256 when given.
func parseSPDX(data []byte, version string) (Summary, error) {
	if version != v2_3.Version {
		return Summary{}, errs.E(errs.Invalid, "sbom: spdxVersion %q: want %q (SPDX 2.3 JSON)", version, v2_3.Version)
	}
	var doc v2_3.Document
	if err := spdxjson.ReadInto(bytes.NewReader(data), &doc); err != nil {
		return Summary{}, errs.Wrap(errs.Invalid, err, "sbom: SPDX")
	}
	bad := func(format string, args ...any) (Summary, error) {
		return Summary{}, errs.E(errs.Invalid, "sbom: SPDX: "+format, args...)
	}
	switch {
	case doc.SPDXIdentifier != "DOCUMENT":
		return bad("SPDXID %q: want \"SPDXRef-DOCUMENT\"", "SPDXRef-"+doc.SPDXIdentifier)
	case doc.DataLicense != v2_3.DataLicense:
		return bad("dataLicense %q: want %q", doc.DataLicense, v2_3.DataLicense)
	case strings.TrimSpace(doc.DocumentName) == "":
		return bad("no name: the document needs one")
	}
	if u, err := url.Parse(doc.DocumentNamespace); err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(doc.DocumentNamespace, "#") {
		return bad("documentNamespace %q: want an absolute URI without '#'", doc.DocumentNamespace)
	}
	ci := doc.CreationInfo
	if ci == nil || len(ci.Creators) == 0 {
		return bad("creationInfo needs at least one creator")
	}
	if _, err := time.Parse(time.RFC3339, ci.Created); err != nil {
		return bad("creationInfo.created %q: want an RFC 3339 time such as 2023-11-14T22:13:20Z", ci.Created)
	}

	elements := map[common.ElementID]Component{}
	seen := func(id common.ElementID, where string) error {
		if _, dup := elements[id]; dup || id == doc.SPDXIdentifier {
			return errs.E(errs.Invalid, "sbom: SPDX: %s: SPDXID %q is used twice", where, "SPDXRef-"+id)
		}
		return nil
	}
	var order []common.ElementID
	for i, p := range doc.Packages {
		where := fmt.Sprintf("packages[%d]", i)
		switch {
		case p == nil:
			return bad("%s is null", where)
		case strings.TrimSpace(p.PackageName) == "":
			return bad("%s needs a name", where)
		case p.PackageDownloadLocation == "":
			return bad("%s (%s) needs a downloadLocation (NOASSERTION when unknown)", where, p.PackageName)
		}
		if err := seen(p.PackageSPDXIdentifier, where); err != nil {
			return Summary{}, err
		}
		c := Component{Name: p.PackageName, Version: p.PackageVersion, Type: purpose(p.PrimaryPackagePurpose), Digest: sha256Of(p.PackageChecksums)}
		for _, ref := range p.PackageExternalReferences {
			if ref != nil && ref.RefType == common.TypePackageManagerPURL {
				c.PURL = ref.Locator
			}
		}
		elements[p.PackageSPDXIdentifier] = c
		order = append(order, p.PackageSPDXIdentifier)
	}
	for i, f := range doc.Files {
		where := fmt.Sprintf("files[%d]", i)
		switch {
		case f == nil:
			return bad("%s is null", where)
		case strings.TrimSpace(f.FileName) == "":
			return bad("%s needs a fileName", where)
		case !slices.ContainsFunc(f.Checksums, func(c common.Checksum) bool { return c.Algorithm == common.SHA1 && c.Value != "" }):
			return bad("%s (%s) needs a SHA1 checksum", where, f.FileName)
		}
		if err := seen(f.FileSPDXIdentifier, where); err != nil {
			return Summary{}, err
		}
		elements[f.FileSPDXIdentifier] = Component{Name: f.FileName, Type: "file", Digest: sha256Of(f.Checksums)}
		order = append(order, f.FileSPDXIdentifier)
	}
	for i, r := range doc.Relationships {
		for _, ref := range []common.DocElementID{r.RefA, r.RefB} {
			if ref.SpecialID != "" || ref.DocumentRefID != "" || ref.ElementRefID == doc.SPDXIdentifier {
				continue
			}
			if _, ok := elements[ref.ElementRefID]; !ok {
				return bad("relationships[%d] (%s) names %q, which the document does not have", i, r.Relationship, "SPDXRef-"+ref.ElementRefID)
			}
		}
	}
	described, err := spdxlib.GetDescribedPackageIDs(&doc)
	if err != nil {
		return bad("what does the document describe? %v", err)
	}
	subject, ok := elements[described[0]]
	if !ok {
		return bad("it describes %q, which is not one of its packages or files", "SPDXRef-"+described[0])
	}
	s := Summary{Format: "SPDX 2.3", Subject: subject, Components: []Component{}}
	for _, id := range order {
		if id != described[0] {
			s.add(elements[id])
		}
	}
	return s, nil
}

// purpose is a package's primaryPackagePurpose as the release page shows
// a component's type ("FIRMWARE" → "firmware").
func purpose(p string) string {
	return strings.ToLower(strings.ReplaceAll(p, "_", "-"))
}

// sha256Of is the SHA-256 among checksums, as "sha256:<hex>", or "".
func sha256Of(sums []common.Checksum) string {
	for _, c := range sums {
		if c.Algorithm == common.SHA256 && c.Value != "" {
			return "sha256:" + strings.ToLower(c.Value)
		}
	}
	return ""
}
