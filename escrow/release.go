package escrow

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Event is one entry of the append-only escrow log.
type Event struct {
	ID      string    `json:"id"`
	Seq     int64     `json:"seq"` // the event's place in the escrow's log, gap-free
	Deposit string    `json:"deposit"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Kind    string    `json:"kind"` // created, sealed, handover-claimed, handover-revoked, approved, released, aborted, abandoned
	Policy  string    `json:"policy,omitempty"`
	Details string    `json:"details,omitempty"`
}

// appendEvent is the only writer of escrow_events; nothing updates or
// deletes them.
func (s *Service) appendEvent(ctx context.Context, tx *sql.Tx, deposit string, at time.Time, actor, kind, pol, details string) error {
	seq, err := s.db.NextSeq(ctx, tx, "escrow_events")
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_events (id, seq, deposit, at, actor, kind, policy, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		ids.At("eev", at), seq, deposit, db.Millis(at), actor, kind, pol, details)
	return err
}

// Events returns a deposit's log, oldest first, to those who may see it.
func (s *Service) Events(ctx context.Context, p principal.Principal, id string) ([]Event, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return nil, err
	}
	if !canSee(p, d) {
		return nil, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	return s.events(ctx, `deposit = ?`, id)
}

func (s *Service) events(ctx context.Context, where string, args ...any) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, seq, deposit, at, actor, kind, policy, details FROM escrow_events WHERE `+where+` ORDER BY seq`), args...)
	if err != nil {
		return nil, fmt.Errorf("escrow: events: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.ID, &e.Seq, &e.Deposit, &at, &e.Actor, &e.Kind, &e.Policy, &e.Details); err != nil {
			return nil, fmt.Errorf("escrow: events: %w", err)
		}
		e.At = db.FromMillis(at)
		out = append(out, e)
	}
	return out, db.Classify(rows.Err())
}

// facts gathers what a policy decision needs about a sealed deposit.
func (s *Service) facts(ctx context.Context, d Deposit, now time.Time) (policy.Facts, error) {
	f := policy.Facts{Now: now, SealedAt: d.SealedAt}
	var at int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT at FROM escrow_checkins WHERE org = ?`), d.Org).Scan(&at)
	if err != nil && err != sql.ErrNoRows {
		return f, db.Classify(err)
	}
	f.LastCheckin = db.FromMillis(at)
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT trustee FROM escrow_approvals WHERE deposit = ? ORDER BY trustee`), d.ID)
	if err != nil {
		return f, db.Classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return f, err
		}
		f.Approvals = append(f.Approvals, t)
	}
	return f, db.Classify(rows.Err())
}

// Evaluate decides whether a sealed deposit's policy fires at now and, if
// it does, releases it. It reports whether this call released it.
func (s *Service) Evaluate(ctx context.Context, id string, now time.Time, actor string) (bool, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return false, err
	}
	if d.State != Sealed {
		return false, nil
	}
	pol, err := policy.Parse(d.Policy)
	if err != nil {
		return false, fmt.Errorf("escrow: stored policy of %s: %w", id, err)
	}
	f, err := s.facts(ctx, d, now)
	if err != nil {
		return false, fmt.Errorf("escrow: evaluate %s: %w", id, err)
	}
	fired := pol.Due(f)
	if fired == "" {
		return false, nil
	}
	return s.release(ctx, d, now, actor, fired)
}

