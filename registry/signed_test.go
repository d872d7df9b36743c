package registry

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/tuf"
)

// signed reads the signed fields of a target as a device decodes them.
func signed[T any](t *testing.T, e *env, path string) (T, bool) {
	t.Helper()
	var v T
	listed, err := e.repo.Listed(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	tg, ok := listed[path]
	if !ok {
		return v, false
	}
	b, _ := json.Marshal(tg.Custom)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v, true
}

func listedVersions(t *testing.T, e *env) []string {
	t.Helper()
	list, ok := signed[device.ReleaseList](t, e, device.ReleaseListPath("demo-cam"))
	if !ok || list.Schema != device.SchemaVersion || list.Product != "demo-cam" {
		t.Fatalf("release list: %+v (listed %v)", list, ok)
	}
	var out []string
	for _, r := range list.Releases {
		out = append(out, r.Version+" "+r.Channel)
	}
	return out
}

func TestTargetsCarryTheirSignedFieldsAndEachProductItsReleaseList(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d, envOptions{})
		b1, _ := e.firmware("1.0.0")
		r1 := e.publish(PublishRequest{BuildID: b1, Version: "1.0.0", Channel: Stable})
		b2, _ := e.firmware("1.1.0")
		r2 := e.publish(PublishRequest{BuildID: b2, Version: "1.1.0", Channel: Testing, MinVersion: "1.0.0"})

		t.Run("a published target signs product, version, channel, community, min_version and the device ids", func(t *testing.T) {
			m, ok := signed[device.TargetMeta](t, e, r2.Offered().Target)
			if !ok {
				t.Fatal("the target is not listed")
			}
			if m.Schema != device.SchemaVersion || m.Product != "demo-cam" || m.Version != "1.1.0" || m.Channel != Testing || m.ReleaseID != r2.ID ||
				m.Community == nil || !*m.Community || m.MinVersion != "1.0.0" || m.Kind != "firmware" || m.RiskNotes == "" ||
				!slices.Equal(m.DeviceIDs, []string{"usb:1d6b:0104", "dt:acme,cam200"}) {
				t.Fatalf("signed fields: %+v", m)
			}
		})
		t.Run("the release list follows publication, promotion and yank", func(t *testing.T) {
			if got := listedVersions(t, e); !slices.Equal(got, []string{"1.1.0 testing", "1.0.0 stable"}) {
				t.Fatalf("after publishing: %v", got)
			}
			if _, err := e.svc.Promote(ctx, principal.Principal{Role: principal.Admin, Name: "test"}, r2.ID); err != nil {
				t.Fatal(err)
			}
			if m, _ := signed[device.TargetMeta](t, e, r2.Offered().Target); m.Channel != Stable {
				t.Fatalf("the promoted target is signed for %q", m.Channel)
			}
			if _, err := e.svc.Yank(ctx, principal.Principal{Role: principal.Admin, Name: "test"}, r1.ID, "bricks rev A"); err != nil {
				t.Fatal(err)
			}
			if got := listedVersions(t, e); !slices.Equal(got, []string{"1.1.0 stable"}) {
				t.Fatalf("after promoting 1.1.0 and yanking 1.0.0: %v", got)
			}
		})
		t.Run("targets signed before the fields existed are signed at start", func(t *testing.T) {
			old := tuf.Target{Path: r2.Offered().Target, Length: r2.Offered().Size, SHA256: r2.Offered().sha256Hex(),
				Custom: map[string]any{"release_id": r2.ID, "product": "demo-cam", "version": "1.1.0", "channel": Stable, "kind": "firmware"}}
			if err := e.repo.Apply(ctx, []tuf.Target{old}, []string{device.ReleaseListPath("demo-cam")}); err != nil {
				t.Fatal(err)
			}
			if err := e.svc.SignUnsigned(ctx); err != nil {
				t.Fatal(err)
			}
			if m, _ := signed[device.TargetMeta](t, e, r2.Offered().Target); m.Schema != device.SchemaVersion || m.Community == nil || len(m.DeviceIDs) != 2 {
				t.Fatalf("after SignUnsigned: %+v", m)
			}
			if got := listedVersions(t, e); !slices.Equal(got, []string{"1.1.0 stable"}) {
				t.Fatalf("release list after SignUnsigned: %v", got)
			}
		})
	})
}
