package coord

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
)

// MaxGiveBacks is how often a job may be given back before it fails.
const MaxGiveBacks = 10

// NewBuild asks for a build of spec.
type NewBuild struct {
	Spec        builder.Spec
	RequestedBy string
}

// CreateBuild stores a build with one job per wanted builder (the quorum),
// or finds the build of the same repository, commit and recipe path:
// submitting the same commit twice gives the same build (created false).
func (s *Service) CreateBuild(ctx context.Context, nb NewBuild) (string, bool, error) {
	sp := nb.Spec
	if err := sp.Validate(); err != nil {
		return "", false, err
	}
	specJSON, err := json.Marshal(sp)
	if err != nil {
		return "", false, fmt.Errorf("coord: encode spec: %w", err)
	}
	pending, _ := json.Marshal(verdict.Decide(nil, s.opts.Quorum, verdict.Outstanding{Jobs: s.opts.Quorum, Cold: true}))
	tools := ""
	if len(sp.Tools) > 0 {
		b, _ := json.Marshal(sp.Tools)
		tools = string(b)
	}
	now := db.Millis(s.now())
	var id string
	created := false
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		created = false
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT id FROM farm_builds WHERE repo = ? AND commit_id = ? AND path = ?`),
			sp.Recipe.RepoURL, sp.Recipe.Commit, sp.Recipe.Path).Scan(&id)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		id = ids.At("bld", db.FromMillis(now))
		res, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_builds (id, repo, commit_id, path, name, version, spec, state, verdict, quorum, requested_by, created, decided)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (repo, commit_id, path) DO NOTHING`),
			id, sp.Recipe.RepoURL, sp.Recipe.Commit, sp.Recipe.Path, sp.Recipe.Name, sp.Recipe.Version, string(specJSON),
			string(verdict.Pending), string(pending), s.opts.Quorum, nb.RequestedBy, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// Another replica inserted it between our SELECT and INSERT.
			return tx.QueryRowContext(ctx, s.db.Q(`SELECT id FROM farm_builds WHERE repo = ? AND commit_id = ? AND path = ?`),
				sp.Recipe.RepoURL, sp.Recipe.Commit, sp.Recipe.Path).Scan(&id)
		}
		created = true
		for _, p := range uniq(sp.Products) {
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_build_products (build_id, product) VALUES (?, ?)`), id, p); err != nil {
				return err
			}
		}
		// The first job is the cold witness: it runs with empty caches, and
		// the build is reproducible only if it agrees.
		for i := range s.opts.Quorum {
			cold := 0
			if i == 0 {
				cold = 1
			}
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_jobs (id, build_id, state, builder_id, operator, toolchain, toolchain_version, tools, arch, lease_until, attempts, created, started, finished, cold)
				VALUES (?, ?, ?, '', '', ?, ?, ?, ?, 0, 0, ?, 0, 0, ?)`),
				ids.At("job", db.FromMillis(now)), id, JobQueued, sp.Toolchain.Name, sp.Toolchain.Version, tools, sp.Arch, now, cold); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("coord: create build of %s@%s: %w", sp.Recipe.RepoURL, sp.Recipe.Commit, err)
	}
	if created {
		s.log.Info("build queued", "build", id, "recipe", sp.Recipe.Name, "commit", sp.Recipe.Commit, "jobs", s.opts.Quorum)
		s.wake.notify()
	}
	return id, created, nil
}

