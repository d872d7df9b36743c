package device_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// deviceState is everything a refused update must leave alone: the slots,
// "current", release.json, the pinned root and config, partial downloads.
// The TUF cache under StateDir/tuf may only move forward (checked apart);
// state.json records each check's answer, so it is left out too.
func deviceState(t *testing.T, cfg device.Config) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range []string{cfg.InstallDir, cfg.StateDir} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if os.IsNotExist(err) && p == root {
				return nil
			}
			if err != nil {
				return err
			}
			if d.IsDir() && p == filepath.Join(cfg.StateDir, "tuf") {
				return fs.SkipDir
			}
			if p == filepath.Join(cfg.StateDir, "state.json") {
				return nil
			}
			switch {
			case d.Type()&fs.ModeSymlink != 0:
				link, _ := os.Readlink(p)
				out[p] = "-> " + link
			case d.IsDir():
				out[p] = "dir"
			default:
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				out[p] = hex.EncodeToString(sum[:])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameState(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed: %q → %q", p, v, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s appeared", p)
		}
	}
}

func TestSpoofedOffersAreRefusedOnTheSignedMetadata(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		fresh   bool // nothing installed yet; otherwise the device runs demo-cam 2.0.0
		publish func(reg *testRegistry) (*device.Offer, error)
		spoof   func(o device.Offer, other, older *device.Offer) device.Offer
		want    string
	}{
		{
			name: "another product's target offered as this product's update is refused",
			spoof: func(_ device.Offer, other, _ *device.Offer) device.Offer {
				o := *other
				o.Product, o.Version = "demo-cam", "3.0.0"
				return o
			},
			want: "signed for product other-cam, this device runs product demo-cam",
		},
		{
			name:  "another product's target offered to a fresh device is refused by its device id",
			fresh: true,
			spoof: func(_ device.Offer, other, _ *device.Offer) device.Offer {
				o := *other
				o.Product = "demo-cam"
				return o
			},
			want: "not for this device (cam-0001)",
		},
		{
			name: "an older release offered as a newer version is refused as a downgrade",
			spoof: func(_ device.Offer, _, older *device.Offer) device.Offer {
				o := *older
				o.Version = "3.0.0"
				return o
			},
			want: "runs 2.0.0 and the signed metadata allows no downgrade",
		},
		{
			name: "a community release offered as vendor firmware still needs the owner's opt-in",
			publish: func(reg *testRegistry) (*device.Offer, error) {
				return reg.publishWith("3.0.0", firmware("3.0.0"), release{community: true, risk: "no vendor cloud"})
			},
			spoof: func(o device.Offer, _, _ *device.Offer) device.Offer { o.Community = false; return o },
			want:  "community release (so says its signed metadata)",
		},
		{
			name:  "the installed version offered as 999.0.0 is refused and not recorded",
			spoof: func(o device.Offer, _, _ *device.Offer) device.Offer { o.Version = "999.0.0"; return o },
			want:  "already runs 2.0.0",
		},
		{
			name: "a testing release offered on stable is refused",
			publish: func(reg *testRegistry) (*device.Offer, error) {
				return reg.publishWith("3.0.0", firmware("3.0.0"), release{channel: "testing"})
			},
			spoof: func(o device.Offer, _, _ *device.Offer) device.Offer { o.Channel = "stable"; return o },
			want:  "signed for channel testing, this device follows stable",
		},
		{
			name: "a release whose minimum version the device does not meet is refused",
			publish: func(reg *testRegistry) (*device.Offer, error) {
				return reg.publishWith("3.0.0", firmware("3.0.0"), release{minVersion: "2.5.0"})
			},
			spoof: func(o device.Offer, _, _ *device.Offer) device.Offer { o.MinVersion = ""; return o },
			want:  "only over 2.5.0 or newer",
		},
		{
			name: "a target without signed release fields is refused",
			publish: func(reg *testRegistry) (*device.Offer, error) {
				return reg.publishWith("3.0.0", firmware("3.0.0"), release{unsigned: true})
			},
			spoof: func(o device.Offer, _, _ *device.Offer) device.Offer { return o },
			want:  "carries no signed release fields",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t)
			cfg := deviceConfig(t, reg)
			initDevice(t, reg, cfg)
			other, err := reg.publishWith("1.0.0", firmware("other 1.0.0"), release{product: "other-cam", deviceIDs: []string{"other-0001"}})
			if err != nil {
				t.Fatal(err)
			}
			older, err := reg.publish("1.0.0", firmware("1.0.0"), false, "")
			if err != nil {
				t.Fatal(err)
			}
			current, err := reg.publish("2.0.0", firmware("2.0.0"), false, "")
			if err != nil {
				t.Fatal(err)
			}
			from := "0"
			if !tc.fresh {
				if res, err := device.Update(ctx, cfg, ""); err != nil || res.Version != "2.0.0" {
					t.Fatalf("honest update: %+v %v", res, err)
				}
				from = ""
			}
			offer := current
			if tc.publish != nil {
				if offer, err = tc.publish(reg); err != nil {
					t.Fatal(err)
				}
			}
			reg.spoof(tc.spoof(*offer, other, older))
			reports := len(reg.gotReports())
			before := deviceState(t, cfg)

			_, err = device.Update(ctx, cfg, from)
			if !errs.Is(err, errs.Forbidden) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Update with a spoofed offer: err = %v, want forbidden saying %q", err, tc.want)
			}
			sameState(t, before, deviceState(t, cfg))
			if got := reg.gotReports(); len(got) != reports {
				t.Errorf("a refused offer sent reports: %+v", got[reports:])
			}
		})
	}
}