// release makes a sealed deposit public: it writes a verified plaintext
// copy of every public and build-only file under its plaintext digest
// (private files stay sealed: they are read, decrypted on the fly, by their
// vendor and admins only), then flips the state in a
// conditional UPDATE, so however many replicas try, exactly one succeeds,
// logs the event and puts its notice in the outbox, all in one
// transaction. Writing the copies first is safe to repeat: they are
// content-addressed and identical. The notice is delivered at once; what
// fails is retried by the Outbox worker.
func (s *Service) release(ctx context.Context, d Deposit, now time.Time, actor, fired string) (bool, error) {
	fs, err := s.files(ctx, d.ID)
	if err != nil {
		return false, fmt.Errorf("escrow: release %s: %w", d.ID, err)
	}
	var plain []blob.Info
	for _, f := range fs {
		if f.IsLink() || f.Rights == manifest.Private {
			continue
		}
		info, err := s.decryptInto(ctx, d.ID, f)
		if err != nil {
			return false, fmt.Errorf("escrow: release %s: decrypt %s: %w", d.ID, f.Path, err)
		}
		plain = append(plain, info)
	}
	var won bool
	var notice string
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE escrow_deposits SET state = ?, released_at = ?, released_by = ?, fired = ? WHERE id = ? AND state = ?`),
			Released, db.Millis(now), actor, fired, d.ID, Sealed)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		won = n == 1
		if !won {
			return nil
		}
		for _, info := range plain {
			if err := s.trackBlob(ctx, tx, info, "plain", now); err != nil {
				return err
			}
		}
		if err := s.appendEvent(ctx, tx, d.ID, now, actor, "released", fired, "policy "+d.Policy); err != nil {
			return err
		}
		if err := s.logHandoverAtRelease(ctx, tx, d.ID, now, actor); err != nil {
			return err
		}
		notice, err = s.addNotice(ctx, tx, d, now, actor, fired)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("escrow: release %s: %w", d.ID, err)
	}
	if !won {
		return false, nil
	}
	count(s.metrics.Releases, 1)
	s.log.Info("escrow: deposit released", "deposit", d.ID, "product", d.Product, "fired", fired, "actor", actor)
	s.deliverNow(ctx, notice, now)
	return true, nil
}

// decryptInto writes the plaintext of a sealed file into the blob store
// under its plaintext digest; the store refuses content that does not hash
// to it.
func (s *Service) decryptInto(ctx context.Context, id string, f fileRow) (blob.Info, error) {
	pr, err := s.openSealed(ctx, id, f)
	if err != nil {
		return blob.Info{}, err
	}
	defer pr.Close()
	info, err := s.blobs.Put(ctx, pr, blob.Digest("sha256:"+f.SHA256))
	if err != nil {
		return blob.Info{}, err
	}
	return info, nil
}

// notOurKey tells a file sealed to another escrow key from a damaged one:
// age cannot tell them apart from the header, but the ciphertext digest
// can. Intact ciphertext that this replica's identity does not open means
// the replica holds the wrong key, which is not the blob's fault and is
// never recorded against it; damaged ciphertext is marked corrupt as on
// any read.
func (s *Service) notOurKey(f fileRow, piece blob.Digest, cipher *checked, rc io.Closer) error {
	defer rc.Close()
	_, err := io.Copy(io.Discard, cipher)
	switch {
	case cipher.sourceErr != nil:
		return cipher.sourceErr
	case err != nil: // the ciphertext digest failed, and is marked corrupt
		return err
	}
	s.log.Error("escrow: a sealed file is encrypted to an escrow key this replica does not hold; check its key directory",
		"file", f.Path, "blob", piece, "escrow_key", s.identity.Recipient().String(), "key_file", IdentityFile)
	return errs.E(errs.Internal, "%s is sealed to an escrow key other than this replica's (%s, from %s): the replica's key directory does not match the database",
		f.Path, s.identity.Recipient(), IdentityFile)
}

// ageReader turns age's authentication failures (not read errors of the
// blob store) into corruption.
type ageReader struct {
	r          io.Reader
	src        *checked
	onAuthFail func(error)
}

func (a *ageReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF && a.src.sourceErr == nil && a.src.verifyErr == nil {
		a.onAuthFail(err)
		return n, errs.Wrap(errs.Conflict, blob.ErrCorrupt, "sealed content fails its integrity check")
	}
	return n, err
}

// Checkin records that org is alive, which postpones dead-man releases of
// its deposits.
func (s *Service) Checkin(ctx context.Context, p principal.Principal, org string) (time.Time, error) {
	if p.Role != principal.Admin && (p.Role != principal.Vendor || p.Org != org) {
		return time.Time{}, errs.E(errs.Forbidden, "%s may not check in for org %s", p.Actor(), org)
	}
	now := s.now()
	_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_checkins (org, at, actor) VALUES (?, ?, ?)
		ON CONFLICT (org) DO UPDATE SET at = excluded.at, actor = excluded.actor`), org, db.Millis(now), p.Actor())
	if err != nil {
		return time.Time{}, fmt.Errorf("escrow: check in %s: %w", org, db.Classify(err))
	}
	s.log.Info("escrow: vendor checked in", "org", org, "actor", p.Actor())
	return now, nil
}

// LastCheckin is when org last checked in (zero: never).
func (s *Service) LastCheckin(ctx context.Context, org string) (time.Time, error) {
	var at int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT at FROM escrow_checkins WHERE org = ?`), org).Scan(&at)
	if err == sql.ErrNoRows {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("escrow: last check-in of %s: %w", org, db.Classify(err))
	}
	return db.FromMillis(at), nil
}

// Trustee is a person whose approval counts toward quorum policies.
type Trustee struct {
	Name      string    `json:"name"`
	PublicKey string    `json:"public_key"` // ed25519:<base64>
	CreatedAt time.Time `json:"created_at"`
}

// AddTrustee registers a trustee's signing key (admins only).
func (s *Service) AddTrustee(ctx context.Context, p principal.Principal, name, publicKey string) (Trustee, error) {
	if p.Role != principal.Admin {
		return Trustee{}, errs.E(errs.Forbidden, "only admins register trustees")
	}
	if !policy.ValidTrusteeName(name) {
		return Trustee{}, errs.E(errs.Invalid, "trustee name %q: want [a-z0-9][a-z0-9._-]{0,63}", name)
	}
	pub, err := receipt.ParsePublicKey([]byte(publicKey))
	if err != nil {
		return Trustee{}, err
	}
	t := Trustee{Name: name, PublicKey: receipt.FormatPublicKey(pub), CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	_, err = s.db.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_trustees (name, public_key, created_at, created_by) VALUES (?, ?, ?, ?)`),
		t.Name, t.PublicKey, db.Millis(t.CreatedAt), p.Actor())
	if db.IsUniqueViolation(err) {
		return Trustee{}, errs.E(errs.Conflict, "trustee %s is already registered", name)
	}
	if err != nil {
		return Trustee{}, fmt.Errorf("escrow: add trustee: %w", db.Classify(err))
	}
	return t, nil
}

