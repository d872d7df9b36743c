package coord

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/attest"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Done records the end of a job builderID holds. A successful report is
// checked before anything is recorded: its outputs are the spec's, every
// blob it names is stored with the claimed digest and size, the buildinfo
// describes this job, and the attestation verifies with the builder's
// registered key, attests exactly the reported outputs and names this job
// and builder. Then the build's verdict is decided again.
func (s *Service) Done(ctx context.Context, jobID, builderID string, rep builder.Report) error {
	j, err := s.jobRow(ctx, s.db, jobID)
	if err != nil {
		return err
	}
	now := s.now()
	if err := s.holding(j, builderID, now); err != nil {
		return err
	}
	sp, err := s.spec(ctx, s.db, j.buildID)
	if err != nil {
		return err
	}
	if err := s.checkReport(ctx, j, builderID, sp, rep); err != nil {
		return fmt.Errorf("coord: result of job %s: %w", jobID, err)
	}
	if rep.Log, err = s.capLog(ctx, rep.Log); err != nil {
		return fmt.Errorf("coord: log of job %s: %w", jobID, err)
	}
	// The result counts for the operator the token is bound to now, and
	// only if that is the operator it was leased for; otherwise (the token
	// was moved, or a job leased before operators were bound) it counts for
	// nothing.
	b, err := s.Builder(ctx, builderID)
	if err != nil {
		return err
	}
	operator, err := s.boundOperator(ctx, b)
	if err != nil {
		return err
	}
	if operator != j.operator {
		operator = ""
	}
	var v verdict.Verdict
	var decidedNow bool
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET state = ?, finished = ?, lease_until = 0 WHERE id = ? AND builder_id = ? AND state = ?`),
			JobDone, db.Millis(now), jobID, builderID, JobLeased)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.Conflict, "job %s is no longer leased by this builder", jobID)
		}
		if err := s.insertResult(ctx, tx, jobID, j.buildID, builderID, operator, rep, now); err != nil {
			return err
		}
		v, err = s.decide(ctx, tx, j.buildID, now)
		decidedNow = err == nil && v.State != verdict.Pending
		return err
	})
	if err != nil {
		return fmt.Errorf("coord: record result of job %s: %w", jobID, err)
	}
	s.log.Info("job done", "job", jobID, "build", j.buildID, "builder", builderID, "failed", rep.Failed, "verdict", v.State)
	s.touch(ctx, builderID)
	if decidedNow {
		s.explain(j.buildID, v)
	}
	return nil
}

func (s *Service) checkReport(ctx context.Context, j jobRow, builderID string, sp builder.Spec, rep builder.Report) error {
	for _, d := range []blob.Digest{rep.Log, rep.BuildInfo, rep.Attestation} {
		if d == "" {
			continue
		}
		if _, err := blob.ParseDigest(string(d)); err != nil {
			return err
		}
		if _, err := s.store.Stat(ctx, d); err != nil {
			return errs.Wrap(errs.Invalid, err, "blob %s was not uploaded", d)
		}
	}
	if len(rep.Reason) > 4096 {
		return errs.E(errs.Invalid, "reason is longer than 4096 bytes")
	}
	if rep.Failed {
		if len(rep.Outputs) > 0 {
			return errs.E(errs.Invalid, "a failed result has no outputs")
		}
		return nil
	}
	want := map[string]string{}
	for _, o := range sp.Outputs {
		want[o.Path] = o.Kind
	}
	got := map[string]string{}
	for _, o := range rep.Outputs {
		kind, ok := want[o.Path]
		if !ok {
			return errs.E(errs.Invalid, "output %q is not one of the recipe's outputs", o.Path)
		}
		if o.Kind != kind {
			return errs.E(errs.Invalid, "output %q has kind %q, the recipe says %q", o.Path, o.Kind, kind)
		}
		if _, dup := got[o.Path]; dup {
			return errs.E(errs.Invalid, "output %q reported twice", o.Path)
		}
		if _, err := blob.ParseDigest(string(o.Digest)); err != nil {
			return err
		}
		info, err := s.store.Stat(ctx, o.Digest)
		if err != nil {
			return errs.Wrap(errs.Invalid, err, "output %q (%s) was not uploaded", o.Path, o.Digest)
		}
		if info.Size != o.Size {
			return errs.E(errs.Invalid, "output %q is %d bytes, the report says %d", o.Path, info.Size, o.Size)
		}
		got[o.Path] = string(o.Digest)
	}
	if len(got) != len(want) {
		return errs.E(errs.Invalid, "the report has %d outputs, the recipe %d", len(got), len(want))
	}
	if rep.Attestation == "" || rep.BuildInfo == "" || rep.Log == "" {
		return errs.E(errs.Invalid, "a successful result needs its log, buildinfo and attestation")
	}
	envelope, err := s.readSmall(ctx, rep.Attestation, attest.MaxEnvelopeSize)
	if err != nil {
		return err
	}
	pub, err := s.publicKey(ctx, builderID)
	if err != nil {
		return err
	}
	st, prov, err := attest.Verify(ctx, pub, envelope)
	if err != nil {
		return err
	}
	if err := attest.CheckSubjects(st, got); err != nil {
		return err
	}
	if err := attest.CheckRun(prov, j.id, builderID); err != nil {
		return err
	}
	if cold := attest.ColdCache(prov); cold != j.cold {
		if j.cold {
			return errs.E(errs.Invalid, "job %s is the cold witness, but its attestation says it ran with warm caches", j.id)
		}
		return errs.E(errs.Invalid, "job %s was assigned warm caches, but its attestation claims it is the cold witness", j.id)
	}
	raw, err := s.readSmall(ctx, rep.BuildInfo, attest.MaxBuildInfoSize)
	if err != nil {
		return err
	}
	bi, err := attest.ParseBuildInfo(raw)
	if err != nil {
		return err
	}
	switch {
	case bi.JobID != j.id || bi.BuildID != j.buildID:
		return errs.E(errs.Invalid, "buildinfo describes job %s of build %s", bi.JobID, bi.BuildID)
	case bi.Builder.ID != builderID:
		return errs.E(errs.Invalid, "buildinfo names builder %s", bi.Builder.ID)
	case bi.Recipe.Commit != sp.Recipe.Commit:
		return errs.E(errs.Invalid, "buildinfo names commit %s, the build is of %s", bi.Recipe.Commit, sp.Recipe.Commit)
	}
	biOut := bi.OutputDigests()
	if len(biOut) != len(got) {
		return errs.E(errs.Invalid, "buildinfo lists %d outputs, the report %d", len(biOut), len(got))
	}
	for p, d := range got {
		if biOut[p] != d {
			return errs.E(errs.Invalid, "buildinfo says output %q is %s, the report %s", p, biOut[p], d)
		}
	}
	return nil
}

// readSmall reads a whole blob of at most limit bytes, verifying its digest.
func (s *Service) readSmall(ctx context.Context, d blob.Digest, limit int64) ([]byte, error) {
	info, err := s.store.Stat(ctx, d)
	if err != nil {
		return nil, err
	}
	if info.Size > limit {
		return nil, errs.E(errs.TooLarge, "blob %s is %d bytes, limit %d", d, info.Size, limit)
	}
	rc, err := blob.ReadVerified(ctx, s.store, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit+1))
}

// capLog returns the log to record: d itself when it is within
// MaxLogBytes, otherwise a stored copy of its head and tail with a note. A
// builder caps its log already; this holds when one does not.
func (s *Service) capLog(ctx context.Context, d blob.Digest) (blob.Digest, error) {
	if d == "" {
		return d, nil
	}
	info, err := s.store.Stat(ctx, d)
	if err != nil {
		return "", err
	}
	if info.Size <= s.opts.MaxLogBytes {
		return d, nil
	}
	rc, err := blob.ReadVerified(ctx, s.store, d)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	go func() {
		c := builder.NewCappedLog(pw, s.opts.MaxLogBytes)
		_, err := io.Copy(c, rc)
		if err == nil {
			err = c.Close()
		}
		pw.CloseWithError(err)
	}()
	capped, err := s.store.Put(ctx, pr, "")
	pr.CloseWithError(err)
	if err != nil {
		return "", fmt.Errorf("store the capped log: %w", err)
	}
	s.log.Warn("a builder uploaded a log above the limit; its head and tail are kept", "log", d, "size", info.Size, "limit", s.opts.MaxLogBytes, "kept", capped.Digest)
	return capped.Digest, nil
}

func (s *Service) insertResult(ctx context.Context, tx *sql.Tx, jobID, buildID, builderID, operator string, rep builder.Report, now time.Time) error {
	outs := rep.Outputs
	if outs == nil {
		outs = []builder.OutputFile{}
	}
	sort.Slice(outs, func(a, b int) bool { return outs[a].Path < outs[b].Path })
	raw, err := json.Marshal(outs)
	if err != nil {
		return err
	}
	failed := 0
	if rep.Failed {
		failed = 1
	}
	// cold is the job's assignment; Done has checked that a successful
	// result's signed attestation says the same.
	_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_results (job_id, build_id, builder_id, operator, outputs, buildinfo, attestation, log, failed, reason, created, cold)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT cold FROM farm_jobs WHERE id = ?))`),
		jobID, buildID, builderID, operator, string(raw), string(rep.BuildInfo), string(rep.Attestation), string(rep.Log), failed, sanitize(rep.Reason), db.Millis(now), jobID)
	return err
}