func TestTheRecordedVersionIsTheSignedOne(t *testing.T) {
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	o, err := reg.publish("1.0.0", firmware("1.0.0"), false, "")
	if err != nil {
		t.Fatal(err)
	}
	spoofed := *o
	spoofed.Version, spoofed.ReleaseID, spoofed.Product = "999.0.0", "rel_spoofed", "another"
	reg.spoof(spoofed)
	res, err := device.Update(context.Background(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := device.Current(cfg); res.Version != "1.0.0" || v != "1.0.0" || res.ReleaseID != "rel_1.0.0" || res.Product != "demo-cam" {
		t.Fatalf("installed %+v, recorded %q; want the signed demo-cam 1.0.0 (rel_1.0.0)", res, v)
	}
	if r := reg.gotReports(); len(r) != 1 || r[0].Version != "1.0.0" || r[0].ReleaseID != "rel_1.0.0" {
		t.Fatalf("reports = %+v, want the signed version and release", r)
	}
}

func TestASignedRollbackAllowsAnOlderVersion(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if _, err := reg.publish("2.0.0", firmware("2.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := device.Update(ctx, cfg, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.publishWith("1.5.0", firmware("1.5.0"), release{rollback: &device.SignedRollback{MaxFrom: "2.0.0", Reason: "2.0.0 bricks rev A"}}); err != nil {
		t.Fatal(err)
	}
	res, err := device.Update(ctx, cfg, "")
	if err != nil || res.Version != "1.5.0" {
		t.Fatalf("Update to a signed rollback: %+v %v", res, err)
	}
}

func TestUpdateFromTheSignedMetadataAlone(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	reg.noUpdateAPI = true
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.publishWith("1.2.0", firmware("1.2.0"), release{minVersion: "1.1.0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.publishWith("1.3.0", firmware("1.3.0"), release{channel: "testing"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.publishWith("9.0.0", firmware("other 9.0.0"), release{product: "other-cam"}); err != nil {
		t.Fatal(err)
	}

	t.Run("a device that does not know its product says how to tell it", func(t *testing.T) {
		cfg := deviceConfig(t, reg)
		initDevice(t, reg, cfg)
		if _, err := device.Update(ctx, cfg, ""); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "--product") {
			t.Fatalf("err = %v, want invalid naming --product", err)
		}
	})
	t.Run("a device of the product takes each newest release its version allows", func(t *testing.T) {
		cfg := deviceConfig(t, reg)
		cfg.Product = "demo-cam"
		initDevice(t, reg, cfg)
		cfg.Product = "" // stored by Init
		for _, want := range []string{"1.0.0", "1.0.0"} {
			res, err := device.Update(ctx, cfg, "")
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := device.Current(cfg); v != want {
				t.Fatalf("runs %q after %+v, want %s (1.2.0 needs 1.1.0 first, 1.3.0 is on testing)", v, res, want)
			}
		}
		if _, err := reg.publish("1.1.0", firmware("1.1.0"), false, ""); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"1.1.0", "1.2.0"} {
			if res, err := device.Update(ctx, cfg, ""); err != nil || res.Version != want {
				t.Fatalf("Update: %+v %v, want %s", res, err, want)
			}
		}
	})
	t.Run("with FromMetadata the offer is not even asked for", func(t *testing.T) {
		reg.mu.Lock()
		reg.noUpdateAPI = false
		asked := len(reg.updateRequests)
		reg.mu.Unlock()
		cfg := deviceConfig(t, reg)
		cfg.Product, cfg.FromMetadata, cfg.Channel = "demo-cam", true, "testing"
		initDevice(t, reg, cfg)
		if res, err := device.Update(ctx, cfg, "1.2.0"); err != nil || res.Version != "1.3.0" {
			t.Fatalf("Update on testing: %+v %v, want 1.3.0", res, err)
		}
		reg.mu.Lock()
		defer reg.mu.Unlock()
		if len(reg.updateRequests) != asked {
			t.Fatalf("the update API was asked %d times", len(reg.updateRequests)-asked)
		}
	})
}

func TestInitRefusesToReplaceAPinnedRootWithoutForce(t *testing.T) {
	ctx := context.Background()
	reg, other := startRegistry(t), startRegistry(t)
	cfg := deviceConfig(t, reg)
	initDevice(t, reg, cfg)
	if _, err := reg.publish("1.0.0", firmware("1.0.0"), false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := device.Update(ctx, cfg, ""); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(cfg.StateDir, "tuf", "timestamp.json")
	if _, err := os.Stat(cache); err != nil {
		t.Fatalf("no verified timestamp cached after an update: %v", err)
	}

	t.Run("a different root is refused, saying what is pinned and how to replace it", func(t *testing.T) {
		before := deviceState(t, cfg)
		err := device.Init(ctx, cfg, other.root(), false)
		if !errs.Is(err, errs.Conflict) || !strings.Contains(err.Error(), "already pins TUF root version 1") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("err = %v, want a conflict naming the pinned root and --force", err)
		}
		sameState(t, before, deviceState(t, cfg))
		if _, err := os.Stat(cache); err != nil {
			t.Fatalf("the refused init wiped the rollback state: %v", err)
		}
	})
	t.Run("trust on first use from another registry is refused too", func(t *testing.T) {
		c := cfg
		c.Registry, c.TrustOnFirstUse = other.srv.URL, true
		if err := device.Init(ctx, c, nil, false); !errs.Is(err, errs.Conflict) {
			t.Fatalf("err = %v, want conflict", err)
		}
	})
	t.Run("the same root again keeps the rollback state and updates the settings", func(t *testing.T) {
		c := cfg
		c.Channel = "testing"
		if err := device.Init(ctx, c, reg.root(), true); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(cache); err != nil {
			t.Fatalf("re-init with the same root wiped the rollback state: %v", err)
		}
		b, _ := os.ReadFile(filepath.Join(cfg.StateDir, "config.json"))
		if !strings.Contains(string(b), `"testing"`) || !strings.Contains(string(b), `"accept_community": true`) {
			t.Fatalf("config after re-init: %s", b)
		}
	})
	t.Run("with ReplaceRoot the new root is pinned and the old metadata forgotten", func(t *testing.T) {
		c := cfg
		c.ReplaceRoot = true
		if err := device.Init(ctx, c, other.root(), false); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(cfg.StateDir, "root.json")); string(b) != string(other.root()) {
			t.Fatal("the new root was not pinned")
		}
		if _, err := os.Stat(cache); !os.IsNotExist(err) {
			t.Fatalf("metadata verified under the old root is still cached: %v", err)
		}
	})
}
