package escrow

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// State is where a deposit is in its life.
type State = wire.State

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
	// Rights are the rights rules, in order (the last match wins); a file
	// none matches is private. The classes entries carry are ignored.
	Rights []manifest.RightsRule `json:"rights"`
	// Grant is the vendor's grant text (licence or written permission).
	Grant string `json:"grant"`
	// ShippedImage marks the file (a path in Manifest) that holds the
	// image the vendor last shipped; it is private whatever the rules say.
	// CompletenessRecipe names the recipe file (a path in Manifest) that
	// rebuilds it. Both or neither.
	ShippedImage       string `json:"shipped_image"`
	CompletenessRecipe string `json:"completeness_recipe"`
}

// FileState tells whether one manifest entry has arrived.
type FileState struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Done bool   `json:"done"`
	// Received is how many of its first bytes the server holds (Size when
	// done); ReceivedSHA256 is their sha256 (hex) while the file is not
	// done, so a resuming client checks them against its own file.
	Received       int64  `json:"received"`
	ReceivedSHA256 string `json:"received_sha256,omitempty"`
}

// UploadStatus is what a resuming client needs.
type UploadStatus struct {
	Deposit string      `json:"deposit"`
	State   State       `json:"state"`
	Files   []FileState `json:"files"`
}

// Create validates the request and records a deposit in state uploading.
// Only the product's vendor org (or an admin) may deposit for it.
func (s *Service) Create(ctx context.Context, p principal.Principal, req CreateRequest) (Deposit, error) {
	if !p.Is(principal.Vendor) {
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
	if err := s.checkHandoverEntry(entries); err != nil {
		return Deposit{}, err
	}
	rules, err := checkRights(req.Rights, req.Grant)
	if err != nil {
		return Deposit{}, err
	}
	entries = applyRights(entries, rules)
	if entries, err = markShipped(entries, req.ShippedImage, req.CompletenessRecipe); err != nil {
		return Deposit{}, err
	}
	files, size := manifest.Totals(entries)
	now := s.now()
	d := Deposit{
		ID: ids.At("dep", now), Product: req.Product, Org: org, Policy: pol.String(), State: Uploading,
		ManifestDigest: manifest.Digest(entries), Files: files, TotalSize: size,
		CreatedBy: p.Actor(), CreatedAt: now.UTC().Truncate(time.Millisecond), Manifest: entries,
		Rights: rules, Grant: req.Grant, ShippedImage: req.ShippedImage, CompletenessRecipe: req.CompletenessRecipe,
	}
	rj, _ := json.Marshal(rules) // plain strings: cannot fail
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_deposits
			(id, product, org, policy, state, manifest_digest, files, total_size, created_by, created_at, rights, grant_text, shipped_image, completeness_recipe)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			d.ID, d.Product, d.Org, d.Policy, d.State, d.ManifestDigest, d.Files, d.TotalSize, d.CreatedBy, db.Millis(now), string(rj), d.Grant,
			d.ShippedImage, d.CompletenessRecipe); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, s.db.Q(`INSERT INTO escrow_files (deposit, path, kind, size, sha256, link, uploaded, rights) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range entries {
			done := 0
			if e.IsLink() {
				done = 1
			}
			if _, err := stmt.ExecContext(ctx, d.ID, e.Path, string(e.Kind), e.Size, e.SHA256, e.Link, done, string(e.Rights)); err != nil {
				return err
			}
		}
		// Rights stay out of events: other parts read them (the
		// transparency log).
		return s.appendEvent(ctx, tx, d.ID, now, p.Actor(), "created", "", fmt.Sprintf("%d files, %d bytes, policy %s", files, size, d.Policy))
	})
	if err != nil {
		return Deposit{}, fmt.Errorf("escrow: create deposit: %w", err)
	}
	return d, nil
}

// uploadable loads a deposit that p may still upload to.
func (s *Service) uploadable(ctx context.Context, p principal.Principal, id string) (Deposit, error) {
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
// encrypted to the escrow key, from its first byte. A body that ends early
// keeps what arrived, which PutFileFrom continues; the whole file must
// have exactly the manifest's size and sha256, otherwise it is refused and
// nothing of it stays. A file already
// uploaded is acknowledged without reading the body, so a client retrying
// after a lost response loses nothing.
func (s *Service) PutFile(ctx context.Context, p principal.Principal, id, path string, body io.Reader) (FileState, error) {
	f, err := s.putTarget(ctx, p, id, path)
	if err != nil {
		return FileState{}, err
	}
	st := FileState{Path: path, Size: f.Size, Done: true, Received: f.Size}
	if f.Uploaded {
		return st, nil
	}
	if path != wire.HandoverFile || s.handover == nil {
		return s.putPieces(ctx, id, f, 0, body)
	}
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return FileState{}, err
	}
	// The statement is small, sent whole and checked before it is stored.
	buf, h, err := s.readHandover(ctx, d, body, f.Entry)
	if err != nil {
		return FileState{}, fmt.Errorf("escrow: upload %s/%s: %w", id, path, err)
	}
	body, handover := bytes.NewReader(buf), &h
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
		if err := s.recordHandover(ctx, tx, *handover); err != nil {
			return err
		}
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

// putTarget is the file of an uploading deposit that p may upload to.
func (s *Service) putTarget(ctx context.Context, p principal.Principal, id, path string) (fileRow, error) {
	if err := manifest.ValidatePath(path); err != nil {
		return fileRow{}, err
	}
	if _, err := s.uploadable(ctx, p, id); err != nil {
		return fileRow{}, err
	}
	f, err := s.file(ctx, id, path)
	if err != nil {
		return fileRow{}, err
	}
	if f.IsLink() {
		return fileRow{}, errs.E(errs.Invalid, "%q is a symbolic link in the manifest: it has no content to upload", path)
	}
	return f, nil
}

// Upload reports which files of an uploading deposit have arrived.
func (s *Service) Upload(ctx context.Context, p principal.Principal, id string) (UploadStatus, error) {
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
	parts, err := s.uploadParts(ctx, id, "")
	if err != nil {
		return UploadStatus{}, err
	}
	st := UploadStatus{Deposit: id, State: d.State, Files: make([]FileState, 0, len(fs))}
	for _, f := range fs {
		if f.IsLink() {
			continue
		}
		fst := FileState{Path: f.Path, Size: f.Size, Done: f.Uploaded}
		if f.Uploaded {
			fst.Received = f.Size
		} else if ps := parts[f.Path]; len(ps) > 0 {
			fst.Received, fst.ReceivedSHA256 = received(ps), ps[len(ps)-1].Prefix
		}
		st.Files = append(st.Files, fst)
	}
	return st, nil
}

// Commit seals an uploading deposit whose files have all arrived, in one
// transaction, and returns the signed receipt. Committing again returns the
// same receipt. A policy that is already due (immediate, a past date)
// releases the deposit right after.
func (s *Service) Commit(ctx context.Context, p principal.Principal, id string) (receipt.Signed, error) {
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
	// A product retired while its files arrived gets no sealed deposit:
	// the catalog retired it because nothing outlived it.
	if _, err := s.products.Vendor(ctx, d.Product); err != nil {
		if errs.Is(err, errs.NotFound) {
			return receipt.Signed{}, errs.E(errs.Conflict, "deposit %s: product %s was retired; nothing was sealed", id, d.Product)
		}
		return receipt.Signed{}, fmt.Errorf("escrow: commit %s: %w", id, err)
	}
	now := s.now()
	es, err := s.entries(ctx, id)
	if err != nil {
		return receipt.Signed{}, err
	}
	r, err := receipt.Sign(s.key, receiptRights(receipt.Receipt{
		Deposit: d.ID, Product: d.Product, Org: d.Org, Policy: d.Policy, ManifestDigest: d.ManifestDigest,
		Files: d.Files, TotalSize: d.TotalSize, CommittedAt: now.Truncate(time.Millisecond),
	}, d, es))
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
		if err := s.appendEvent(ctx, tx, id, now, p.Actor(), "sealed", "", "manifest "+d.ManifestDigest); err != nil {
			return err
		}
		claimed, err := s.claimHandover(ctx, tx, id, now)
		if err != nil || !claimed {
			return err
		}
		return s.appendEvent(ctx, tx, id, now, p.Actor(), "handover-claimed", "", "")
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
func (s *Service) Receipt(ctx context.Context, p principal.Principal, id string) (receipt.Signed, error) {
	var org, rj string
	var state State
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT org, state, receipt FROM escrow_deposits WHERE id = ?`), id).Scan(&org, &state, &rj)
	if err != nil {
		return receipt.Signed{}, db.NotFound(err, "deposit %s not found", id)
	}
	// A released deposit's receipt is public: mirrors carry it, and anyone
	// checks that what was released is what the vendor deposited.
	if state != Released && !isOwner(p, Deposit{Org: org, State: state}) {
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
	pieces, err := s.depositPieces(ctx, id, "")
	if err != nil {
		s.log.Error("escrow: retention: cannot list pieces", "deposit", id, "err", err)
		return
	}
	until := now.Add(s.retention)
	for _, d := range cipherBlobs(fs, pieces) {
		if err := r.Retain(ctx, d, until); err != nil {
			s.log.Error("escrow: retention: cannot lock a sealed blob", "deposit", id, "digest", d, "err", err)
		}
	}
}

