package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/registry/catalog"
)

// Overview is what a device owner sees of a product: its status and end of
// life with the history of its status, where its escrow stands, the builds
// of its recipes, its releases with their verdicts and install reports, and
// the registry's events. It is the product page's one read model.
type Overview struct {
	Product  catalog.Product   `json:"product"`
	History  []catalog.Event   `json:"history"`
	Escrow   *Escrow           `json:"escrow,omitempty"`
	Builds   []BuildSummary    `json:"builds"`
	Releases []ReleaseOverview `json:"releases"`
	Policy   PullBackPolicy    `json:"pullback_policy"`
	Events   []Event           `json:"events"`
}

// ReleaseOverview is a release with its verdict and report counts, its
// reports per day and, with a phased rollout, where each stage stands:
// the numbers behind the product page's charts.
type ReleaseOverview struct {
	Release
	Verdict      Verdict     `json:"verdict"`
	Reports      ReportStats `json:"reports"`
	ReportsByDay []ReportDay `json:"reports_by_day"`
	// RolloutProgress is one entry per stage of the release's phased
	// rollout, empty without one.
	RolloutProgress []StageProgress `json:"rollout_progress,omitempty"`
}

// StageProgress is one stage of a phased rollout: the share of devices it
// offers the release to, when it begins (its schedule, later by the time
// the rollout spent paused) and whether the rollout reached it.
type StageProgress struct {
	Stage    int       `json:"stage"`
	Percent  int       `json:"percent"`
	StartsAt time.Time `json:"starts_at"`
	Reached  bool      `json:"reached"`
}

// rolloutProgress lays out a rollout's stages; ro has its current stage
// filled in (withStage).
func rolloutProgress(ro *Rollout) []StageProgress {
	if ro == nil || len(ro.Stages) == 0 {
		return nil
	}
	out := make([]StageProgress, len(ro.Stages))
	at := ro.Start
	for i, st := range ro.Stages {
		out[i] = StageProgress{Stage: i + 1, Percent: st.Percent, StartsAt: at.UTC(), Reached: i+1 <= ro.Stage}
		at = at.Add(time.Duration(st.DwellSeconds) * time.Second)
	}
	return out
}

// Verdict says how many builders agreed on a release's bytes.
type Verdict struct {
	Agreeing int    `json:"agreeing"`
	Total    int    `json:"total"`
	URL      string `json:"url"`
}

// ProductOverview gathers a product's overview.
func (s *Service) ProductOverview(ctx context.Context, productID string) (Overview, error) {
	p, err := s.o.Catalog.Get(ctx, productID)
	if err != nil {
		return Overview{}, err
	}
	ov := Overview{Product: p, Builds: []BuildSummary{}, Releases: []ReleaseOverview{}}
	if ov.History, err = s.o.Catalog.Events(ctx, p.ID); err != nil {
		return Overview{}, fmt.Errorf("registry: overview of %s: %w", p.ID, err)
	}
	if s.o.Escrow != nil {
		e, err := s.o.Escrow.ProductEscrow(ctx, p.ID)
		if err != nil {
			return Overview{}, fmt.Errorf("registry: overview of %s: escrow: %w", p.ID, err)
		}
		ov.Escrow = &e
	}
	if s.o.Farm != nil {
		b, err := s.o.Farm.BuildsForProduct(ctx, p.ID, 20)
		if err != nil {
			return Overview{}, fmt.Errorf("registry: overview of %s: builds: %w", p.ID, err)
		}
		if b != nil {
			ov.Builds = b
		}
	}
	rels, err := s.List(ctx, p.ID)
	if err != nil {
		return Overview{}, err
	}
	for _, r := range rels {
		st, err := s.Stats(ctx, r.ID)
		if err != nil {
			return Overview{}, err
		}
		days, err := s.ReportTimeline(ctx, r.ID)
		if err != nil {
			return Overview{}, err
		}
		ov.Releases = append(ov.Releases, ReleaseOverview{Release: r, Verdict: Verdict{Agreeing: r.Agreeing, Total: r.Total, URL: r.VerdictURL}, Reports: st,
			ReportsByDay: days, RolloutProgress: rolloutProgress(r.Rollout)})
	}
	if ov.Policy, err = s.Policy(ctx, p.ID); err != nil {
		return Overview{}, err
	}
	if ov.Events, err = s.Events(ctx, p.ID); err != nil {
		return Overview{}, err
	}
	return ov, nil
}

// Search finds products by vendor display name, vendor, model, product
// id or device id, in any order and forgiving a small typo
// (catalog.Search), with the number of products that match.
func (s *Service) Search(ctx context.Context, q string) (catalog.Found, error) {
	return s.o.Catalog.Search(ctx, q, 50)
}
