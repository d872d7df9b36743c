package seed

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry"
	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/lifecycle"
	"github.com/afterlife-oss/afterlife/registry/mirror"
)

// heldProducts reads the mirror's products (api/products/<id>.json, the
// origin's unsigned API answers) and holds each to what the verified TUF
// metadata signs of it: its OpenEoX support-period document (a signed
// target, <id>/lifecycle/openeox.json) names the product's id, vendor,
// model and device ids, and every release target names its product. A
// product that no signed document describes, one whose fields differ from
// its document, and a product a signed target names but the mirror does
// not list are refused, naming the file. What nothing signs (fwupd GUIDs,
// risk notes, status, support dates) is taken as the mirror has it.
func heldProducts(dir string, signed map[string]mirror.SignedTarget) ([]catalog.Product, error) {
	files, err := filepath.Glob(filepath.Join(dir, mirror.APIDir, "products", "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var out []catalog.Product
	listed := map[string]bool{}
	for _, f := range files {
		name := rel(dir, f)
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		var p catalog.Product
		if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
			return nil, errs.Wrap(errs.Invalid, err, "seed: %s is not a product", name)
		}
		if path.Base(name) != p.ID+".json" {
			return nil, errs.E(errs.Invalid, "seed: %s describes product %q", name, p.ID)
		}
		if err := holdProduct(dir, name, p, signed); err != nil {
			return nil, err
		}
		listed[p.ID] = true
		out = append(out, p)
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range signed {
			if !yield(n) {
				return
			}
		}
	}) {
		t := signed[n]
		if t.Meta.Product != "" && !listed[t.Meta.Product] {
			return nil, errs.E(errs.Invalid, "seed: target %s signs product %q, which %s/products/ does not hold", n, t.Meta.Product, mirror.APIDir)
		}
	}
	return out, nil
}

func holdProduct(dir, name string, p catalog.Product, signed map[string]mirror.SignedTarget) error {
	target := registry.LifecyclePath(p.ID, registry.OpenEoXFile)
	t, ok := signed[target]
	if !ok {
		return errs.E(errs.Invalid, "seed: %s: no signed support-period document (target %s) describes product %s: nothing signed holds its device ids", name, target, p.ID)
	}
	b, err := mirror.ReadTarget(dir, t)
	if err != nil {
		return fmt.Errorf("seed: %s: %w", name, err)
	}
	var w lifecycle.Wrapper
	if err := json.Unmarshal(b, &w); err != nil || w.Schema != lifecycle.WrapperSchema {
		return errs.Wrap(errs.Invalid, err, "seed: target %s is not a wrapped OpenEoX document", target)
	}
	id := w.Product
	differ := func(field string, mirrored, signedAs any) error {
		return errs.E(errs.Invalid, "seed: %s says %s %v, the signed target %s says %v", name, field, mirrored, target, signedAs)
	}
	switch {
	case id.ID != p.ID:
		return differ("id", p.ID, id.ID)
	case id.Vendor != p.Vendor:
		return differ("vendor", p.Vendor, id.Vendor)
	case id.Model != p.Model:
		return differ("model", p.Model, id.Model)
	case !sameSet(id.DeviceIDs, p.DeviceIDs):
		return differ("device ids", "["+strings.Join(p.DeviceIDs, " ")+"]", "["+strings.Join(id.DeviceIDs, " ")+"]")
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}
