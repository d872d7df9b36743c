package escrow

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
)

// Deposit states.
const (
	Uploading = wire.Uploading // files arriving; visible to its org only
	Sealed    = wire.Sealed    // committed, encrypted, private
	Released  = wire.Released  // public
)

// Deposit is one sunset package; its shape is shared with the vendor's
// client through escrow/wire.
type Deposit = wire.Deposit

// CreateRequest starts a deposit.
type CreateRequest struct {
	Product  string           `json:"product"`
	Policy   string           `json:"policy"`
	Manifest []manifest.Entry `json:"manifest"`
}

// FileState tells whether one manifest entry has arrived.
type FileState struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Done bool   `json:"done"`
}

// UploadStatus is what a resuming client needs.
type UploadStatus struct {
	Deposit string      `json:"deposit"`
	State   string      `json:"state"`
	Files   []FileState `json:"files"`
}

// Create validates the request and records a deposit in state uploading.
// Only the product's vendor org (or an admin) may deposit for it.
func (s *Service) Create(ctx context.Context, p auth.Principal, req CreateRequest) (Deposit, error) {
	if !p.Is(auth.Vendor) {
		return Deposit{}, errs.E(errs.Forbidden, "only vendors deposit")
	}
	org, err := s.products.Vendor(ctx, req.Product)
	if err != nil {
		return Deposit{}, fmt.Errorf("escrow: deposit for product %q: %w", req.Product, err)
	}
	if !isOwner(p, Deposit{Org: org}) {
		return Deposit{}, errs.E(errs.Forbidden, "product %s belongs to org %s; %s may not deposit for it", req.Product, org, p.Actor())
	}
	pol, err := policy.Parse(req.Policy)
	if err != nil {
		return Deposit{}, err
	}
	entries, err := manifest.Validate(req.Manifest, s.limits)
	if err != nil {
		return Deposit{}, err
	}
	files, size := manifest.Totals(entries)
	now := s.now()
	d := Deposit{
		ID: ids.At("dep", now), Product: req.Product, Org: org, Policy: pol.String(), State: Uploading,
		ManifestDigest: manifest.Digest(entries), Files: files, TotalSize: size,
		CreatedBy: p.Actor(), CreatedAt: now.UTC().Truncate(time.Millisecond), Manifest: entries,
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_deposits
			(id, product, org, policy, state, manifest_digest, files, total_size, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			d.ID, d.Product, d.Org, d.Policy, d.State, d.ManifestDigest, d.Files, d.TotalSize, d.CreatedBy, db.Millis(now)); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, s.db.Q(`INSERT INTO escrow_files (deposit, path, kind, size, sha256, link, uploaded) VALUES (?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range entries {
			done := 0
			if e.IsLink() {
				done = 1
			}
			if _, err := stmt.ExecContext(ctx, d.ID, e.Path, string(e.Kind), e.Size, e.SHA256, e.Link, done); err != nil {
				return err
			}
		}
		return s.appendEvent(ctx, tx, d.ID, now, p.Actor(), "created", "", fmt.Sprintf("%d files, %d bytes, policy %s", files, size, d.Policy))
	})
	if err != nil {
		return Deposit{}, fmt.Errorf("escrow: create deposit: %w", err)
	}
	return d, nil
}

// Who may see a deposit is decided here and nowhere else.
//
// Released deposits are public. Before release (uploading or sealed) a
// deposit is seen only by its owner: a vendor token of the deposit's org,
// or an admin. Other tokens of that org (maintainer, builder, trustee) are
// not the vendor. The trustees a sealed deposit's quorum names see its
// approval state (trusteeView), never its manifest, files or events.
// Everyone else gets NotFound, not Forbidden, so a sealed deposit's
// existence does not leak.

// isOwner reports whether p acts for the vendor that made deposit d.
func isOwner(p auth.Principal, d Deposit) bool {
	return p.Role == auth.Admin || (p.Role == auth.Vendor && p.Org != "" && p.Org == d.Org)
}

// canSee reports whether p may see deposit d in full: anyone once it is
// released, otherwise its owner.
func canSee(p auth.Principal, d Deposit) bool {
	return d.State == Released || isOwner(p, d)
}

// isQuorumTrustee reports whether p is a trustee named by d's quorum while
// d is sealed: they may see what they are asked to approve, no more.
func isQuorumTrustee(p auth.Principal, d Deposit) bool {
	if p.Role != auth.Trustee || d.State != Sealed {
		return false
	}
	pol, err := policy.Parse(d.Policy)
	return err == nil && pol.HasTrustee(p.Name)
}

// trusteeView is what a named trustee sees of a sealed deposit: enough to
// sign an approval (id, manifest digest) and to know where the quorum
// stands; no manifest, file names, sizes or events.
func (s *Service) trusteeView(ctx context.Context, d Deposit) (Deposit, error) {
	approvals, err := s.approvals(ctx, d.ID)
	if err != nil {
		return Deposit{}, err
	}
	return Deposit{
		ID: d.ID, Product: d.Product, Org: d.Org, Policy: d.Policy, State: d.State,
		ManifestDigest: d.ManifestDigest, CreatedAt: d.CreatedAt, SealedAt: d.SealedAt, Approvals: approvals,
	}, nil
}

// approvals names the trustees who approved deposit id so far.
func (s *Service) approvals(ctx context.Context, id string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT trustee FROM escrow_approvals WHERE deposit = ? ORDER BY trustee`), id)
	if err != nil {
		return nil, fmt.Errorf("escrow: approvals of %s: %w", id, db.Classify(err))
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("escrow: approvals of %s: %w", id, err)
		}
		out = append(out, t)
	}
	return out, db.Classify(rows.Err())
}

