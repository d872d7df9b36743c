package escrow

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
)

// The deposit rows: how deposits and their files are read from the
// escrow's tables.

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const depositCols = `id, product, org, policy, state, manifest_digest, files, total_size, created_by, created_at, sealed_at, released_at, released_by, fired, rights, grant_text, shipped_image, completeness_recipe`

func scanDeposit(row interface{ Scan(...any) error }) (Deposit, error) {
	var d Deposit
	var created, sealed, released int64
	var rights string
	err := row.Scan(&d.ID, &d.Product, &d.Org, &d.Policy, &d.State, &d.ManifestDigest, &d.Files, &d.TotalSize,
		&d.CreatedBy, &created, &sealed, &released, &d.ReleasedBy, &d.Fired, &rights, &d.Grant, &d.ShippedImage, &d.CompletenessRecipe)
	if err != nil {
		return d, err
	}
	d.CreatedAt, d.SealedAt, d.ReleasedAt = db.FromMillis(created), db.FromMillis(sealed), db.FromMillis(released)
	d.Rights = []manifest.RightsRule{}
	if err := json.Unmarshal([]byte(rights), &d.Rights); err != nil {
		return d, fmt.Errorf("escrow: rights of deposit %s: %w", d.ID, err)
	}
	return d, nil
}

func (s *Service) load(ctx context.Context, q querier, id string) (Deposit, error) {
	d, err := scanDeposit(q.QueryRowContext(ctx, s.db.Q(`SELECT `+depositCols+` FROM escrow_deposits WHERE id = ?`), id))
	if err != nil {
		return Deposit{}, db.NotFound(err, "deposit %s not found", id)
	}
	return d, nil
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

type fileRow struct {
	manifest.Entry
	Cipher   blob.Digest
	Uploaded bool
}

func (s *Service) files(ctx context.Context, id string) ([]fileRow, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT path, kind, size, sha256, link, cipher_digest, uploaded, rights FROM escrow_files WHERE deposit = ? ORDER BY path`), id)
	if err != nil {
		return nil, db.Classify(err)
	}
	defer rows.Close()
	var out []fileRow
	for rows.Next() {
		var f fileRow
		var kind, cipher, rights string
		var up int
		if err := rows.Scan(&f.Path, &kind, &f.Size, &f.SHA256, &f.Link, &cipher, &up, &rights); err != nil {
			return nil, err
		}
		f.Kind, f.Cipher, f.Uploaded, f.Rights = manifest.Kind(kind), blob.Digest(cipher), up == 1, manifest.Rights(rights)
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
	var kind, cipher, rights string
	var up int
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT path, kind, size, sha256, link, cipher_digest, uploaded, rights FROM escrow_files WHERE deposit = ? AND path = ?`), id, path).
		Scan(&f.Path, &kind, &f.Size, &f.SHA256, &f.Link, &cipher, &up, &rights)
	if err != nil {
		return fileRow{}, db.NotFound(err, "deposit %s has no file %q", id, path)
	}
	f.Kind, f.Cipher, f.Uploaded, f.Rights = manifest.Kind(kind), blob.Digest(cipher), up == 1, manifest.Rights(rights)
	return f, nil
}

func (s *Service) trackBlob(ctx context.Context, tx *sql.Tx, info blob.Info, role string, now time.Time) error {
	_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_blobs (digest, role, size, status, checked_at, detail)
		VALUES (?, ?, ?, 'ok', ?, '') ON CONFLICT (digest) DO NOTHING`), string(info.Digest), role, info.Size, db.Millis(now))
	return err
}

// queryDeposits reads the deposits matching the rest of a query after
// FROM escrow_deposits (a WHERE clause, an order, a limit).
func (s *Service) queryDeposits(ctx context.Context, rest string, args ...any) ([]Deposit, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT `+depositCols+` FROM escrow_deposits`+rest), args...)
	if err != nil {
		return nil, db.Classify(err)
	}
	defer rows.Close()
	out := []Deposit{}
	for rows.Next() {
		d, err := scanDeposit(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, db.Classify(rows.Err())
}
