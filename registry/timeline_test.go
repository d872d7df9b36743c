package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// The product page draws install reports per day and a rollout's stages
// from the overview; the days must add up to the counts the registry
// decides with, and the JSON must carry the numbers the charts show.
func TestInstallReportsPerDayAddUpToTheCountsAndARolloutShowsItsStages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e := newEnv(t, d, envOptions{reportsPerHour: 2000})
		b, _ := e.firmware("1.0.0")
		rel := e.publish(PublishRequest{BuildID: b, Version: "1.0.0", Channel: Stable})
		send := func(outcome string, rolledBack bool, from string) {
			t.Helper()
			r := e.install(rel, outcome, "")
			if outcome == device.OutcomeFailure {
				r.Reason = "no video"
			}
			r.RolledBack = rolledBack
			if code, body := e.sendReport(r, from); code != http.StatusNoContent {
				t.Fatalf("report: %d %s", code, body)
			}
		}
		day1 := e.clock.now().UTC().Truncate(24 * time.Hour)

		t.Run("a release without reports has no days", func(t *testing.T) {
			days, err := e.svc.ReportTimeline(ctx, rel.ID)
			if err != nil || len(days) != 0 {
				t.Fatalf("timeline = %+v, %v; want no days", days, err)
			}
		})
		t.Run("reports fall on their UTC day, a rolled-back failure apart from the others", func(t *testing.T) {
			send(device.OutcomeSuccess, false, "192.0.2.1")
			send(device.OutcomeSuccess, false, "198.51.100.1")
			send(device.OutcomeFailure, false, "203.0.113.1")
			e.clock.add(48 * time.Hour)
			send(device.OutcomeSuccess, false, "192.0.2.1")
			send(device.OutcomeFailure, true, "198.51.100.1")
			days, err := e.svc.ReportTimeline(ctx, rel.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := []ReportDay{{Day: day1, Success: 2, Failure: 1}, {Day: day1.Add(48 * time.Hour), Success: 1, RolledBack: 1}}
			if fmt.Sprint(days) != fmt.Sprint(want) {
				t.Fatalf("timeline = %+v, want %+v", days, want)
			}
		})
		t.Run("one network's reports beyond its share are left out, as in the counts", func(t *testing.T) {
			for range 7 {
				send(device.OutcomeSuccess, false, "10.1.1.1")
			}
			days, _ := e.svc.ReportTimeline(ctx, rel.ID)
			st, _ := e.svc.Stats(ctx, rel.ID)
			var ok, failed int
			for _, d := range days {
				ok += d.Success
				failed += d.Failure + d.RolledBack
			}
			if ok != st.Success || failed != st.Failure || st.Success != 8 {
				t.Fatalf("the days add up to %d worked and %d failed; the counts say %+v (want 8 worked)", ok, failed, st)
			}
		})
		t.Run("the overview's JSON carries the days and the rollout's stages", func(t *testing.T) {
			b2, _ := e.firmware("1.1.0")
			next := e.publish(PublishRequest{BuildID: b2, Version: "1.1.0", Channel: Stable})
			stages := []device.RolloutStage{{Percent: 10, DwellSeconds: 3600}, {Percent: 50, DwellSeconds: 7200}, {Percent: 100}}
			if resp, body := e.do("POST", "/v1/releases/"+next.ID+"/rollout", e.admin, RolloutRequest{Stages: stages}); resp.StatusCode != http.StatusOK {
				t.Fatalf("start rollout: %d %s", resp.StatusCode, body)
			}
			start := e.clock.now()
			e.clock.add(90 * time.Minute)
			resp, body := e.do("GET", "/v1/products/demo-cam/overview", "", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("overview: %d %s", resp.StatusCode, body)
			}
			var ov struct {
				Releases []struct {
					Version         string          `json:"version"`
					ReportsByDay    []ReportDay     `json:"reports_by_day"`
					RolloutProgress []StageProgress `json:"rollout_progress"`
				} `json:"releases"`
			}
			if err := json.Unmarshal(body, &ov); err != nil {
				t.Fatal(err)
			}
			for _, r := range ov.Releases {
				switch r.Version {
				case "1.0.0":
					if len(r.ReportsByDay) != 2 || r.ReportsByDay[1].RolledBack != 1 || len(r.RolloutProgress) != 0 {
						t.Errorf("1.0.0 in the overview: %+v", r)
					}
				case "1.1.0":
					p := r.RolloutProgress
					if r.ReportsByDay == nil || len(p) != 3 || !p[0].Reached || !p[1].Reached || p[2].Reached || p[1].Percent != 50 ||
						!p[1].StartsAt.Equal(start.Add(time.Hour).Truncate(time.Millisecond)) || !p[2].StartsAt.Equal(start.Add(3*time.Hour).Truncate(time.Millisecond)) {
						t.Errorf("1.1.0's rollout in the overview: %+v (started %s)", r, start)
					}
				}
			}
		})
	})
}