// Get returns a deposit with its manifest to those who may see it, and its
// approval state alone to the trustees its quorum names. Everyone else
// gets NotFound.
func (s *Service) Get(ctx context.Context, p auth.Principal, id string) (Deposit, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Deposit{}, err
	}
	if !canSee(p, d) {
		if isQuorumTrustee(p, d) {
			return s.trusteeView(ctx, d)
		}
		return Deposit{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	d.Manifest, err = s.entries(ctx, id)
	if err != nil {
		return Deposit{}, err
	}
	if pol, err := policy.Parse(d.Policy); err == nil && pol.Quorum != nil && d.State == Sealed {
		if d.Approvals, err = s.approvals(ctx, id); err != nil {
			return Deposit{}, err
		}
	}
	return d, nil
}

// PendingApprovals lists the sealed quorum deposits waiting for p: all of
// them for admins, those naming p for a trustee (approval state only),
// none for anyone else.
func (s *Service) PendingApprovals(ctx context.Context, p auth.Principal) ([]Deposit, error) {
	if p.Role != auth.Admin && p.Role != auth.Trustee {
		return []Deposit{}, nil
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT `+depositCols+` FROM escrow_deposits WHERE state = ? ORDER BY created_at DESC, id DESC LIMIT 1000`), Sealed)
	if err != nil {
		return nil, fmt.Errorf("escrow: pending approvals: %w", db.Classify(err))
	}
	var sealed []Deposit
	for rows.Next() {
		d, err := scanDeposit(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("escrow: pending approvals: %w", err)
		}
		sealed = append(sealed, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("escrow: pending approvals: %w", db.Classify(err))
	}
	out := []Deposit{}
	for _, d := range sealed {
		if pol, err := policy.Parse(d.Policy); err != nil || pol.Quorum == nil {
			continue
		}
		if p.Role != auth.Admin && !isQuorumTrustee(p, d) {
			continue
		}
		v, err := s.trusteeView(ctx, d)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const depositCols = `id, product, org, policy, state, manifest_digest, files, total_size, created_by, created_at, sealed_at, released_at, released_by, fired`

func scanDeposit(row interface{ Scan(...any) error }) (Deposit, error) {
	var d Deposit
	var created, sealed, released int64
	err := row.Scan(&d.ID, &d.Product, &d.Org, &d.Policy, &d.State, &d.ManifestDigest, &d.Files, &d.TotalSize,
		&d.CreatedBy, &created, &sealed, &released, &d.ReleasedBy, &d.Fired)
	d.CreatedAt, d.SealedAt, d.ReleasedAt = db.FromMillis(created), db.FromMillis(sealed), db.FromMillis(released)
	return d, err
}

func (s *Service) load(ctx context.Context, q querier, id string) (Deposit, error) {
	d, err := scanDeposit(q.QueryRowContext(ctx, s.db.Q(`SELECT `+depositCols+` FROM escrow_deposits WHERE id = ?`), id))
	if err != nil {
		return Deposit{}, db.NotFound(err, "deposit %s not found", id)
	}
	return d, nil
}

type fileRow struct {
	manifest.Entry
	Cipher   blob.Digest
	Uploaded bool
}

func (s *Service) files(ctx context.Context, id string) ([]fileRow, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT path, kind, size, sha256, link, cipher_digest, uploaded FROM escrow_files WHERE deposit = ? ORDER BY path`), id)
	if err != nil {
		return nil, db.Classify(err)
	}
	defer rows.Close()
	var out []fileRow
	for rows.Next() {
		var f fileRow
		var kind, cipher string
		var up int
		if err := rows.Scan(&f.Path, &kind, &f.Size, &f.SHA256, &f.Link, &cipher, &up); err != nil {
			return nil, err
		}
		f.Kind, f.Cipher, f.Uploaded = manifest.Kind(kind), blob.Digest(cipher), up == 1
		out = append(out, f)
	}
	return out, db.Classify(rows.Err())
}

