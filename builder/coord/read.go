package coord

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Build is a build with its jobs, results, verdict and difference reports.
type Build struct {
	ID          string          `json:"id"`
	Repo        string          `json:"repo"`
	Commit      string          `json:"commit"`
	Path        string          `json:"path"`
	Name        string          `json:"name"`
	Version     string          `json:"version"`
	Products    []string        `json:"products"`
	State       verdict.State   `json:"state"`
	Verdict     verdict.Verdict `json:"verdict"`
	Quorum      int             `json:"quorum"`
	RequestedBy string          `json:"requested_by,omitempty"`
	Created     time.Time       `json:"created"`
	Decided     time.Time       `json:"decided,omitzero"`
	Spec        builder.Spec    `json:"spec"`
	Jobs        []Job           `json:"jobs,omitempty"`
	Results     []Result        `json:"results,omitempty"`
	Diffs       []Diff          `json:"diffs,omitempty"`
}

// Job is one job of a build.
type Job struct {
	ID         string    `json:"id"`
	State      JobState  `json:"state"`
	BuilderID  string    `json:"builder_id,omitempty"`
	Operator   string    `json:"operator,omitempty"`
	Attempts   int       `json:"attempts"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	Created    time.Time `json:"created"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	// Cold marks the cold witness: the job that runs with empty caches.
	Cold bool `json:"cold,omitempty"`
}

// Result is what one job returned.
type Result struct {
	JobID       string               `json:"job_id"`
	BuilderID   string               `json:"builder_id"`
	Operator    string               `json:"operator"`
	Outputs     []builder.OutputFile `json:"outputs"`
	BuildInfo   blob.Digest          `json:"buildinfo,omitempty"`
	Attestation blob.Digest          `json:"attestation,omitempty"`
	Log         blob.Digest          `json:"log,omitempty"`
	Failed      bool                 `json:"failed"`
	Reason      string               `json:"reason,omitempty"`
	Created     time.Time            `json:"created"`
	Cold        bool                 `json:"cold,omitempty"` // the cold witness's result
}

// Diff is diffoscope's report on one differing output path.
type Diff struct {
	Path       string      `json:"path"`
	DigestA    blob.Digest `json:"digest_a"`
	DigestB    blob.Digest `json:"digest_b"`
	Diffoscope string      `json:"diffoscope"`
}

// Filter selects builds.
type Filter struct {
	Product     string
	State       verdict.State
	RequestedBy string // the submitter's actor name
	Limit       int    // default 50, at most 500
}

const buildCols = `b.id, b.repo, b.commit_id, b.path, b.name, b.version, b.state, b.verdict, b.quorum, b.requested_by, b.created, b.decided, b.spec`

func scanBuild(sc interface{ Scan(...any) error }) (Build, error) {
	var b Build
	var state, vj, sj string
	var created, decided int64
	if err := sc.Scan(&b.ID, &b.Repo, &b.Commit, &b.Path, &b.Name, &b.Version, &state, &vj, &b.Quorum, &b.RequestedBy, &created, &decided, &sj); err != nil {
		return b, err
	}
	b.State = verdict.State(state)
	b.Created, b.Decided = db.FromMillis(created), db.FromMillis(decided)
	if err := json.Unmarshal([]byte(vj), &b.Verdict); err != nil {
		return b, fmt.Errorf("coord: build %s verdict: %w", b.ID, err)
	}
	if err := json.Unmarshal([]byte(sj), &b.Spec); err != nil {
		return b, fmt.Errorf("coord: build %s spec: %w", b.ID, err)
	}
	b.Products = b.Spec.Products
	return b, nil
}