func uniq(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// Next waits up to wait (capped at MaxWait) for a job builderID can run,
// leases it and returns it; nil, nil when none came. It never busy-polls:
// it sleeps until a job is queued or returned on this replica, or until
// the periodic re-check for jobs queued on other replicas. Once the
// replica drains (Drain) it answers at once.
func (s *Service) Next(ctx context.Context, builderID string, wait time.Duration) (*builder.Job, error) {
	if wait <= 0 || wait > s.opts.MaxWait {
		wait = s.opts.MaxWait
	}
	b, err := s.Builder(ctx, builderID)
	if err != nil {
		return nil, err
	}
	if b.Operator, err = s.boundOperator(ctx, b); err != nil {
		return nil, err
	}
	if b.Operator == "" {
		// Its results would count for nothing, and the job it held would
		// keep a bound builder from it.
		return nil, errs.E(errs.Forbidden, "builder %s is not bound to an operator; an admin must bind its token (afterlife admin token bind TOKEN_ID --operator ORG) before it gets jobs", b.ID)
	}
	s.touch(ctx, builderID)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		woken := s.wake.wait() // before claiming, so a job queued meanwhile is not missed
		job, err := s.claim(ctx, b)
		if err != nil || job != nil {
			return job, err
		}
		recheck := time.NewTimer(s.opts.Recheck)
		select {
		case <-s.draining:
			recheck.Stop()
			return nil, nil
		case <-woken:
		case <-recheck.C:
		case <-deadline.C:
			recheck.Stop()
			return nil, nil
		case <-ctx.Done():
			recheck.Stop()
			return nil, ctx.Err()
		}
		recheck.Stop()
	}
}

type candidate struct {
	id, buildID, tc, tcVersion, tools, arch string
	created                                 int64
}

// capable reports whether b can run c: its architecture, toolchain and
// every tool the job declares.
func (c candidate) capable(b builder.Builder) bool {
	if !builder.Capable(b.Arch, b.Toolchains, builder.ToolchainReq{Name: c.tc, Version: c.tcVersion}, c.arch) {
		return false
	}
	if c.tools == "" {
		return true
	}
	var tools []builder.ToolchainReq
	if err := json.Unmarshal([]byte(c.tools), &tools); err != nil {
		return false
	}
	return builder.HasTools(b.Toolchains, tools)
}