func (s *Service) entries(ctx context.Context, id string) ([]manifest.Entry, error) {
	fs, err := s.files(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("escrow: manifest of %s: %w", id, err)
	}
	out := make([]manifest.Entry, len(fs))
	for i, f := range fs {
		out[i] = f.Entry
	}
	return out, nil
}

func (s *Service) file(ctx context.Context, id, path string) (fileRow, error) {
	var f fileRow
	var kind, cipher string
	var up int
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT path, kind, size, sha256, link, cipher_digest, uploaded FROM escrow_files WHERE deposit = ? AND path = ?`), id, path).
		Scan(&f.Path, &kind, &f.Size, &f.SHA256, &f.Link, &cipher, &up)
	if err != nil {
		return fileRow{}, db.NotFound(err, "deposit %s has no file %q", id, path)
	}
	f.Kind, f.Cipher, f.Uploaded = manifest.Kind(kind), blob.Digest(cipher), up == 1
	return f, nil
}

// uploadable loads a deposit that p may still upload to.
func (s *Service) uploadable(ctx context.Context, p auth.Principal, id string) (Deposit, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Deposit{}, err
	}
	if !canSee(p, d) {
		return Deposit{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	if !isOwner(p, d) {
		return Deposit{}, errs.E(errs.Forbidden, "%s may not upload to deposit %s", p.Actor(), id)
	}
	if d.State != Uploading {
		return Deposit{}, errs.E(errs.Conflict, "deposit %s is %s: its files can no longer change", id, d.State)
	}
	return d, nil
}

// PutFile streams one file of an uploading deposit into the blob store,
// encrypted to the escrow key. The body must have exactly the manifest's
// size and sha256; otherwise the file is refused and nothing stays. A file
// already uploaded is acknowledged without reading the body, so a client
// retrying after a lost response loses nothing.
func (s *Service) PutFile(ctx context.Context, p auth.Principal, id, path string, body io.Reader) (FileState, error) {
	if err := manifest.ValidatePath(path); err != nil {
		return FileState{}, err
	}
	if _, err := s.uploadable(ctx, p, id); err != nil {
		return FileState{}, err
	}
	f, err := s.file(ctx, id, path)
	if err != nil {
		return FileState{}, err
	}
	if f.IsLink() {
		return FileState{}, errs.E(errs.Invalid, "%q is a symbolic link in the manifest: it has no content to upload", path)
	}
	st := FileState{Path: path, Size: f.Size, Done: true}
	if f.Uploaded {
		return st, nil
	}
	info, err := s.sealStream(ctx, body, f.Entry)
	if err != nil {
		return FileState{}, fmt.Errorf("escrow: upload %s/%s: %w", id, path, err)
	}
	now := s.now()
	var stored bool
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		stored = false
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE escrow_files SET cipher_digest = ?, uploaded = 1
			WHERE deposit = ? AND path = ? AND uploaded = 0
			AND EXISTS (SELECT 1 FROM escrow_deposits WHERE id = ? AND state = ?)`),
			string(info.Digest), id, path, id, Uploading)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		stored = true
		return s.trackBlob(ctx, tx, info, "cipher", now)
	})
	if err != nil || !stored {
		// Our ciphertext is unique (age encryption is randomised), so
		// nobody else refers to it.
		s.deleteBlob(ctx, info.Digest)
	}
	if err != nil {
		return FileState{}, fmt.Errorf("escrow: upload %s/%s: %w", id, path, err)
	}
	if !stored {
		if _, err := s.uploadable(ctx, p, id); err != nil {
			return FileState{}, err
		}
	}
	return st, nil
}

