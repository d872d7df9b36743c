package registry

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/logevent"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/translog"
)

func TestReleaseTargetsCarryTheirPublicationEntryOnceTheLogHoldsIt(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d, envOptions{})
		l, err := translog.Open(ctx, translog.Options{DB: d, KeyDir: t.TempDir(), Origin: "registry.test/log", Replica: "replica-a",
			Sources: map[string]translog.Source{"registry": logevent.Func(e.svc.LogEvents)}})
		if err != nil {
			t.Fatal(err)
		}
		b1, _ := e.firmware("1.0.0")
		r1 := e.publish(PublishRequest{BuildID: b1, Version: "1.0.0", Channel: Stable})
		logEntry := func(path string) *device.SignedLogEntry {
			t.Helper()
			m, ok := signed[device.TargetMeta](t, e, path)
			if !ok {
				t.Fatalf("%s is not listed", path)
			}
			return m.Log
		}

		t.Run("a release the log has not appended yet is signed without an entry", func(t *testing.T) {
			if n, err := e.svc.SignLogEntries(ctx, l, "registry"); err != nil || n != 0 {
				t.Fatalf("signed %d, %v", n, err)
			}
			if got := logEntry(r1.Offered().Target); got != nil {
				t.Fatalf("signed entry %+v before the log holds it", got)
			}
		})
		t.Run("once appended, every target of the release signs the index of its publication entry", func(t *testing.T) {
			if _, err := l.Tick(ctx, e.clock.now(), time.Minute); err != nil {
				t.Fatal(err)
			}
			if n, err := e.svc.SignLogEntries(ctx, l, "registry"); err != nil || n != 1 {
				t.Fatalf("signed %d, %v", n, err)
			}
			for _, a := range r1.Artifacts {
				got := logEntry(a.Target)
				if got == nil {
					t.Fatalf("%s carries no entry", a.Target)
				}
				entry, err := l.Entry(ctx, got.Index)
				if err != nil || !strings.Contains(string(entry), `"type":"release.published"`) || !strings.Contains(string(entry), r1.ID) {
					t.Fatalf("entry %d is %s (%v), want the publication of %s", got.Index, entry, err, r1.ID)
				}
			}
			if rel, _ := e.svc.Get(ctx, r1.ID); rel.LogEntry == nil {
				t.Fatal("the release does not record its entry")
			}
			if n, err := e.svc.SignLogEntries(ctx, l, "registry"); err != nil || n != 0 {
				t.Fatalf("signed again: %d, %v", n, err)
			}
		})
		t.Run("a later change of the release keeps its entry signed", func(t *testing.T) {
			want := logEntry(r1.Offered().Target)
			stale := r1 // read before the entry was signed
			if _, err := e.svc.setRollout(ctx, "test", stale, &Rollout{SignedRollout: device.SignedRollout{State: device.RolloutActive,
				Start: e.clock.now(), Stages: []device.RolloutStage{{Percent: 100}}}}, "rollout_started", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Yank(ctx, principal.Principal{Role: principal.Admin, Name: "test"}, r1.ID, "bricks rev A"); err != nil {
				t.Fatal(err)
			}
			if got := logEntry(r1.Offered().Target); got == nil || *got != *want {
				t.Fatalf("after a rollout and a yank: %+v, want %+v", got, want)
			}
		})
	})
}