// cipherBlobs lists the ciphertext blobs of a deposit's files: one-piece
// files name theirs, the pieces of the others are listed apart.
func cipherBlobs(fs []fileRow, pieces map[string][]sealedPiece) []blob.Digest {
	var out []blob.Digest
	for _, f := range fs {
		if f.Cipher != "" {
			out = append(out, f.Cipher)
		}
		for _, p := range pieces[f.Path] {
			out = append(out, p.Cipher)
		}
	}
	return out
}

// Abort removes an uploading deposit and its blobs. Sealed and released
// deposits cannot be removed by anyone.
func (s *Service) Abort(ctx context.Context, p principal.Principal, id string) error {
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
	parts, err := s.uploadParts(ctx, id, "")
	if err != nil {
		return fmt.Errorf("escrow: drop %s: %w", id, err)
	}
	pieces, err := s.depositPieces(ctx, id, "")
	if err != nil {
		return fmt.Errorf("escrow: drop %s: %w", id, err)
	}
	ciphers := cipherBlobs(fs, pieces)
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
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_handovers WHERE deposit = ?`), id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_upload_parts WHERE deposit = ?`), id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_file_pieces WHERE deposit = ?`), id); err != nil {
			return err
		}
		for _, d := range ciphers {
			if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_blobs WHERE digest = ?`), string(d)); err != nil {
				return err
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
	for _, d := range ciphers {
		s.deleteBlob(ctx, d)
	}
	for _, ps := range parts {
		for _, p := range ps {
			s.deleteBlob(ctx, p.Cipher)
		}
	}
	return nil
}