func (s *Service) deleteBlob(ctx context.Context, d blob.Digest) {
	if d == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.blobs.Delete(ctx, d); err != nil {
		s.log.Warn("escrow: could not delete an unused blob", "digest", d, "err", err)
	}
}

func (s *Service) trackBlob(ctx context.Context, tx *sql.Tx, info blob.Info, role string, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_blobs (digest, role, size, status, checked_at, detail)
		VALUES (?, ?, ?, 'ok', ?, '') ON CONFLICT (digest) DO NOTHING`), string(info.Digest), role, info.Size, db.Millis(now))
	return err
}

// sealStream hashes body while encrypting it into the blob store. It reads
// at most want.Size+1 bytes, so an oversized body costs nothing more.
func (s *Service) sealStream(ctx context.Context, body io.Reader, want manifest.Entry) (blob.Info, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- s.encrypt(pw, body, want)
	}()
	info, err := s.blobs.Put(ctx, pr, "")
	pr.CloseWithError(errPutEnded) // unblock the encryptor if Put stopped early
	encErr := <-done
	if encErr != nil {
		if err == nil {
			s.deleteBlob(ctx, info.Digest)
		}
		return blob.Info{}, encErr
	}
	if err != nil {
		return blob.Info{}, err
	}
	return info, nil
}

var errPutEnded = errors.New("escrow: blob store stopped reading")

func (s *Service) encrypt(pw *io.PipeWriter, body io.Reader, want manifest.Entry) (err error) {
	defer func() { pw.CloseWithError(err) }()
	w, err := age.Encrypt(pw, s.recipient)
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(w, io.TeeReader(io.LimitReader(body, want.Size+1), h))
	if err != nil {
		if errors.Is(err, errPutEnded) {
			return err
		}
		return errs.Wrap(errs.Invalid, err, "reading %s: upload interrupted", want.Path)
	}
	if n > want.Size {
		return errs.E(errs.TooLarge, "%s: body is larger than the %d bytes the manifest declares", want.Path, want.Size)
	}
	if n < want.Size {
		return errs.E(errs.Invalid, "%s: body has %d bytes; the manifest declares %d", want.Path, n, want.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return errs.E(errs.Invalid, "%s: content hashes to sha256 %s; the manifest declares %s", want.Path, got, want.SHA256)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	return nil
}

// Upload reports which files of an uploading deposit have arrived.
func (s *Service) Upload(ctx context.Context, p auth.Principal, id string) (UploadStatus, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return UploadStatus{}, err
	}
	if !isOwner(p, d) {
		return UploadStatus{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	fs, err := s.files(ctx, id)
	if err != nil {
		return UploadStatus{}, fmt.Errorf("escrow: upload status %s: %w", id, err)
	}
	st := UploadStatus{Deposit: id, State: d.State, Files: make([]FileState, 0, len(fs))}
	for _, f := range fs {
		if f.IsLink() {
			continue
		}
		st.Files = append(st.Files, FileState{Path: f.Path, Size: f.Size, Done: f.Uploaded})
	}
	return st, nil
}

// Commit seals an uploading deposit whose files have all arrived, in one
// transaction, and returns the signed receipt. Committing again returns the
// same receipt. A policy that is already due (immediate, a past date)
// releases the deposit right after.
func (s *Service) Commit(ctx context.Context, p auth.Principal, id string) (receipt.Signed, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return receipt.Signed{}, err
	}
	if !canSee(p, d) {
		return receipt.Signed{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	if !isOwner(p, d) {
		return receipt.Signed{}, errs.E(errs.Forbidden, "%s may not commit deposit %s", p.Actor(), id)
	}
	if d.State != Uploading {
		return s.Receipt(ctx, p, id)
	}
	now := s.now()
	r, err := receipt.Sign(s.key, receipt.Receipt{
		Deposit: d.ID, Product: d.Product, Org: d.Org, Policy: d.Policy, ManifestDigest: d.ManifestDigest,
		Files: d.Files, TotalSize: d.TotalSize, CommittedAt: now.Truncate(time.Millisecond),
	})
	if err != nil {
		return receipt.Signed{}, err
	}
	rj, _ := json.Marshal(r)
	var missing []string
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		missing = missing[:0]
		rows, err := tx.QueryContext(ctx, s.db.Q(`SELECT path FROM escrow_files WHERE deposit = ? AND uploaded = 0 ORDER BY path`), id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var path string
			if err := rows.Scan(&path); err != nil {
				rows.Close()
				return err
			}
			missing = append(missing, path)
		}
		rows.Close()
		if len(missing) > 0 {
			return nil
		}
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE escrow_deposits SET state = ?, sealed_at = ?, receipt = ? WHERE id = ? AND state = ?`),
			Sealed, db.Millis(now), string(rj), id, Uploading)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil // committed concurrently: the stored receipt is the answer
		}
		return s.appendEvent(ctx, tx, id, now, p.Actor(), "sealed", "", "manifest "+d.ManifestDigest)
	})
	if err != nil {
		return receipt.Signed{}, fmt.Errorf("escrow: commit %s: %w", id, err)
	}
	if len(missing) > 0 {
		shown := missing
		if len(shown) > 5 {
			shown = shown[:5]
		}
		return receipt.Signed{}, errs.E(errs.Conflict, "deposit %s: %d files not uploaded yet (%s)", id, len(missing), strings.Join(shown, ", "))
	}
	s.retain(ctx, id, now)
	if _, err := s.Evaluate(ctx, id, now, p.Actor()); err != nil {
		s.log.Error("escrow: evaluating a just-sealed deposit failed; the scheduler will retry", "deposit", id, "err", err)
	}
	return s.Receipt(ctx, p, id)
}

