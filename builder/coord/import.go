package coord

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/keys"
	"github.com/afterlife-oss/afterlife/builder/verdict"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// ImportBuild records a build another registry's farm decided, as its
// API answered for it (a Build as JSON), for a new registry carrying on
// from a mirror of that one (docs/mirror.md, "Taking a registry over"):
// the build keeps its id, spec, verdict, jobs, results and difference
// reports, and its page and API answer as they did on the origin. The
// caller holds it to the builders' signed attestations first and stores
// each result's attestation and buildinfo in the blob store, which
// ImportBuild checks; logs stay with the origin (a result's log is
// dropped). Only a decided build is taken; one here already is a
// Conflict. The import decides nothing: the farm's verdict log (which the
// transparency log reads) does not record it.
func (s *Service) ImportBuild(ctx context.Context, doc []byte) error {
	var b Build
	if err := json.Unmarshal(doc, &b); err != nil || b.ID == "" {
		return errs.Wrap(errs.Invalid, err, "coord: import: not a build")
	}
	if b.State == verdict.Pending || b.State == "" {
		return errs.E(errs.Invalid, "coord: import build %s: it is not decided (%q)", b.ID, b.State)
	}
	for _, r := range b.Results {
		for _, d := range []blob.Digest{r.Attestation, r.BuildInfo} {
			if d == "" {
				continue
			}
			if _, err := s.store.Stat(ctx, d); err != nil {
				return fmt.Errorf("coord: import build %s: %s of job %s: %w", b.ID, d, r.JobID, err)
			}
		}
	}
	spec, _ := json.Marshal(b.Spec)
	vj, _ := json.Marshal(b.Verdict)
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_builds (id, repo, commit_id, path, name, version, spec, state, verdict, quorum, requested_by, created, decided)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			b.ID, b.Repo, b.Commit, b.Path, b.Name, b.Version, string(spec), string(b.State), string(vj), b.Quorum, b.RequestedBy,
			db.Millis(b.Created), db.Millis(b.Decided))
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "coord: build %s (or its recipe at that commit) is here already", b.ID)
		}
		if err != nil {
			return fmt.Errorf("coord: import build %s: %w", b.ID, db.Classify(err))
		}
		for _, p := range b.Spec.Products {
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_build_products (build_id, product) VALUES (?, ?)`), b.ID, p); err != nil {
				return fmt.Errorf("coord: import build %s: %w", b.ID, db.Classify(err))
			}
		}
		for _, j := range b.Jobs {
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_jobs (id, build_id, state, builder_id, operator, toolchain, toolchain_version, tools, arch, lease_until, attempts, created, started, finished, cold)
				VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, 0, ?, ?, ?, ?, ?)`),
				j.ID, b.ID, string(j.State), j.BuilderID, j.Operator, b.Spec.Toolchain.Name, b.Spec.Toolchain.Version, b.Spec.Arch,
				j.Attempts, db.Millis(j.Created), db.Millis(j.Started), db.Millis(j.Finished), boolInt(j.Cold)); err != nil {
				return fmt.Errorf("coord: import job %s of build %s: %w", j.ID, b.ID, db.Classify(err))
			}
		}
		for _, r := range b.Results {
			outs, _ := json.Marshal(r.Outputs)
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_results (job_id, build_id, builder_id, operator, outputs, buildinfo, attestation, log, failed, reason, created, cold)
				VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?)`),
				r.JobID, b.ID, r.BuilderID, r.Operator, string(outs), string(r.BuildInfo), string(r.Attestation), boolInt(r.Failed), r.Reason,
				db.Millis(r.Created), boolInt(r.Cold)); err != nil {
				return fmt.Errorf("coord: import result of job %s of build %s: %w", r.JobID, b.ID, db.Classify(err))
			}
		}
		for _, d := range b.Diffs {
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO farm_diffs (build_id, path, digest_a, digest_b, report, created) VALUES (?, ?, ?, ?, ?, ?)`),
				b.ID, d.Path, string(d.DigestA), string(d.DigestB), d.Diffoscope, db.Millis(b.Decided)); err != nil {
				return fmt.Errorf("coord: import build %s: %w", b.ID, db.Classify(err))
			}
		}
		return nil
	})
}

// ImportBuilder records a builder of another registry's farm, as its API
// listed it (a builder.Builder as JSON), so the attestations of imported
// builds are checked with its key on this registry (and on mirrors of
// it) as on the origin. It never builds here: it has no token (its token
// id names the import), no architecture and no toolchain, so no job is
// ever leased to it. One here already is left as it is.
func (s *Service) ImportBuilder(ctx context.Context, doc []byte) error {
	var b builder.Builder
	if err := json.Unmarshal(doc, &b); err != nil || b.ID == "" {
		return errs.Wrap(errs.Invalid, err, "coord: import: not a builder")
	}
	pub, err := keys.ParsePublicKey(b.PublicKey)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "coord: import builder %s", b.ID)
	}
	_, err = s.db.ExecContext(ctx, s.db.Q(`INSERT INTO farm_builders (id, token_id, name, operator, public_key, key_id, arch, toolchains, agent_version, registered, last_seen)
		VALUES (?, ?, ?, ?, ?, ?, '', '[]', ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		b.ID, "imported:"+b.ID, b.Name, b.Operator, keys.PublicKeyString(pub), keys.KeyID(pub), b.AgentVersion, db.Millis(b.Registered), db.Millis(b.LastSeen))
	if err != nil {
		return fmt.Errorf("coord: import builder %s: %w", b.ID, db.Classify(err))
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