// Build returns one build with its jobs, results and difference reports.
func (s *Service) Build(ctx context.Context, id string) (Build, error) {
	b, err := scanBuild(s.db.QueryRowContext(ctx, s.db.Q(`SELECT `+buildCols+` FROM farm_builds b WHERE b.id = ?`), id))
	if err != nil {
		return b, db.NotFound(err, "build %s not found", id)
	}
	if b.Jobs, err = s.jobs(ctx, id); err != nil {
		return b, err
	}
	if b.Results, err = s.results(ctx, s.db, id); err != nil {
		return b, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT path, digest_a, digest_b, report FROM farm_diffs WHERE build_id = ? ORDER BY path`), id)
	if err != nil {
		return b, fmt.Errorf("coord: diffs of %s: %w", id, db.Classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var d Diff
		if err := rows.Scan(&d.Path, &d.DigestA, &d.DigestB, &d.Diffoscope); err != nil {
			return b, err
		}
		b.Diffs = append(b.Diffs, d)
	}
	return b, rows.Err()
}

func (s *Service) jobs(ctx context.Context, buildID string) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, state, builder_id, operator, attempts, lease_until, created, started, finished, cold
		FROM farm_jobs WHERE build_id = ? ORDER BY created, id`), buildID)
	if err != nil {
		return nil, fmt.Errorf("coord: jobs of %s: %w", buildID, db.Classify(err))
	}
	defer rows.Close()
	var out []Job
	for rows.Next() {
		var j Job
		var lease, created, started, finished int64
		var cold int
		if err := rows.Scan(&j.ID, &j.State, &j.BuilderID, &j.Operator, &j.Attempts, &lease, &created, &started, &finished, &cold); err != nil {
			return nil, err
		}
		j.Cold = cold == 1
		j.LeaseUntil, j.Created, j.Started, j.Finished = db.FromMillis(lease), db.FromMillis(created), db.FromMillis(started), db.FromMillis(finished)
		out = append(out, j)
	}
	return out, rows.Err()
}

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

