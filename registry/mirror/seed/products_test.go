package seed

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/registry/catalog"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/lifecycle"
	"github.com/afterlife-oss/afterlife/registry/mirror"
)

// TestProductsAreHeldToTheirSignedSupportPeriodDocument builds a mirror's
// products and signed OpenEoX targets on disk and checks which unsigned
// product copies an import takes and which it refuses, naming the file.
func TestProductsAreHeldToTheirSignedSupportPeriodDocument(t *testing.T) {
	cam := catalog.Product{ID: "acme-cam", Vendor: "acme", Model: "Cam", DeviceIDs: []string{"usb:acme:cam", "dt:acme,cam"}}
	doc := func(p catalog.Product) []byte {
		b, err := lifecycle.OpenEoX(lifecycle.Facts{Product: lifecycle.Product{ID: p.ID, Vendor: p.Vendor, Model: p.Model, DeviceIDs: p.DeviceIDs}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		listed  []catalog.Product // api/products/
		signed  catalog.Product   // what the signed document says
		noDoc   bool
		release string // a release target signs this product
		tamper  bool   // the document's bytes change after verification
		refused string // "" when taken
	}{
		{name: "a product its document describes is taken, device ids in any order", listed: []catalog.Product{{ID: "acme-cam", Vendor: "acme", Model: "Cam", DeviceIDs: []string{"dt:acme,cam", "usb:acme:cam"}}}, signed: cam, release: "acme-cam"},
		{name: "another device id is refused", listed: []catalog.Product{{ID: "acme-cam", Vendor: "acme", Model: "Cam", DeviceIDs: []string{"usb:acme:cam", "usb:other:cam"}}}, signed: cam, refused: "api/products/acme-cam.json says device ids"},
		{name: "a device id missing is refused", listed: []catalog.Product{{ID: "acme-cam", Vendor: "acme", Model: "Cam", DeviceIDs: []string{"usb:acme:cam"}}}, signed: cam, refused: "says device ids"},
		{name: "another model is refused", listed: []catalog.Product{{ID: "acme-cam", Vendor: "acme", Model: "Cam 2", DeviceIDs: cam.DeviceIDs}}, signed: cam, refused: "says model Cam 2, the signed target acme-cam/lifecycle/openeox.json says Cam"},
		{name: "another vendor is refused", listed: []catalog.Product{{ID: "acme-cam", Vendor: "evil", Model: "Cam", DeviceIDs: cam.DeviceIDs}}, signed: cam, refused: "says vendor evil"},
		{name: "a product no signed document describes is refused", listed: []catalog.Product{cam}, signed: cam, noDoc: true, refused: "no signed support-period document"},
		{name: "a product a release target signs but the mirror does not list is refused", listed: []catalog.Product{cam}, signed: cam, release: "acme-tv", refused: `signs product "acme-tv"`},
		{name: "a document changed after verification is refused", listed: []catalog.Product{cam}, signed: cam, tamper: true, refused: "is not the file target acme-cam/lifecycle/openeox.json signs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(rel string, b []byte) {
				p := filepath.Join(dir, filepath.FromSlash(rel))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range tc.listed {
				b, _ := json.Marshal(p)
				write("api/products/"+p.ID+".json", b)
			}
			signed := map[string]mirror.SignedTarget{}
			if !tc.noDoc {
				b := doc(tc.signed)
				s := sha256.Sum256(b)
				sum := hex.EncodeToString(s[:])
				name := "acme-cam/lifecycle/openeox.json"
				signed[name] = mirror.SignedTarget{Name: name, Length: int64(len(b)), SHA256: sum, Meta: device.TargetMeta{Product: "acme-cam"}}
				if tc.tamper {
					b = append(b, ' ')
				}
				write("tuf/targets/acme-cam/lifecycle/"+sum+".openeox.json", b)
			}
			if tc.release != "" {
				name := tc.release + "/1.0.0/firmware.bin"
				signed[name] = mirror.SignedTarget{Name: name, Length: 1, SHA256: strings.Repeat("0", 64), Meta: device.TargetMeta{Product: tc.release, ReleaseID: "r1"}}
			}
			got, err := heldProducts(dir, signed)
			if tc.refused == "" {
				if err != nil || len(got) != len(tc.listed) {
					t.Fatalf("took %d products (%v), want %d", len(got), err, len(tc.listed))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refused) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.refused)
			}
		})
	}
}
