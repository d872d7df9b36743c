package live

import (
	"context"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/web"
)

// Releases implements web.Releases with the registry.
type Releases struct{ p Parts }

// maxRolloutRows bounds the maintainer page's list.
const maxRolloutRows = 30

func (r Releases) Rollouts(ctx context.Context) ([]web.RolloutRow, error) {
	rels, err := r.p.Registry.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []web.RolloutRow
	for _, rel := range rels {
		if rel.Yanked || rel.PulledBack || len(out) == maxRolloutRows {
			continue
		}
		row := web.RolloutRow{ReleaseID: rel.ID, Product: rel.Product, Version: rel.Version, Channel: rel.Channel}
		if ro := rel.Rollout; ro != nil {
			row.State, row.Stage, row.Stages, row.Percent = ro.State, ro.Stage, len(ro.Stages), ro.Percent
		}
		out = append(out, row)
	}
	return out, nil
}

func (r Releases) Rollout(ctx context.Context, p principal.Principal, id string, f web.RolloutForm) error {
	if f.Action != "start" {
		_, err := r.p.Registry.ChangeRollout(ctx, p, id, f.Action, f.Reason)
		return err
	}
	// The registry checks who may act before it looks at the stages.
	stages, perr := device.ParseStages(f.Stages, f.Dwell)
	_, err := r.p.Registry.StartRollout(ctx, p, id, stages)
	if perr != nil && errs.Is(err, errs.Invalid) {
		return perr
	}
	return err
}
