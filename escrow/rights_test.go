package escrow

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

var rightsFiles = map[string]string{
	"docs/board.pdf":       "%PDF board schematics",
	"drivers/eth/eth.c":    "int eth_init(void) { return 0; }\n",
	"keys/signing.key":     "-----BEGIN KEY-----\nvendor secret\n-----END KEY-----\n",
	"drivers/eth/LICENSE":  "vendor permission\n",
	"src/main.c":           "int main(void) { return 0; }\n",
	"src/vendor-blob.bin":  "\x00\x01proprietary",
	"toolchain/README.txt": "use gcc 12\n",
}

var rightsRules = []manifest.RightsRule{
	{Pattern: "**", Rights: manifest.Public},
	{Pattern: "drivers/**", Rights: manifest.BuildOnly},
	{Pattern: "drivers/*/LICENSE", Rights: manifest.Public},
	{Pattern: "keys/**", Rights: manifest.Private},
	{Pattern: "src/*.bin", Rights: manifest.BuildOnly},
}

const grant = "Acme Corp permits redistribution of the files marked public under CC-BY-4.0, and the use of build-only files to build firmware for the Acme Cam 200."

func digestOf(path string) blob.Digest {
	return blob.Digest("sha256:" + hexSum([]byte(rightsFiles[path])))
}

// TestAReleasedDepositServesEachFileAsItsRightsClassAllows holds the
// rights classes on both backends: public files are published, build-only
// and private ones are refused to anonymous, maintainer, builder and
// other vendors' callers, private files never reach the blob store in
// plaintext, and the vendor and admins read everything.
func TestAReleasedDepositServesEachFileAsItsRightsClassAllows(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d, signed := e.depositReq(t, acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(rightsFiles), Rights: rightsRules, Grant: grant}, rightsFiles)
		if e.state(t, d.ID) != Released {
			t.Fatal("an immediate deposit was not released")
		}
		want := map[string]manifest.Rights{
			"docs/board.pdf": manifest.Public, "drivers/eth/eth.c": manifest.BuildOnly, "drivers/eth/LICENSE": manifest.Public,
			"keys/signing.key": manifest.Private, "src/main.c": manifest.Public, "src/vendor-blob.bin": manifest.BuildOnly,
			"toolchain/README.txt": manifest.Public,
		}
		maintainer := principal.Principal{TokenID: "t-m", Name: "maint", Role: principal.Maintainer, Org: "acme"}
		callers := []struct {
			name  string
			p     principal.Principal
			owner bool
		}{
			{"an anonymous caller", nobody, false},
			{"a maintainer of the vendor's org", maintainer, false},
			{"a builder outside a job", builder, false},
			{"a vendor of another org", globex, false},
			{"the depositing vendor", acme, true},
			{"an admin", admin, true},
		}
		for _, c := range callers {
			for path, class := range want {
				readable := c.owner || class == manifest.Public
				t.Run(c.name+" reading a "+string(class)+" file "+path, func(t *testing.T) {
					f, err := e.svc.Open(ctx, c.p, d.ID, path)
					if !readable {
						wantKind(t, err, errs.NotFound)
						return
					}
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					b, _ := io.ReadAll(f)
					f.Close()
					if string(b) != rightsFiles[path] || f.Rights != class {
						t.Fatalf("read %q as %s", b, f.Rights)
					}
				})
			}
		}
		t.Run("anyone sees the manifest with each file's class, the rules and the grant", func(t *testing.T) {
			got, err := e.svc.Get(ctx, nobody, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, en := range got.Manifest {
				if en.Rights != want[en.Path] {
					t.Errorf("%s shown as %q, want %s", en.Path, en.Rights, want[en.Path])
				}
			}
			if got.Grant != grant || len(got.Rights) != len(rightsRules) {
				t.Fatalf("rights %v, grant %q", got.Rights, got.Grant)
			}
		})
		t.Run("only public content may be public anywhere", func(t *testing.T) {
			for path, class := range want {
				ok, err := e.svc.MayBePublic(ctx, digestOf(path))
				if err != nil || ok != (class == manifest.Public) {
					t.Errorf("MayBePublic(%s, %s) = %v, %v", path, class, ok, err)
				}
				_, released, err := e.svc.ReleasedFile(ctx, digestOf(path))
				if err != nil || released != (class == manifest.Public) {
					t.Errorf("ReleasedFile(%s, %s) = %v, %v", path, class, released, err)
				}
				_, rights, input, err := e.svc.BuildInput(ctx, digestOf(path))
				if err != nil || input != (class != manifest.Private) || (input && rights != class) {
					t.Errorf("BuildInput(%s, %s) = %s, %v, %v", path, class, rights, input, err)
				}
			}
		})
		t.Run("a private file never reaches the blob store in plaintext", func(t *testing.T) {
			if _, err := e.blobs.Stat(ctx, digestOf("keys/signing.key")); !errs.Is(err, errs.NotFound) {
				t.Fatalf("Stat of the private file's plaintext digest = %v, want NotFound", err)
			}
			if _, err := e.blobs.Stat(ctx, digestOf("drivers/eth/eth.c")); err != nil {
				t.Fatalf("the build-only file's plaintext is missing: builders cannot have it: %v", err)
			}
		})
		t.Run("the receipt lists the rules, the classes and the grant's digest", func(t *testing.T) {
			sj, _ := json.Marshal(signed)
			r, err := receipt.Verify(e.svc.ReceiptPublicKey(), sj)
			if err != nil {
				t.Fatal(err)
			}
			if r.Version != 2 || len(r.Rights) != len(rightsRules) || r.Rights[1].Rights != "build-only" ||
				r.Classes["public"] != 4 || r.Classes["build-only"] != 2 || r.Classes["private"] != 1 || r.GrantSHA256 != hexSum([]byte(grant)) {
				t.Fatalf("receipt = %+v", r)
			}
		})
		t.Run("no event names a rights class or a file", func(t *testing.T) {
			evs, err := e.svc.Events(ctx, acme, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				b, _ := json.Marshal(ev)
				for _, leak := range []string{"build-only", "private", "drivers/", "keys/", "Acme Corp permits"} {
					if bytes.Contains(b, []byte(leak)) {
						t.Errorf("event %s contains %q: %s", ev.Kind, leak, b)
					}
				}
			}
		})
	})
}