// decide recomputes a pending build's verdict from its results. A decided
// verdict never changes.
func (s *Service) decide(ctx context.Context, tx *sql.Tx, buildID string, now time.Time) (verdict.Verdict, error) {
	var state, raw string
	var quorum int
	// On PostgreSQL two results of one build can be recorded at the same
	// moment; each transaction would see only its own result and the other
	// job still leased, and the build would stay pending for ever. Locking
	// the build row makes the second wait for the first and then read both
	// (SQLite's immediate transactions serialise them already).
	lock := ""
	if s.db.Dialect == db.Postgres {
		lock = " FOR UPDATE"
	}
	if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT state, verdict, quorum FROM farm_builds WHERE id = ?`+lock), buildID).Scan(&state, &raw, &quorum); err != nil {
		return verdict.Verdict{}, db.NotFound(err, "build %s not found", buildID)
	}
	if state != string(verdict.Pending) {
		var v verdict.Verdict
		err := json.Unmarshal([]byte(raw), &v)
		return v, err
	}
	results, err := s.results(ctx, tx, buildID)
	if err != nil {
		return verdict.Verdict{}, err
	}
	var pending, coldPending int
	if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*), COALESCE(MAX(cold), 0) FROM farm_jobs WHERE build_id = ? AND state IN (?, ?)`), buildID, JobQueued, JobLeased).Scan(&pending, &coldPending); err != nil {
		return verdict.Verdict{}, err
	}
	in := make([]verdict.Result, 0, len(results))
	for _, r := range results {
		outs := map[string]string{}
		for _, o := range r.Outputs {
			outs[o.Path] = string(o.Digest)
		}
		in = append(in, verdict.Result{JobID: r.JobID, BuilderID: r.BuilderID, Operator: r.Operator, Outputs: outs, Failed: r.Failed, Reason: r.Reason, Cold: r.Cold})
	}
	v := verdict.Decide(in, quorum, verdict.Outstanding{Jobs: pending, Cold: coldPending == 1})
	vj, err := json.Marshal(v)
	if err != nil {
		return v, err
	}
	decided := int64(0)
	if v.State != verdict.Pending {
		decided = db.Millis(now)
	}
	if _, err := tx.ExecContext(ctx, s.db.Q(`UPDATE farm_builds SET state = ?, verdict = ?, decided = ? WHERE id = ? AND state = ?`),
		string(v.State), string(vj), decided, buildID, string(verdict.Pending)); err != nil {
		return v, err
	}
	if v.State != verdict.Pending {
		if err := s.logVerdict(ctx, tx, buildID, now); err != nil {
			return v, err
		}
		s.verdicts.WithLabelValues(string(v.State)).Inc()
		s.log.Info("build decided", "build", buildID, "verdict", v.State, "reason", v.Reason)
		if v.State == verdict.Reproducible {
			// Jobs still queued are not needed any more.
			if _, err := tx.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET state = ?, finished = ? WHERE build_id = ? AND state = ?`),
				JobFailed, db.Millis(now), buildID, JobQueued); err != nil {
				return v, err
			}
		}
	}
	return v, nil
}

// explain runs diffoscope, in the background, on two differing versions of
// each path the builders disagree on, and stores the reports. diffoscope
// is optional: without it the differing paths are still listed.
func (s *Service) explain(buildID string, v verdict.Verdict) {
	var diffs []verdict.Difference
	for _, d := range v.Differences {
		if len(d.Digests) >= 2 {
			diffs = append(diffs, d)
		}
	}
	if len(diffs) == 0 {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*verdict.DiffoscopeTimeout)
		defer cancel()
		go func() {
			select {
			case <-s.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		for _, d := range diffs {
			digests := make([]string, 0, len(d.Digests))
			for dg := range d.Digests {
				digests = append(digests, dg)
			}
			slices.Sort(digests)
			report, err := s.diffoscope(ctx, d.Path, blob.Digest(digests[0]), blob.Digest(digests[1]))
			if errors.Is(err, verdict.ErrNoDiffoscope) {
				return
			}
			if err != nil {
				s.log.Warn("diffoscope failed", "build", buildID, "path", d.Path, "err", err)
				report = "diffoscope failed: " + err.Error()
			}
			_, err = s.db.ExecContext(ctx, s.db.Q(`INSERT INTO farm_diffs (build_id, path, digest_a, digest_b, report, created) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (build_id, path) DO NOTHING`), buildID, d.Path, digests[0], digests[1], sanitize(report), db.Millis(s.now()))
			if err != nil {
				s.log.Warn("store diffoscope report", "build", buildID, "path", d.Path, "err", err)
			}
		}
	}()
}

func (s *Service) diffoscope(ctx context.Context, path string, a, b blob.Digest) (string, error) {
	dir, err := os.MkdirTemp("", "afterlife-diff-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	name := filepath.Base(path)
	files := make([]string, 2)
	for i, d := range []blob.Digest{a, b} {
		p := filepath.Join(dir, fmt.Sprintf("%c", 'a'+i), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := s.copyBlob(ctx, d, p); err != nil {
			return "", err
		}
		files[i] = p
	}
	return verdict.Diffoscope(ctx, files[0], files[1])
}

func (s *Service) copyBlob(ctx context.Context, d blob.Digest, dst string) error {
	rc, err := blob.ReadVerified(ctx, s.store, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