// Receipt returns the signed receipt of a committed deposit.
func (s *Service) Receipt(ctx context.Context, p auth.Principal, id string) (receipt.Signed, error) {
	var org, state, rj string
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT org, state, receipt FROM escrow_deposits WHERE id = ?`), id).Scan(&org, &state, &rj)
	if err != nil {
		return receipt.Signed{}, db.NotFound(err, "deposit %s not found", id)
	}
	if !isOwner(p, Deposit{Org: org, State: state}) {
		return receipt.Signed{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	if state == Uploading {
		return receipt.Signed{}, errs.E(errs.Conflict, "deposit %s is not committed yet", id)
	}
	var r receipt.Signed
	if err := json.Unmarshal([]byte(rj), &r); err != nil {
		return receipt.Signed{}, fmt.Errorf("escrow: stored receipt of %s: %w", id, err)
	}
	return r, nil
}

// retain locks the sealed ciphertext of a deposit against deletion, when
// the store supports it and retention is configured.
func (s *Service) retain(ctx context.Context, id string, now time.Time) {
	r, ok := s.blobs.(blob.Retainer)
	if !ok || s.retention <= 0 {
		return
	}
	fs, err := s.files(ctx, id)
	if err != nil {
		s.log.Error("escrow: retention: cannot list files", "deposit", id, "err", err)
		return
	}
	until := now.Add(s.retention)
	for _, f := range fs {
		if f.Cipher == "" {
			continue
		}
		if err := r.Retain(ctx, f.Cipher, until); err != nil {
			s.log.Error("escrow: retention: cannot lock a sealed blob", "deposit", id, "digest", f.Cipher, "err", err)
		}
	}
}

// Abort removes an uploading deposit and its blobs. Sealed and released
// deposits cannot be removed by anyone.
func (s *Service) Abort(ctx context.Context, p auth.Principal, id string) error {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return err
	}
	if !canSee(p, d) {
		return errs.E(errs.NotFound, "deposit %s not found", id)
	}
	if !isOwner(p, d) {
		return errs.E(errs.Forbidden, "%s may not remove deposit %s", p.Actor(), id)
	}
	if d.State != Uploading {
		return errs.E(errs.Conflict, "deposit %s is %s: it can never be deleted or changed", id, d.State)
	}
	return s.drop(ctx, id, p.Actor(), "aborted")
}

// drop deletes an uploading deposit's rows, then its ciphertext blobs.
func (s *Service) drop(ctx context.Context, id, actor, why string) error {
	fs, err := s.files(ctx, id)
	if err != nil {
		return fmt.Errorf("escrow: drop %s: %w", id, err)
	}
	var dropped bool
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_deposits WHERE id = ? AND state = ?`), id, Uploading)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			dropped = false
			return nil
		}
		dropped = true
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_files WHERE deposit = ?`), id); err != nil {
			return err
		}
		for _, f := range fs {
			if f.Cipher != "" {
				if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_blobs WHERE digest = ?`), string(f.Cipher)); err != nil {
					return err
				}
			}
		}
		return s.appendEvent(ctx, tx, id, s.now(), actor, why, "", "")
	})
	if err != nil {
		return fmt.Errorf("escrow: drop %s: %w", id, err)
	}
	if !dropped {
		return errs.E(errs.Conflict, "deposit %s is no longer uploading", id)
	}
	for _, f := range fs {
		s.deleteBlob(ctx, f.Cipher)
	}
	return nil
}