// claim leases the oldest queued job that b can run and that belongs to a
// build in which neither b nor another builder of b's operator holds or has
// finished a job (only distinct operators count towards the quorum).
func (s *Service) claim(ctx context.Context, b builder.Builder) (*builder.Job, error) {
	var job *builder.Job
	var queuedAt int64
	now := s.now()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		job = nil
		rows, err := tx.QueryContext(ctx, s.db.Q(`SELECT j.id, j.build_id, j.toolchain, j.toolchain_version, j.tools, j.arch, j.created FROM farm_jobs j
			WHERE j.state = ? AND NOT EXISTS (SELECT 1 FROM farm_jobs o WHERE o.build_id = j.build_id
				AND o.state IN (?, ?) AND (o.builder_id = ? OR o.operator = ?))
			ORDER BY j.created, j.id LIMIT ?`+s.db.SkipLocked()), JobQueued, JobLeased, JobDone, b.ID, b.Operator, candidates)
		if err != nil {
			return err
		}
		var cands []candidate
		for rows.Next() {
			var c candidate
			if err := rows.Scan(&c.id, &c.buildID, &c.tc, &c.tcVersion, &c.tools, &c.arch, &c.created); err != nil {
				rows.Close()
				return err
			}
			cands = append(cands, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range cands {
			if !c.capable(b) {
				continue
			}
			ok, err := s.lease(ctx, tx, c, b, now)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			j, err := s.loadJob(ctx, tx, c.id)
			if err != nil {
				return err
			}
			job, queuedAt = j, c.created
			return nil
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coord: claim a job for builder %s: %w", b.ID, err)
	}
	if job != nil {
		s.startWait.Observe(now.Sub(db.FromMillis(queuedAt)).Seconds())
		s.log.Info("job leased", "job", job.ID, "build", job.BuildID, "builder", b.ID, "operator", b.Operator, "attempt", job.Attempt)
	}
	return job, nil
}

// lease takes job c for b. On PostgreSQL the build row is locked first so
// that two replicas cannot hand two jobs of one build to one operator; the
// exclusion is then checked again under that lock.
func (s *Service) lease(ctx context.Context, tx *sql.Tx, c candidate, b builder.Builder, now time.Time) (bool, error) {
	if s.db.Dialect == db.Postgres {
		var one string
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT id FROM farm_builds WHERE id = ? FOR UPDATE`), c.buildID).Scan(&one); err != nil {
			return false, err
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM farm_jobs WHERE build_id = ? AND state IN (?, ?) AND (builder_id = ? OR operator = ?)`),
			c.buildID, JobLeased, JobDone, b.ID, b.Operator).Scan(&n); err != nil {
			return false, err
		}
		if n > 0 {
			return false, nil
		}
	}
	res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET state = ?, builder_id = ?, operator = ?, lease_until = ?, attempts = attempts + 1, started = ?
		WHERE id = ? AND state = ?`),
		JobLeased, b.ID, b.Operator, db.Millis(now.Add(s.opts.LeaseTTL)), db.Millis(now), c.id, JobQueued)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

type jobRow struct {
	id, buildID, builderID, operator string
	state                            JobState
	leaseUntil                       int64
	attempts                         int
	cold                             bool // the cold witness: runs with empty caches
}

func (s *Service) jobRow(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (jobRow, error) {
	var j jobRow
	var cold int
	err := q.QueryRowContext(ctx, s.db.Q(`SELECT id, build_id, state, builder_id, operator, lease_until, attempts, cold FROM farm_jobs WHERE id = ?`), id).
		Scan(&j.id, &j.buildID, &j.state, &j.builderID, &j.operator, &j.leaseUntil, &j.attempts, &cold)
	if err != nil {
		return j, db.NotFound(err, "job %s not found", id)
	}
	j.cold = cold == 1
	return j, nil
}

func (s *Service) loadJob(ctx context.Context, tx *sql.Tx, id string) (*builder.Job, error) {
	j, err := s.jobRow(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	sp, err := s.spec(ctx, tx, j.buildID)
	if err != nil {
		return nil, err
	}
	return &builder.Job{
		ID: j.id, BuildID: j.buildID, BuilderID: j.builderID, Attempt: j.attempts, Cold: j.cold,
		LeaseUntil: db.FromMillis(j.leaseUntil), LeaseTTL: s.opts.LeaseTTL, Spec: sp,
	}, nil
}

func (s *Service) spec(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, buildID string) (builder.Spec, error) {
	var raw string
	var sp builder.Spec
	if err := q.QueryRowContext(ctx, s.db.Q(`SELECT spec FROM farm_builds WHERE id = ?`), buildID).Scan(&raw); err != nil {
		return sp, db.NotFound(err, "build %s not found", buildID)
	}
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		return sp, fmt.Errorf("coord: build %s spec: %w", buildID, err)
	}
	return sp, nil
}

// holding checks that builderID holds an unexpired lease on jobID.
func (s *Service) holding(j jobRow, builderID string, now time.Time) error {
	if j.state != JobLeased || j.builderID != builderID {
		return errs.E(errs.Conflict, "job %s is not leased by this builder (it is %s); drop it", j.id, j.state)
	}
	if j.leaseUntil < db.Millis(now) {
		return errs.E(errs.Conflict, "the lease on job %s expired; drop it", j.id)
	}
	return nil
}

// CheckLease returns nil when builderID holds jobID now.
func (s *Service) CheckLease(ctx context.Context, jobID, builderID string) error {
	j, err := s.jobRow(ctx, s.db, jobID)
	if err != nil {
		return err
	}
	return s.holding(j, builderID, s.now())
}

// Extend renews builderID's lease on jobID by LeaseTTL and returns the new
// end. A lost lease (expired, given back, taken by another builder) is a
// Conflict error; the builder must drop the job.
func (s *Service) Extend(ctx context.Context, jobID, builderID string) (time.Time, error) {
	now := s.now()
	until := now.Add(s.opts.LeaseTTL)
	res, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET lease_until = ? WHERE id = ? AND builder_id = ? AND state = ? AND lease_until >= ?`),
		db.Millis(until), jobID, builderID, JobLeased, db.Millis(now))
	if err != nil {
		return time.Time{}, fmt.Errorf("coord: extend job %s: %w", jobID, db.Classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.jobRow(ctx, s.db, jobID); err != nil {
			return time.Time{}, err
		}
		return time.Time{}, errs.E(errs.Conflict, "job %s is no longer leased by this builder; drop it", jobID)
	}
	s.touch(ctx, builderID)
	return until, nil
}