func (s *Service) results(ctx context.Context, q querier, buildID string) ([]Result, error) {
	rows, err := q.QueryContext(ctx, s.db.Q(`SELECT job_id, builder_id, operator, outputs, buildinfo, attestation, log, failed, reason, created, cold
		FROM farm_results WHERE build_id = ? ORDER BY created, job_id`), buildID)
	if err != nil {
		return nil, fmt.Errorf("coord: results of %s: %w", buildID, db.Classify(err))
	}
	defer rows.Close()
	var out []Result
	for rows.Next() {
		var r Result
		var outs string
		var failed, cold int
		var created int64
		if err := rows.Scan(&r.JobID, &r.BuilderID, &r.Operator, &outs, &r.BuildInfo, &r.Attestation, &r.Log, &failed, &r.Reason, &created, &cold); err != nil {
			return nil, err
		}
		r.Cold = cold == 1
		if err := json.Unmarshal([]byte(outs), &r.Outputs); err != nil {
			return nil, fmt.Errorf("coord: result of %s: %w", r.JobID, err)
		}
		r.Failed, r.Created = failed == 1, db.FromMillis(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// JobResult returns the result of one job of a build.
func (s *Service) JobResult(ctx context.Context, buildID, jobID string) (Result, error) {
	rs, err := s.results(ctx, s.db, buildID)
	if err != nil {
		return Result{}, err
	}
	for _, r := range rs {
		if r.JobID == jobID {
			return r, nil
		}
	}
	return Result{}, errs.E(errs.NotFound, "job %s of build %s has no result", jobID, buildID)
}

// JobOf checks that jobID belongs to buildID.
func (s *Service) JobOf(ctx context.Context, buildID, jobID string) error {
	j, err := s.jobRow(ctx, s.db, jobID)
	if err != nil {
		return err
	}
	if j.buildID != buildID {
		return errs.E(errs.NotFound, "job %s not found in build %s", jobID, buildID)
	}
	return nil
}

// Builds lists builds, newest first, without their jobs and results.
func (s *Service) Builds(ctx context.Context, f Filter) ([]Build, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 500)
	q := `SELECT ` + buildCols + ` FROM farm_builds b`
	var where []string
	var args []any
	if f.Product != "" {
		where = append(where, `EXISTS (SELECT 1 FROM farm_build_products p WHERE p.build_id = b.id AND p.product = ?)`)
		args = append(args, f.Product)
	}
	if f.State != "" {
		where = append(where, `b.state = ?`)
		args = append(args, string(f.State))
	}
	if f.RequestedBy != "" {
		where = append(where, `b.requested_by = ?`)
		args = append(args, f.RequestedBy)
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY b.created DESC, b.id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, s.db.Q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("coord: list builds: %w", db.Classify(err))
	}
	defer rows.Close()
	var out []Build
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Verdict returns a build's verdict.
func (s *Service) Verdict(ctx context.Context, buildID string) (verdict.Verdict, error) {
	var raw string
	if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT verdict FROM farm_builds WHERE id = ?`), buildID).Scan(&raw); err != nil {
		return verdict.Verdict{}, db.NotFound(err, "build %s not found", buildID)
	}
	var v verdict.Verdict
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return v, fmt.Errorf("coord: build %s verdict: %w", buildID, err)
	}
	return v, nil
}

// ReproducibleOutputs returns the spec and the agreed outputs of a build
// whose verdict is reproducible, with how many operators agreed and how
// many results there were. Any other build is a Conflict error: a verdict
// is the only way to a release candidate.
func (s *Service) ReproducibleOutputs(ctx context.Context, buildID string) (builder.Spec, []builder.OutputFile, int, int, error) {
	b, err := s.Build(ctx, buildID)
	if err != nil {
		return builder.Spec{}, nil, 0, 0, err
	}
	if b.State != verdict.Reproducible {
		return builder.Spec{}, nil, 0, 0, errs.E(errs.Conflict, "build %s is %s, not reproducible: %s", buildID, b.State, b.Verdict.Reason)
	}
	kinds := map[string]string{}
	for _, o := range b.Spec.Outputs {
		kinds[o.Path] = o.Kind
	}
	var outs []builder.OutputFile
	for _, r := range b.Results {
		if r.Failed || !sameOutputs(r.Outputs, b.Verdict.Outputs) {
			continue
		}
		for _, o := range r.Outputs {
			outs = append(outs, builder.OutputFile{Path: o.Path, Kind: kinds[o.Path], Digest: o.Digest, Size: o.Size})
		}
		break
	}
	if len(outs) == 0 {
		return builder.Spec{}, nil, 0, 0, errs.E(errs.Internal, "build %s is reproducible but no result carries its outputs", buildID)
	}
	return b.Spec, outs, b.Verdict.Agreeing, len(b.Results), nil
}

func sameOutputs(outs []builder.OutputFile, agreed map[string]string) bool {
	if len(outs) != len(agreed) {
		return false
	}
	for _, o := range outs {
		if agreed[o.Path] != string(o.Digest) {
			return false
		}
	}
	return true
}

// sanitize makes text storable in a TEXT column of both databases.
func sanitize(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
}

// CountBuilds counts the builds in state (all builds when empty).
func (s *Service) CountBuilds(ctx context.Context, state verdict.State) (int, error) {
	q, args := `SELECT COUNT(*) FROM farm_builds`, []any{}
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, string(state))
	}
	var n int
	if err := s.db.QueryRowContext(ctx, s.db.Q(q), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("coord: count builds: %w", db.Classify(err))
	}
	return n, nil
}

// Finished counts the builders that returned a result for b (those whose
// agreement the verdict counted, when the results are not loaded).
func (b Build) Finished() int {
	n := 0
	for _, r := range b.Results {
		if !r.Failed {
			n++
		}
	}
	if n == 0 && b.Verdict.Agreeing > 0 {
		return b.Verdict.Agreeing
	}
	return n
}

// Running reports whether a build without a verdict has a job that left
// the queue.
func (b Build) Running() bool {
	for _, j := range b.Jobs {
		if j.State != JobQueued {
			return true
		}
	}
	return false
}