// ListFilter narrows List.
type ListFilter struct {
	Product string
	State   string // "", uploading, sealed, released
	Limit   int    // default 100, at most 1000
}

// List returns the deposits p may see, newest first: released ones for
// everybody, plus the sealed and uploading ones of a vendor's own org (all
// for admins). Named trustees find theirs with PendingApprovals.
func (s *Service) List(ctx context.Context, p auth.Principal, f ListFilter) ([]Deposit, error) {
	q := `SELECT ` + depositCols + ` FROM escrow_deposits WHERE 1 = 1`
	var args []any
	switch {
	case p.Role == auth.Admin:
	case p.Role == auth.Vendor && p.Org != "":
		q += ` AND (state = ? OR org = ?)`
		args = append(args, Released, p.Org)
	default:
		q += ` AND state = ?`
		args = append(args, Released)
	}
	if f.Product != "" {
		q += ` AND product = ?`
		args = append(args, f.Product)
	}
	if f.State != "" {
		if f.State != Uploading && f.State != Sealed && f.State != Released {
			return nil, errs.E(errs.Invalid, "state %q: want uploading, sealed or released", f.State)
		}
		q += ` AND state = ?`
		args = append(args, f.State)
	} else {
		q += ` AND state <> ?` // uploads are listed only when asked for
		args = append(args, Uploading)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT %d`, limit)
	rows, err := s.db.QueryContext(ctx, s.db.Q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("escrow: list: %w", db.Classify(err))
	}
	defer rows.Close()
	out := []Deposit{}
	for rows.Next() {
		d, err := scanDeposit(rows)
		if err != nil {
			return nil, fmt.Errorf("escrow: list: %w", err)
		}
		out = append(out, d)
	}
	return out, db.Classify(rows.Err())
}
