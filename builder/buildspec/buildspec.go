// Package buildspec holds the one conversion of a validated, pinned recipe
// submission into the farm's build spec, shared by the coordinator (which
// queues it) and a maintainer's local try (which builds it at once). It
// must not decide anything a spec does not carry.
package buildspec

import (
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/recipes/submit"
)

// For is the one conversion of a validated, pinned recipe submission
// into the farm's build spec: the recipe's timeout, memory and CPUs, and
// ceilings' processes, bytes written and log size.
func For(r submit.BuildRequest, ceilings builder.Limits) builder.Spec {
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