// GiveBack returns a job builderID holds to the queue, without counting
// the attempt against it.
func (s *Service) GiveBack(ctx context.Context, jobID, builderID string) error {
	now := s.now()
	failed := false
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		failed = false
		var buildID, operator string
		var givebacks int
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT build_id, operator, givebacks FROM farm_jobs WHERE id = ? AND builder_id = ? AND state = ?`),
			jobID, builderID, JobLeased).Scan(&buildID, &operator, &givebacks)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := s.jobRow(ctx, tx, jobID); err != nil {
				return err
			}
			return errs.E(errs.Conflict, "job %s is not leased by this builder", jobID)
		}
		if err != nil {
			return err
		}
		// A give-back does not count as a lost lease (a builder shutting
		// down hands its job on), but a job that builders keep giving back
		// can never run: it fails instead of circling for ever.
		if givebacks+1 >= MaxGiveBacks {
			if _, err := tx.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET state = ?, lease_until = 0, finished = ?, givebacks = givebacks + 1 WHERE id = ?`),
				JobFailed, db.Millis(now), jobID); err != nil {
				return err
			}
			failed = true
			reason := fmt.Sprintf("given back %d times: no builder could run it (see the job log)", givebacks+1)
			if err := s.insertResult(ctx, tx, jobID, buildID, builderID, operator, builder.Report{Failed: true, Reason: reason}, now); err != nil {
				return err
			}
			_, err := s.decide(ctx, tx, buildID, now)
			return err
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET state = ?, builder_id = '', operator = '', lease_until = 0, attempts = attempts - 1, started = 0,
			givebacks = givebacks + 1 WHERE id = ?`), JobQueued, jobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("coord: give back job %s: %w", jobID, db.Classify(err))
	}
	if failed {
		s.log.Warn("job failed: given back too often", "job", jobID, "builder", builderID, "limit", MaxGiveBacks)
	} else {
		s.log.Info("job given back", "job", jobID, "builder", builderID)
	}
	s.wake.notify()
	return nil
}

// AppendLog adds a chunk to the live log of a job builderID holds. Bytes
// that are not UTF-8 are replaced (the final log blob keeps them), and the
// live log stops growing at Options.MaxLogBytes.
func (s *Service) AppendLog(ctx context.Context, jobID, builderID string, chunk []byte) error {
	if len(chunk) == 0 {
		return nil
	}
	text := strings.ToValidUTF8(strings.ReplaceAll(string(chunk), "\x00", ""), "\uFFFD")
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		j, err := s.jobRow(ctx, tx, jobID)
		if err != nil {
			return err
		}
		if err := s.holding(j, builderID, s.now()); err != nil {
			return err
		}
		var seq, end int64
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(pos + `+byteLength(s.db, "data")+`), 0) FROM farm_logs WHERE job_id = ?`), jobID).Scan(&seq, &end); err != nil {
			return err
		}
		if end >= s.opts.MaxLogBytes {
			return nil
		}
		if end+int64(len(text)) > s.opts.MaxLogBytes {
			text = truncateUTF8(text, int(s.opts.MaxLogBytes-end))
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_logs (job_id, seq, pos, data) VALUES (?, ?, ?, ?)`), jobID, seq+1, end, text)
		return err
	})
}

// byteLength is the SQL expression for the length in bytes of a text column.
func byteLength(d *db.DB, col string) string {
	if d.Dialect == db.Postgres {
		return "octet_length(" + col + ")"
	}
	return "length(CAST(" + col + " AS BLOB))"
}

func truncateUTF8(s string, n int) string {
	if n >= len(s) {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// LogChunk is part of a job's live log.
type LogChunk struct {
	Data []byte `json:"data"`
	Next int64  `json:"next"` // the offset to ask for next
	Done bool   `json:"done"` // the job ended; no more will come
}

// BuildLog is Log for a job of build buildID; a job of another build is
// not found.
func (s *Service) BuildLog(ctx context.Context, buildID, jobID string, offset int64) (LogChunk, error) {
	j, err := s.jobRow(ctx, s.db, jobID)
	if errs.Is(err, errs.NotFound) || (err == nil && j.buildID != buildID) {
		return LogChunk{}, errs.E(errs.NotFound, "build %s has no job %s", buildID, jobID)
	}
	if err != nil {
		return LogChunk{}, err
	}
	return s.Log(ctx, jobID, offset)
}

// Log returns the live log of a job from byte offset on.
func (s *Service) Log(ctx context.Context, jobID string, offset int64) (LogChunk, error) {
	j, err := s.jobRow(ctx, s.db, jobID)
	if err != nil {
		return LogChunk{}, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT pos, data FROM farm_logs WHERE job_id = ? ORDER BY seq`), jobID)
	if err != nil {
		return LogChunk{}, fmt.Errorf("coord: log of %s: %w", jobID, db.Classify(err))
	}
	defer rows.Close()
	out := LogChunk{Next: max(offset, 0)}
	var buf []byte
	for rows.Next() {
		var pos int64
		var data string
		if err := rows.Scan(&pos, &data); err != nil {
			return LogChunk{}, err
		}
		end := pos + int64(len(data))
		if end <= out.Next {
			continue
		}
		from := max(out.Next-pos, 0)
		buf = append(buf, data[from:]...)
		out.Next = end
	}
	out.Data = buf
	out.Done = j.state == JobDone || j.state == JobFailed
	return out, rows.Err()
}

