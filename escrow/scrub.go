package escrow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// ScrubLease is the lease a replica holds while it runs a periodic scrub.
const ScrubLease = "escrow-scrub"

// BlobProblem is a blob that failed its last check.
type BlobProblem struct {
	Digest    string    `json:"digest"`
	Role      string    `json:"role"` // cipher (sealed content), plain (released content) or artifact (a release's)
	Status    string    `json:"status"`
	Detail    string    `json:"detail"`
	CheckedAt time.Time `json:"checked_at"`
}

// ScrubReport is the outcome of one scrub.
type ScrubReport struct {
	ID         string        `json:"id"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at"`
	StartedBy  string        `json:"started_by"`
	Checked    int           `json:"checked"`
	Corrupt    int           `json:"corrupt"`
	Missing    int           `json:"missing"`
	Problems   []BlobProblem `json:"problems"`
}

// Scrubber re-reads every blob the escrow stored, and every release
// artifact (Options.Artifacts), and checks its digest.
type Scrubber struct {
	s       *Service
	replica string
}

// Scrubber returns a scrubber acting as replica replicaID.
func (s *Service) Scrubber(replicaID string) *Scrubber { return &Scrubber{s: s, replica: replicaID} }

// Run checks every blob now and records the result; corrupt and missing
// blobs are marked, logged, counted, and refused by every later read.
// A blob that checks fine again (restored from a backup) is served again.
func (sc *Scrubber) Run(ctx context.Context, actor string) (ScrubReport, error) {
	s := sc.s
	rep := ScrubReport{ID: ids.At("scr", s.now()), StartedAt: s.now().UTC(), StartedBy: actor}
	after := ""
	for {
		// Page by digest so a large store is never listed into memory.
		rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT digest FROM escrow_blobs WHERE digest > ? ORDER BY digest LIMIT 500`), after)
		if err != nil {
			return rep, fmt.Errorf("escrow: scrub: %w", db.Classify(err))
		}
		var page []string
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return rep, fmt.Errorf("escrow: scrub: %w", err)
			}
			page = append(page, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return rep, fmt.Errorf("escrow: scrub: %w", db.Classify(err))
		}
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			status, detail, err := sc.check(ctx, blob.Digest(d))
			if err != nil {
				return rep, fmt.Errorf("escrow: scrub %s: %w", d, err)
			}
			rep.Checked++
			count(s.metrics.BlobsChecked, 1)
			switch status {
			case blobCorrupt:
				rep.Corrupt++
			case blobMissing:
				rep.Missing++
			}
			if status != blobOK {
				s.setBlobStatus(ctx, blob.Digest(d), status, detail)
				continue
			}
			if _, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE escrow_blobs SET status = ?, detail = '', checked_at = ? WHERE digest = ?`),
				blobOK, db.Millis(s.now()), d); err != nil {
				return rep, fmt.Errorf("escrow: scrub %s: %w", d, db.Classify(err))
			}
		}
		after = page[len(page)-1]
	}
	if err := sc.scrubArtifacts(ctx, &rep); err != nil {
		return rep, err
	}
	rep.FinishedAt = s.now().UTC()
	_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_scrubs (id, started_at, finished_at, started_by, checked, corrupt, missing) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		rep.ID, db.Millis(rep.StartedAt), db.Millis(rep.FinishedAt), actor, rep.Checked, rep.Corrupt, rep.Missing)
	if err != nil {
		return rep, fmt.Errorf("escrow: scrub: record: %w", db.Classify(err))
	}
	rep.Problems, err = s.BlobProblems(ctx)
	if err != nil {
		return rep, err
	}
	s.log.Info("escrow: scrub finished", "checked", rep.Checked, "corrupt", rep.Corrupt, "missing", rep.Missing)
	return rep, nil
}

