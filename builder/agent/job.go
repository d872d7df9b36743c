package agent

// This file runs one job from its spec to its report, in a workspace of
// its own, through fetching, building and reporting.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/sandbox"
)

// execute fetches, builds and uploads; a build that fails is a Report with
// Failed set, an error means the job could not be run or reported here.
func (a *Agent) execute(ctx context.Context, job *builder.Job, phase *atomic.Int32, log *slog.Logger) (builder.Report, error) {
	sp := job.Spec
	if err := sp.Validate(); err != nil {
		return builder.Report{}, err
	}
	limits, maxLog, err := a.limits(sp.Limits)
	if err != nil {
		return builder.Report{}, err
	}
	root := filepath.Join(a.o.WorkDir, job.ID)
	if err := sandbox.RemoveWorkspace(root); err != nil { // a retried job may find its old one
		return builder.Report{}, fmt.Errorf("agent: clean %s: %w", root, err)
	}
	// The job's files live on its own tmpfs (as root), which bounds what
	// the build writes; the log stays outside it.
	ws, err := sandbox.NewWorkspace(root)
	if err != nil {
		return builder.Report{}, err
	}
	defer ws.Close()
	logFile, err := os.Create(root + ".log")
	if err != nil {
		return builder.Report{}, fmt.Errorf("agent: create log: %w", err)
	}
	defer os.Remove(logFile.Name())
	defer logFile.Close()
	live := newLiveLog(a.o.Coordinator, job.ID, logFile, a.o.LogFlush)
	defer live.close()
	fmt.Fprintf(live, "==> afterlife builder %s job %s attempt %d: %s %s at %s\n",
		a.o.Name, job.ID, job.Attempt, sp.Recipe.Name, sp.Recipe.Version, sp.Recipe.Commit)

	started := a.o.Now().UTC()
	b, err := a.fetchAndBuild(ctx, job, ws, limits, maxLog, live, logFile.Name())
	if err != nil {
		return builder.Report{}, err
	}
	phase.Store(phaseReporting)
	for _, o := range b.outputs {
		fmt.Fprintf(live, "==> output %s %s (%d bytes)\n", o.Path, o.Digest, o.Size)
	}
	live.close()
	finished := a.o.Now().UTC()
	return a.report(ctx, job, b, ws.Out, logFile.Name(), started, finished)
}

// fetchAndBuild is what a farm job and a local try share: the toolchain,
// every input fetched by digest and verified, the steps in the sandbox,
// the outputs hashed.
func (a *Agent) fetchAndBuild(ctx context.Context, job *builder.Job, ws *sandbox.Workspace, limits sandbox.Limits, maxLog int64, live io.Writer, logPath string) (built, error) {
	tc, err := a.toolchain(job.Spec.Toolchain)
	if err != nil {
		return built{}, err
	}
	tools, err := a.tools(job.Spec.Tools)
	if err != nil {
		return built{}, err
	}
	if err := a.fetchInputs(ctx, job.ID, job.Spec, ws, live); err != nil {
		return built{}, err
	}
	return a.build(ctx, job, tc, tools, ws, limits, maxLog, live, logPath)
}
