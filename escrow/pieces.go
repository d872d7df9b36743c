package escrow

// How a sealed file is stored: as the ordered pieces it arrived in, each
// an age stream to the escrow key kept as its own blob (at most
// Options.UploadPiece bytes of plaintext). A file of one piece names it in
// escrow_files.cipher_digest, as every file sealed before pieces were kept
// does; a file of several has one escrow_file_pieces row per piece.
// openSealed is the one way to read a sealed file's plaintext: every
// reader (downloads, the release's plaintext copy, the completeness check,
// handovers) goes through it and never reads a cipher blob itself.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// sealedPiece is one stored piece of a sealed file: plaintext bytes
// [FirstByte, FirstByte+Size) encrypted into blob Cipher.
type sealedPiece struct {
	Seq        int
	FirstByte  int64
	Size       int64
	Cipher     blob.Digest
	CipherSize int64
}

// sealedPieces lists the pieces of an uploaded file in order.
func (s *Service) sealedPieces(ctx context.Context, id string, f fileRow) ([]sealedPiece, error) {
	if f.Cipher != "" {
		return []sealedPiece{{FirstByte: 0, Size: f.Size, Cipher: f.Cipher}}, nil
	}
	all, err := s.depositPieces(ctx, id, f.Path)
	if err != nil {
		return nil, err
	}
	ps := all[f.Path]
	if len(ps) == 0 {
		return nil, errs.E(errs.Internal, "%s has no stored ciphertext", f.Path)
	}
	return ps, nil
}

// depositPieces lists the pieces of the multi-piece files of deposit id,
// or of its file path only, by path and in order.
func (s *Service) depositPieces(ctx context.Context, id, path string) (map[string][]sealedPiece, error) {
	return readPieces(ctx, s, "escrow_file_pieces", "", id, path, func(p *sealedPiece) (*sealedPiece, []any) { return p, nil })
}

// readPieces reads the pieces in table (a sealed file's, or an upload's
// still arriving) of deposit id, or of its file path only, by path and in
// order: the columns every piece has, then extra, scanned into what more
// returns for the piece.
func readPieces[T any](ctx context.Context, s *Service, table, extra, id, path string, more func(*T) (*sealedPiece, []any)) (map[string][]T, error) {
	q := `SELECT path, seq, first_byte, size, cipher_digest, cipher_size` + extra + ` FROM ` + table + ` WHERE deposit = ?`
	args := []any{id}
	if path != "" {
		q += ` AND path = ?`
		args = append(args, path)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(q+` ORDER BY path, seq`), args...)
	if err != nil {
		return nil, fmt.Errorf("escrow: pieces of %s: %w", id, db.Classify(err))
	}
	defer rows.Close()
	out := map[string][]T{}
	for rows.Next() {
		var t T
		p, rest := more(&t)
		var fp, cipher string
		if err := rows.Scan(append([]any{&fp, &p.Seq, &p.FirstByte, &p.Size, &cipher, &p.CipherSize}, rest...)...); err != nil {
			return nil, fmt.Errorf("escrow: pieces of %s: %w", id, err)
		}
		p.Cipher = blob.Digest(cipher)
		out[fp] = append(out[fp], t)
	}
	return out, db.Classify(rows.Err())
}

// recordPieces makes parts the ciphertext of file path, in tx.
func (s *Service) recordPieces(ctx context.Context, tx *sql.Tx, id, path string, parts []uploadPart) error {
	for _, p := range parts {
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_file_pieces (deposit, path, seq, first_byte, size, cipher_digest, cipher_size)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), id, path, p.Seq, p.FirstByte, p.Size, string(p.Cipher), p.CipherSize)
		if err != nil {
			return err
		}
		if err := s.trackBlob(ctx, tx, blob.Info{Digest: p.Cipher, Size: p.CipherSize}, "cipher", s.now()); err != nil {
			return err
		}
	}
	return nil
}

// openSealed decrypts a sealed file of deposit id piece after piece,
// checking each piece's ciphertext digest and age's authentication, and
// the whole plaintext's size and digest at its end. The first piece opens
// here, so a missing, damaged or foreign-key file fails before anything is
// read; the others open as the reader reaches them.
func (s *Service) openSealed(ctx context.Context, id string, f fileRow) (io.ReadCloser, error) {
	pieces, err := s.sealedPieces(ctx, id, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	first, err := s.openPiece(ctx, f, pieces[0])
	if err != nil {
		return nil, err
	}
	r := &piecesReader{ctx: ctx, s: s, f: f, cur: first, next: pieces[1:]}
	return newChecked(r, f.SHA256, f.Size, f.Path, func(got string) {
		// Every piece authenticated, yet together they are not the file:
		// the rows no longer name the right pieces. None is served.
		for _, p := range pieces {
			s.markCorrupt(ctx, p.Cipher, "the plaintext of its file hashes to "+got)
		}
	}), nil
}

// openPiece decrypts one piece of a sealed file.
func (s *Service) openPiece(ctx context.Context, f fileRow, p sealedPiece) (io.ReadCloser, error) {
	if err := s.usable(ctx, p.Cipher); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	rc, err := s.blobs.Get(ctx, p.Cipher, 0, -1)
	if err != nil {
		return nil, s.noteMissing(ctx, p.Cipher, err)
	}
	cipher := newChecked(rc, p.Cipher.Hex(), -1, string(p.Cipher), func(got string) { s.markCorrupt(ctx, p.Cipher, got) })
	pr, err := age.Decrypt(cipher, s.identity)
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return nil, s.notOurKey(f, p.Cipher, cipher, rc)
	}
	if err != nil {
		rc.Close()
		if cipher.sourceErr == nil {
			s.markCorrupt(ctx, p.Cipher, "age header: "+err.Error())
			return nil, errs.Wrap(errs.Conflict, blob.ErrCorrupt, "%s: sealed content fails its integrity check", f.Path)
		}
		return nil, err
	}
	plain := &ageReader{r: pr, src: cipher, onAuthFail: func(err error) {
		s.markCorrupt(ctx, p.Cipher, "age: "+err.Error())
	}}
	return struct {
		io.Reader
		io.Closer
	}{plain, rc}, nil
}

// piecesReader reads the plaintext of a sealed file's pieces one after
// the other, holding one piece open at a time.
type piecesReader struct {
	ctx  context.Context
	s    *Service
	f    fileRow
	cur  io.ReadCloser
	next []sealedPiece
}

func (r *piecesReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if len(r.next) == 0 {
				return 0, io.EOF
			}
			rc, err := r.s.openPiece(r.ctx, r.f, r.next[0])
			if err != nil {
				return 0, err
			}
			r.cur, r.next = rc, r.next[1:]
		}
		n, err := r.cur.Read(p)
		if errors.Is(err, io.EOF) {
			r.cur.Close()
			r.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (r *piecesReader) Close() error {
	if r.cur == nil {
		return nil
	}
	err := r.cur.Close()
	r.cur = nil
	return err
}