// scrubArtifacts checks the release artifacts like the escrow's own blobs
// and records each one's status in escrow_artifact_checks. The registry
// verifies a download's digest as it serves it; the scrub finds a bad blob
// before a device asks for it.
func (sc *Scrubber) scrubArtifacts(ctx context.Context, rep *ScrubReport) error {
	s := sc.s
	if s.artifacts == nil {
		return nil
	}
	digests, err := s.artifacts.ArtifactDigests(ctx)
	if err != nil {
		return fmt.Errorf("escrow: scrub: list release artifacts: %w", err)
	}
	for _, d := range digests {
		status, detail, err := sc.check(ctx, blob.Digest(d))
		if err != nil {
			return fmt.Errorf("escrow: scrub artifact %s: %w", d, err)
		}
		rep.Checked++
		count(s.metrics.BlobsChecked, 1)
		switch status {
		case blobCorrupt:
			rep.Corrupt++
		case blobMissing:
			rep.Missing++
		}
		if status != blobOK {
			count(s.metrics.BlobsCorrupt, 1)
			s.log.Error("escrow: release artifact failed its check", "digest", d, "status", status, "detail", detail)
		}
		if _, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_artifact_checks (digest, status, detail, checked_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (digest) DO UPDATE SET status = excluded.status, detail = excluded.detail, checked_at = excluded.checked_at`),
			d, status, detail, db.Millis(s.now())); err != nil {
			return fmt.Errorf("escrow: scrub artifact %s: %w", d, db.Classify(err))
		}
	}
	return nil
}

// check re-hashes one blob. An error means the check itself could not run
// (the store is down); corruption is a status, not an error.
func (sc *Scrubber) check(ctx context.Context, d blob.Digest) (status, detail string, err error) {
	rc, err := sc.s.blobs.Get(ctx, d, 0, -1)
	if errs.Is(err, errs.NotFound) {
		return blobMissing, "not in the blob store", nil
	}
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", "", err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != string(d) {
		return blobCorrupt, "content hashes to " + got, nil
	}
	return blobOK, "", nil
}

// RunEvery scrubs every interval while this replica holds the scrub lease.
func (sc *Scrubber) RunEvery(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ok, err := sc.s.db.TryLease(ctx, ScrubLease, sc.replica, every, sc.s.now())
		if err != nil {
			sc.s.log.Error("escrow: scrub lease", "err", err)
			continue
		}
		if !ok {
			continue
		}
		if _, err := sc.Run(ctx, "scheduler:"+sc.replica); err != nil && ctx.Err() == nil {
			sc.s.log.Error("escrow: periodic scrub failed", "err", err)
		}
	}
}

// BlobProblems lists the blobs currently marked corrupt or missing.
func (s *Service) BlobProblems(ctx context.Context) ([]BlobProblem, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT digest, role, status, detail, checked_at FROM escrow_blobs WHERE status <> ?
		UNION ALL SELECT digest, 'artifact', status, detail, checked_at FROM escrow_artifact_checks WHERE status <> ?
		ORDER BY digest`), blobOK, blobOK)
	if err != nil {
		return nil, fmt.Errorf("escrow: blob problems: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []BlobProblem{}
	for rows.Next() {
		var b BlobProblem
		var at int64
		if err := rows.Scan(&b.Digest, &b.Role, &b.Status, &b.Detail, &at); err != nil {
			return nil, err
		}
		b.CheckedAt = db.FromMillis(at)
		out = append(out, b)
	}
	return out, db.Classify(rows.Err())
}

// ScrubStatus is what the admin API shows: recent scrubs and current
// problems.
type ScrubStatus struct {
	Recent   []ScrubReport `json:"recent"`
	Problems []BlobProblem `json:"problems"`
}

// ScrubStatus returns the last scrubs (newest first) and the blobs now
// marked bad. Admins only.
func (s *Service) ScrubStatus(ctx context.Context, p principal.Principal) (ScrubStatus, error) {
	if p.Role != principal.Admin {
		return ScrubStatus{}, errs.E(errs.Forbidden, "only admins see scrub results")
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, started_at, finished_at, started_by, checked, corrupt, missing FROM escrow_scrubs ORDER BY started_at DESC, id DESC LIMIT 20`))
	if err != nil {
		return ScrubStatus{}, fmt.Errorf("escrow: scrub status: %w", db.Classify(err))
	}
	defer rows.Close()
	st := ScrubStatus{Recent: []ScrubReport{}}
	for rows.Next() {
		var r ScrubReport
		var a, b int64
		if err := rows.Scan(&r.ID, &a, &b, &r.StartedBy, &r.Checked, &r.Corrupt, &r.Missing); err != nil {
			return ScrubStatus{}, err
		}
		r.StartedAt, r.FinishedAt = db.FromMillis(a), db.FromMillis(b)
		st.Recent = append(st.Recent, r)
	}
	if err := rows.Err(); err != nil {
		return ScrubStatus{}, db.Classify(err)
	}
	st.Problems, err = s.BlobProblems(ctx)
	return st, err
}
