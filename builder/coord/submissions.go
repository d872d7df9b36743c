package coord

import (
	"context"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/recipes/submit"
)

// Submissions queues the builds recipe submission asks for: it is the
// submit.Builds a submit.Submitter needs.
type Submissions struct {
	Coord *Service
	// Ceilings bound processes, bytes written and log size on every job
	// (the server's settings; recipes do not choose them).
	Ceilings builder.Limits
}

// CreateBuild queues r as a build (see Service.CreateBuild).
func (s Submissions) CreateBuild(ctx context.Context, r submit.BuildRequest) (string, bool, error) {
	return s.Coord.CreateBuild(ctx, NewBuild{Spec: SpecFor(r, s.Ceilings), RequestedBy: r.RequestedBy})
}

// SpecFor is the one conversion of a validated, pinned recipe submission
// into the farm's build spec: the recipe's timeout, memory and CPUs, and
// ceilings' processes, bytes written and log size.
func SpecFor(r submit.BuildRequest, ceilings builder.Limits) builder.Spec {
	rc := r.Recipe
	sp := builder.Spec{
		Recipe:    builder.RecipeRef{Name: rc.Name, Version: rc.Version, RepoURL: r.RepoURL, Commit: r.Commit, Path: r.Path},
		Products:  rc.Products,
		Toolchain: builder.ToolchainReq{Name: rc.Toolchain.Name, Version: rc.Toolchain.Version},
		Arch:      rc.Arch,
		Steps:     rc.Steps,
		Limits: builder.Limits{
			TimeoutSeconds: int64(time.Duration(rc.Limits.Timeout) / time.Second),
			MemoryBytes:    int64(rc.Limits.Memory),
			CPUs:           rc.Limits.CPUs,
			Processes:      ceilings.Processes,
			WriteBytes:     ceilings.WriteBytes,
			LogBytes:       ceilings.LogBytes,
		},
		SourceDateEpoch: r.SourceDateEpoch,
		Source:          r.Source,
		Install:         rc.Install,
		RiskNotes:       rc.RiskNotes,
	}
	for _, t := range rc.Tools {
		sp.Tools = append(sp.Tools, builder.ToolchainReq{Name: t.Name, Version: t.Version})
	}
	for _, o := range rc.Outputs {
		sp.Outputs = append(sp.Outputs, builder.Output{Path: o.Path, Kind: o.Kind})
	}
	for _, in := range r.Inputs {
		sp.Inputs = append(sp.Inputs, builder.Input{Digest: in.Digest, Mount: in.Mount, Kind: in.Kind, BuildOnly: in.BuildOnly})
	}
	return sp
}
