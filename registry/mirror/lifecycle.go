package mirror

import (
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Support-period documents: each product's OpenEoX and CLE-shaped
// lifecycle documents are signed TUF targets (<product>/lifecycle/<file>,
// docs/lifecycle.md), mirrored and checked as every target is. A mirror
// also serves them where the origin's API does, under api/ (the signed
// bytes, copied from the target), with the catalogue of them all.

// lifecycleCatalogueFile is the origin's /v1/lifecycle.
const lifecycleCatalogueFile = APIDir + "/lifecycle.json"

// lifecycleFile is where a mirror serves a product's support-period
// document, the origin's /v1/products/<product>/lifecycle/<file>.
func lifecycleFile(product, file string) string {
	return path.Join(APIDir, "products", product, "lifecycle", file)
}

// lifecycleTarget splits a support-period document's target path
// (<product>/lifecycle/<file>.json).
func lifecycleTarget(name string) (product, file string, ok bool) {
	product, file, ok = strings.Cut(name, "/lifecycle/")
	if !ok || !safeID(product) || !safeID(file) || !strings.HasSuffix(file, ".json") {
		return "", "", false
	}
	return product, file, true
}

// lifecycle copies every signed support-period document (already
// mirrored as a target) to its API path, and the catalogue.
func (p *puller) lifecycle(ctx context.Context, all []SignedTarget) error {
	for _, t := range all {
		product, file, ok := lifecycleTarget(t.Name)
		if !ok {
			continue
		}
		b, err := readMirror(p.f.dir, targetFile(t.Name, t.SHA256))
		if err != nil {
			return err
		}
		if err := p.f.save(lifecycleFile(product, file), b); err != nil {
			return err
		}
	}
	if _, err := p.f.copyDoc(ctx, "/v1/lifecycle", lifecycleCatalogueFile); err != nil && !errs.Is(err, errs.NotFound) {
		return err
	}
	return nil
}

// lifecycle checks each mirrored support-period document against the
// target that signs it, that every signed one is there, and that the
// catalogue states the signed digest and length of each document it
// lists (the catalogue itself is not signed).
func (v *verifier) lifecycle(signed map[string]SignedTarget) {
	want := map[string]SignedTarget{} // api path → its signed target
	for name, t := range signed {
		if product, file, ok := lifecycleTarget(name); ok {
			want[lifecycleFile(product, file)] = t
		}
	}
	root := filepath.Join(v.dir, APIDir, "products")
	_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || filepath.Base(filepath.Dir(p)) != "lifecycle" {
			return nil
		}
		sub, _ := filepath.Rel(v.dir, p)
		rel := filepath.ToSlash(sub)
		t, ok := want[rel]
		if !ok {
			v.r.fail(rel, "a support-period document the TUF metadata does not sign")
			return nil
		}
		v.r.LifecycleDocs++
		got, size, err := hashFile(p)
		if err != nil || size != t.Length || got != t.SHA256 {
			v.r.fail(rel, "support-period document: %d bytes with sha256 %s, target %s signs %d bytes with sha256 %s", size, got, t.Name, t.Length, t.SHA256)
		}
		return nil
	})
	for _, rel := range slices.Sorted(maps.Keys(want)) {
		if _, err := os.Stat(filepath.Join(v.dir, filepath.FromSlash(rel))); isNotExist(err) {
			v.r.fail(rel, "missing: target %s signs it", want[rel].Name)
		}
	}
	b, err := os.ReadFile(filepath.Join(v.dir, lifecycleCatalogueFile))
	if isNotExist(err) {
		return
	}
	if err != nil {
		v.r.fail(lifecycleCatalogueFile, "unreadable: %v", err)
		return
	}
	var cat struct {
		Products []struct {
			Product   string `json:"product"`
			Documents map[string]struct {
				Target string `json:"target"`
				SHA256 string `json:"sha256"`
				Length int64  `json:"length"`
			} `json:"documents"`
		} `json:"products"`
	}
	if err := json.Unmarshal(b, &cat); err != nil {
		v.r.fail(lifecycleCatalogueFile, "not a lifecycle catalogue: %v", err)
		return
	}
	for _, p := range cat.Products {
		for file, d := range p.Documents {
			if d.SHA256 == "" {
				continue // not signed yet when the catalogue was copied
			}
			t, ok := signed[d.Target]
			switch {
			case !ok:
				v.r.fail(lifecycleCatalogueFile, "lists %s of %s as target %s, which the TUF metadata does not sign", file, p.Product, d.Target)
			case t.SHA256 != d.SHA256 || t.Length != d.Length:
				v.r.fail(lifecycleCatalogueFile, "lists %s of %s with sha256 %s (%d bytes), target %s signs %s (%d bytes)", file, p.Product, d.SHA256, d.Length, d.Target, t.SHA256, t.Length)
			}
		}
	}
}
