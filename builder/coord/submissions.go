package coord

import (
	"context"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/buildspec"
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
	return s.Coord.CreateBuild(ctx, NewBuild{Spec: buildspec.For(r, s.Ceilings), RequestedBy: r.RequestedBy})
}