// Trustees lists registered trustees.
func (s *Service) Trustees(ctx context.Context) ([]Trustee, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT name, public_key, created_at FROM escrow_trustees ORDER BY name`))
	if err != nil {
		return nil, fmt.Errorf("escrow: trustees: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Trustee{}
	for rows.Next() {
		var t Trustee
		var at int64
		if err := rows.Scan(&t.Name, &t.PublicKey, &at); err != nil {
			return nil, err
		}
		t.CreatedAt = db.FromMillis(at)
		out = append(out, t)
	}
	return out, db.Classify(rows.Err())
}

// SignApproval signs an approval with a trustee's key, base64-encoded as
// the API expects.
func SignApproval(key ed25519.PrivateKey, depositID, manifestDigest string) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, policy.ApprovalMessage(depositID, manifestDigest)))
}

// ApprovalResult tells what an approval achieved.
type ApprovalResult struct {
	Deposit   string `json:"deposit"`
	Approvals int    `json:"approvals"`
	Needed    int    `json:"needed"`
	Released  bool   `json:"released"`
}

// Approve records a trustee's signed approval of a sealed deposit; the K-th
// valid approval releases it. The caller must be that trustee.
func (s *Service) Approve(ctx context.Context, p principal.Principal, id, trustee, signature string) (ApprovalResult, error) {
	if p.Role != principal.Trustee || p.Name != trustee {
		return ApprovalResult{}, errs.E(errs.Forbidden, "%s may not approve as trustee %q: use that trustee's token", p.Actor(), trustee)
	}
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return ApprovalResult{}, err
	}
	pol, err := policy.Parse(d.Policy)
	if err != nil {
		return ApprovalResult{}, fmt.Errorf("escrow: stored policy of %s: %w", id, err)
	}
	if !pol.HasTrustee(trustee) {
		if !canSee(p, d) {
			// The same answer as for no deposit at all: a trustee the
			// quorum does not name must not learn a sealed deposit exists.
			return ApprovalResult{}, errs.E(errs.NotFound, "deposit %s not found", id)
		}
		return ApprovalResult{}, errs.E(errs.NotFound, "deposit %s has no quorum naming trustee %s", id, trustee)
	}
	if d.State != Sealed {
		return ApprovalResult{}, errs.E(errs.Conflict, "deposit %s is %s; only sealed deposits take approvals", id, d.State)
	}
	var key string
	err = s.db.QueryRowContext(ctx, s.db.Q(`SELECT public_key FROM escrow_trustees WHERE name = ?`), trustee).Scan(&key)
	if err != nil {
		return ApprovalResult{}, db.NotFound(err, "trustee %s is not registered", trustee)
	}
	pub, err := receipt.ParsePublicKey([]byte(key))
	if err != nil {
		return ApprovalResult{}, fmt.Errorf("escrow: stored key of trustee %s: %w", trustee, err)
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || !ed25519.Verify(pub, policy.ApprovalMessage(id, d.ManifestDigest), sig) {
		return ApprovalResult{}, errs.E(errs.Invalid, "signature does not verify: sign %q with trustee %s's key", policy.ApprovalMessage(id, d.ManifestDigest), trustee)
	}
	now := s.now()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_approvals (deposit, trustee, at, signature) VALUES (?, ?, ?, ?) ON CONFLICT (deposit, trustee) DO NOTHING`),
			id, trustee, db.Millis(now), signature)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // approving twice counts once
		}
		return s.appendEvent(ctx, tx, id, now, p.Actor(), "approved", policy.Quorum, "trustee "+trustee)
	})
	if err != nil {
		return ApprovalResult{}, fmt.Errorf("escrow: approve %s: %w", id, err)
	}
	released, err := s.Evaluate(ctx, id, now, p.Actor())
	if err != nil {
		return ApprovalResult{}, err
	}
	f, err := s.facts(ctx, d, now)
	if err != nil {
		return ApprovalResult{}, fmt.Errorf("escrow: approve %s: %w", id, err)
	}
	return ApprovalResult{Deposit: id, Approvals: len(f.Approvals), Needed: pol.Quorum.K, Released: released}, nil
}
