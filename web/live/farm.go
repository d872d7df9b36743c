package live

import (
	"context"
	"sort"
	"strings"

	"github.com/afterlife-oss/afterlife/builder/coord"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/principal"
	"github.com/afterlife-oss/afterlife/recipes/submit"
	"github.com/afterlife-oss/afterlife/web"
)

// Farm is web.Farm: builds, their jobs and logs, recipe submission.
type Farm struct{ p Parts }

var _ web.Farm = Farm{}

// Build is the build page.
func (a Farm) Build(ctx context.Context, id string) (*web.BuildPage, error) {
	b, err := a.p.Farm.Build(ctx, id)
	if err != nil {
		return nil, err
	}
	names := a.builderNames(ctx)
	page := &web.BuildPage{
		ID: b.ID, Recipe: b.Name + " " + b.Version, Repo: b.Repo, Commit: b.Commit, Path: b.Path,
		Products: b.Products, SubmittedBy: b.RequestedBy, SubmittedAt: b.Created, State: buildState(b),
		APIURL: "/v1/builds/" + b.ID,
	}
	results := map[string]coord.Result{}
	for _, r := range b.Results {
		results[r.JobID] = r
	}
	for _, j := range b.Jobs {
		job := web.Job{ID: j.ID, Builder: names[j.BuilderID], Operator: j.Operator, Cold: j.Cold, State: jobState(j.State), StartedAt: j.Started, FinishedAt: j.Finished}
		if r, ok := results[j.ID]; ok {
			if r.Failed {
				job.State = string(coord.JobFailed)
			}
			for _, o := range r.Outputs {
				job.Outputs = append(job.Outputs, web.Output{Path: o.Path, SHA256: o.Digest.Hex(), Size: o.Size})
			}
			if r.Attestation != "" {
				job.AttestationURL = "/v1/builds/" + b.ID + "/jobs/" + j.ID + "/attestation"
			}
			if r.BuildInfo != "" {
				job.BuildinfoURL = "/v1/builds/" + b.ID + "/jobs/" + j.ID + "/buildinfo"
			}
		}
		page.Jobs = append(page.Jobs, job)
	}
	for _, in := range b.Spec.Inputs {
		if !in.BuildOnly {
			continue
		}
		grants, err := a.p.Escrow.BuildOnlyGrants(ctx, in.Digest)
		if err != nil {
			return nil, err
		}
		for _, g := range grants {
			page.BuildOnly = append(page.BuildOnly, web.BuildOnlyInput{Path: in.Mount, SHA256: in.Digest.Hex(), Deposit: g.Deposit, Vendor: g.Org, Grant: g.Text})
		}
	}
	if b.State == verdict.Reproducible || b.State == verdict.Unreproducible {
		if page.Verdict, err = a.verdict(ctx, b, names); err != nil {
			return nil, err
		}
	}
	return page, nil
}

func (a Farm) verdict(ctx context.Context, b coord.Build, names map[string]string) (*web.Verdict, error) {
	v := &web.Verdict{
		Reproducible: b.State == verdict.Reproducible, Agree: b.Verdict.Agreeing, Total: b.Finished(),
		Required: b.Quorum, DecidedAt: b.Decided,
	}
	if len(b.Products) > 0 {
		v.ProductID = b.Products[0]
	}
	for _, d := range b.Verdict.Differences {
		diff := web.Difference{Path: d.Path}
		for digest, builders := range d.Digests {
			for _, bid := range builders {
				diff.Digests = append(diff.Digests, web.BuilderDigest{Builder: names[bid], SHA256: strings.TrimPrefix(digest, "sha256:")})
			}
		}
		for _, bid := range d.Missing {
			diff.Digests = append(diff.Digests, web.BuilderDigest{Builder: names[bid], SHA256: "(missing)"})
		}
		sort.Slice(diff.Digests, func(i, j int) bool { return diff.Digests[i].Builder < diff.Digests[j].Builder })
		v.Differences = append(v.Differences, diff)
	}
	var texts []string
	for _, d := range b.Diffs {
		if d.Diffoscope != "" {
			texts = append(texts, d.Diffoscope)
		}
	}
	v.Diffoscope = strings.Join(texts, "\n")
	if rels, err := a.p.Registry.List(ctx, v.ProductID); err == nil {
		for _, r := range rels {
			if r.BuildID == b.ID {
				v.Release = r.Version
			}
		}
	}
	return v, nil
}

func (a Farm) builderNames(ctx context.Context) map[string]string {
	names := map[string]string{}
	if bs, err := a.p.Farm.Builders(ctx); err == nil {
		for _, b := range bs {
			names[b.ID] = b.Name
		}
	}
	return names
}

// buildState is the build's state as the pages name it: its verdict, or
// queued until a job leaves the queue, then running.
func buildState(b coord.Build) string {
	switch b.State {
	case verdict.Reproducible, verdict.Unreproducible, verdict.Failed:
		return string(b.State)
	}
	if b.Running() {
		return "running"
	}
	return "queued"
}

// jobState names a leased job running.
func jobState(s coord.JobState) string {
	if s == coord.JobLeased {
		return "running"
	}
	return string(s)
}

// Builds lists builds, newest first, of one submitter when f names one.
func (a Farm) Builds(ctx context.Context, f web.BuildFilter) ([]web.BuildSummary, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	bs, err := a.p.Farm.Builds(ctx, coord.Filter{RequestedBy: f.Submitter, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]web.BuildSummary, 0, len(bs))
	for _, b := range bs {
		out = append(out, web.BuildSummary{
			ID: b.ID, Recipe: b.Name, Commit: b.Commit, State: buildState(b), SubmittedAt: b.Created,
			Agree: b.Verdict.Agreeing, Total: b.Finished(),
		})
	}
	return out, nil
}

// SubmitRecipe submits a recipe for p; the page is declared for
// maintainers.
func (a Farm) SubmitRecipe(ctx context.Context, p principal.Principal, s web.RecipeSubmission) (string, error) {
	res, err := a.p.Submitter.Submit(ctx, submit.Request{RepoURL: s.Repo, Ref: s.Ref, Path: s.Path, RequestedBy: p.Actor()})
	if err != nil {
		return "", err
	}
	return res.BuildID, nil
}

// Log is a job's log from offset on.
func (a Farm) Log(ctx context.Context, buildID, jobID string, offset int64) (web.LogChunk, error) {
	c, err := a.p.Farm.BuildLog(ctx, buildID, jobID, offset)
	if err != nil {
		return web.LogChunk{}, err
	}
	return web.LogChunk{Data: c.Data, Next: c.Next, Done: c.Done}, nil
}

// Activity is the farm's recent work for the admin page's charts.
func (a Farm) Activity(ctx context.Context) (web.FarmActivity, error) {
	act, err := a.p.Farm.Activity(ctx)
	if err != nil {
		return web.FarmActivity{}, err
	}
	out := web.FarmActivity{}
	for _, q := range act.Queue {
		out.Queue = append(out.Queue, web.QueueSample{At: q.At, Waiting: q.Waiting})
	}
	for _, b := range act.Builds {
		out.Builds = append(out.Builds, web.BuildTime{ID: b.ID, Name: b.Name, State: string(b.State), Decided: b.Decided, Seconds: b.Seconds})
	}
	return out, nil
}