// TestADepositWithoutClassesPublishesNothingOnRelease: a vendor who says
// nothing about rights gets private files, which release publishes
// nowhere.
func TestADepositWithoutClassesPublishesNothingOnRelease(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d, _ := e.depositReq(t, acme, CreateRequest{Product: "demo-cam", Policy: "immediate", Manifest: entries(rightsFiles)}, rightsFiles)
		if e.state(t, d.ID) != Released {
			t.Fatal("an immediate deposit was not released")
		}
		for path := range rightsFiles {
			if _, err := e.svc.Open(ctx, nobody, d.ID, path); !errs.Is(err, errs.NotFound) {
				t.Errorf("anonymous Open(%s) = %v, want NotFound", path, err)
			}
			if ok, err := e.svc.MayBePublic(ctx, digestOf(path)); ok || err != nil {
				t.Errorf("MayBePublic(%s) = %v, %v", path, ok, err)
			}
			if _, _, ok, err := e.svc.BuildInput(ctx, digestOf(path)); ok || err != nil {
				t.Errorf("BuildInput(%s) = %v, %v", path, ok, err)
			}
			if _, err := e.blobs.Stat(ctx, digestOf(path)); !errs.Is(err, errs.NotFound) {
				t.Errorf("the plaintext of %s is in the blob store: %v", path, err)
			}
			f, err := e.svc.Open(ctx, acme, d.ID, path)
			if err != nil {
				t.Fatalf("the vendor cannot read its own private file %s: %v", path, err)
			}
			f.Close()
		}
	})
}
