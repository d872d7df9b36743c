package coord

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/logevent"
)

// logVerdict appends a decided build to the farm's verdict log, in the
// transaction that decides it.
func (s *Service) logVerdict(ctx context.Context, tx *sql.Tx, buildID string, now time.Time) error {
	seq, err := s.db.NextSeq(ctx, tx, "farm_verdict_log")
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_verdict_log (seq, build_id, at) VALUES (?, ?, ?)`), seq, buildID, db.Millis(now))
	return err
}

// LoggedVerdict is a decided build as the transparency log records it.
type LoggedVerdict struct {
	Seq   int64
	At    time.Time
	Build Build // with its results
}

// VerdictsAfter returns up to limit decided builds with a seq above seq,
// in the order they were decided: the transparency log tails them.
func (s *Service) VerdictsAfter(ctx context.Context, seq int64, limit int) ([]LoggedVerdict, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT seq, build_id, at FROM farm_verdict_log WHERE seq > ? ORDER BY seq LIMIT ?`), seq, limit)
	if err != nil {
		return nil, fmt.Errorf("coord: verdicts after %d: %w", seq, db.Classify(err))
	}
	var out []LoggedVerdict
	var ids []string
	for rows.Next() {
		var v LoggedVerdict
		var id string
		var at int64
		if err := rows.Scan(&v.Seq, &id, &at); err != nil {
			rows.Close()
			return nil, err
		}
		v.At = db.FromMillis(at)
		out = append(out, v)
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, db.Classify(err)
	}
	for i, id := range ids {
		if out[i].Build, err = s.Build(ctx, id); err != nil {
			return nil, fmt.Errorf("coord: verdict of %s: %w", id, err)
		}
	}
	return out, nil
}

// LogEvents is the farm's log of decided builds as the transparency log
// records it: each verdict with the
// builders, their operators, their attestations and the cold witness.
func (s *Service) LogEvents(ctx context.Context, seq int64, limit int) ([]logevent.Event, error) {
	vs, err := s.VerdictsAfter(ctx, seq, limit)
	if err != nil {
		return nil, err
	}
	out := make([]logevent.Event, len(vs))
	for i, v := range vs {
		b := v.Build
		results := make([]map[string]any, 0, len(b.Results))
		for _, r := range b.Results {
			results = append(results, map[string]any{"job": r.JobID, "builder": r.BuilderID, "operator": r.Operator,
				"attestation": string(r.Attestation), "cold": r.Cold, "failed": r.Failed})
		}
		subject := b.ID
		if len(b.Products) == 1 {
			subject = b.Products[0]
		}
		out[i] = logevent.Event{Seq: v.Seq, At: v.At, Type: "build.verdict", Subject: subject, Fields: map[string]any{
			"build": b.ID, "repo": b.Repo, "commit": b.Commit, "path": b.Path, "recipe": b.Name, "version": b.Version,
			"products": b.Products, "state": string(b.State), "reason": b.Verdict.Reason, "agreeing": b.Verdict.Agreeing,
			"quorum": b.Quorum, "outputs": b.Verdict.Outputs, "cold_job": b.Verdict.ColdJob, "results": results,
		}}
	}
	return out, nil
}