// ExpireLeases returns every job whose lease ended before now to the
// queue, or fails it after MaxAttempts leases, and re-decides the builds of
// failed jobs. Every update is conditional, so replicas may run it at once.
func (s *Service) ExpireLeases(ctx context.Context, now time.Time) (int, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, build_id, builder_id, operator, attempts FROM farm_jobs WHERE state = ? AND lease_until < ?`),
		JobLeased, db.Millis(now))
	if err != nil {
		return 0, fmt.Errorf("coord: find expired leases: %w", db.Classify(err))
	}
	type expired struct {
		id, build, builderID, operator string
		attempts                       int
	}
	var list []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.id, &e.build, &e.builderID, &e.operator, &e.attempts); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range list {
		var changed bool
		err := s.db.Tx(ctx, func(tx *sql.Tx) error {
			changed = false
			if e.attempts < s.opts.MaxAttempts {
				res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET state = ?, builder_id = '', operator = '', lease_until = 0, started = 0
					WHERE id = ? AND state = ? AND lease_until < ?`), JobQueued, e.id, JobLeased, db.Millis(now))
				if err != nil {
					return err
				}
				c, _ := res.RowsAffected()
				changed = c == 1
				return nil
			}
			res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE farm_jobs SET state = ?, lease_until = 0, finished = ?
				WHERE id = ? AND state = ? AND lease_until < ?`), JobFailed, db.Millis(now), e.id, JobLeased, db.Millis(now))
			if err != nil {
				return err
			}
			if c, _ := res.RowsAffected(); c == 0 {
				return nil
			}
			changed = true
			reason := fmt.Sprintf("lease expired %d times; last builder %s stopped answering", e.attempts, e.builderID)
			if err := s.insertResult(ctx, tx, e.id, e.build, e.builderID, e.operator, builder.Report{Failed: true, Reason: reason}, now); err != nil {
				return err
			}
			_, err = s.decide(ctx, tx, e.build, now)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("coord: expire lease of job %s: %w", e.id, err)
		}
		if changed {
			n++
			s.expiries.Inc()
			s.log.Warn("job lease expired", "job", e.id, "build", e.build, "builder", e.builderID, "attempts", e.attempts)
		}
	}
	if n > 0 {
		s.wake.notify()
	}
	return n, nil
}

// Run sweeps expired leases every interval until ctx ends. Replicas take
// turns through a database lease, so one of them sweeps at a time.
func (s *Service) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = max(s.opts.LeaseTTL/4, 100*time.Millisecond)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closed:
			return nil
		case <-t.C:
		}
		now := s.now()
		ok, err := s.db.TryLease(ctx, "farm-sweeper", s.opts.Holder, 3*interval, now)
		if err != nil {
			s.log.Warn("farm sweeper: lease", "err", err)
			continue
		}
		if !ok {
			continue
		}
		if _, err := s.ExpireLeases(ctx, now); err != nil && ctx.Err() == nil {
			s.log.Warn("farm sweeper", "err", err)
		}
	}
}

// QueueDepth counts queued jobs.
func (s *Service) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM farm_jobs WHERE state = ?`), JobQueued).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("coord: queue depth: %w", db.Classify(err))
	}
	return n, nil
}
