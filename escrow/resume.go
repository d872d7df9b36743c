package escrow

// Resuming within a file: a file arrives as pieces of at most
// Options.UploadPiece bytes, each encrypted to the escrow key on its own,
// stored as a blob and recorded with the sha256 state of the plaintext up
// to its end. A connection cut mid-piece still stores what arrived (the
// piece is closed short); a crash loses at most the two pieces in the blob
// store's hands (the one stored while the next arrives). The
// vendor's client asks how much arrived (Upload: Received, and the digest
// of that prefix, which it checks against its own file) and sends the
// rest from there. When the last byte arrives and the whole file hashes
// to the manifest's sha256, the pieces become the file's ciphertext as
// they are (pieces.go): nothing is decrypted or stored a second time.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// DefaultUploadPiece is the size of the pieces a file arrives as; a crash
// loses at most two of them.
const DefaultUploadPiece = 64 << 20

// uploadPart is one stored piece of a file still arriving.
type uploadPart struct {
	sealedPiece
	HashState string // hex of the sha256 state after the piece's last byte
	Prefix    string // hex sha256 of the file's bytes up to the piece's end
}

func (p uploadPart) end() int64 { return p.FirstByte + p.Size }

// uploadParts lists the stored pieces of one file, or of every file of the
// deposit when path is empty, in order.
func (s *Service) uploadParts(ctx context.Context, id, path string) (map[string][]uploadPart, error) {
	return readPieces(ctx, s, "escrow_upload_parts", ", hash_state, prefix_sha256", id, path, func(p *uploadPart) (*sealedPiece, []any) {
		return &p.sealedPiece, []any{&p.HashState, &p.Prefix}
	})
}

func received(parts []uploadPart) int64 {
	if len(parts) == 0 {
		return 0
	}
	return parts[len(parts)-1].end()
}

// PutFileFrom stores the bytes of one file of an uploading deposit from
// offset on. Offset must be what the server holds of the file (Upload's
// Received); 0 starts the file over, dropping what was held. Whatever
// arrives is kept, even when the body ends early or the connection is
// cut, so the next call continues from there. The file is done when its
// last byte has arrived and the whole of it has the manifest's size and
// sha256; a file that hashes otherwise is refused and nothing of it
// stays.
func (s *Service) PutFileFrom(ctx context.Context, p principal.Principal, id, path string, offset int64, body io.Reader) (FileState, error) {
	if offset == 0 {
		return s.PutFile(ctx, p, id, path, body)
	}
	if path == wire.HandoverFile {
		return FileState{}, errs.E(errs.Invalid, "%s is sent whole, from offset 0", path)
	}
	f, err := s.putTarget(ctx, p, id, path)
	if err != nil || f.Uploaded {
		return FileState{Path: path, Size: f.Size, Done: true}, err
	}
	return s.putPieces(ctx, id, f, offset, body)
}

// putPieces stores body as the file's bytes from offset on, piece by
// piece, and finishes the file once all of it arrived.
func (s *Service) putPieces(ctx context.Context, id string, f fileRow, offset int64, body io.Reader) (FileState, error) {
	if offset < 0 || offset > f.Size {
		return FileState{}, errs.E(errs.Invalid, "offset %d is outside %s (%d bytes)", offset, f.Path, f.Size)
	}
	all, err := s.uploadParts(ctx, id, f.Path)
	if err != nil {
		return FileState{}, err
	}
	parts := all[f.Path]
	if offset == 0 && len(parts) > 0 {
		s.dropParts(ctx, id, f.Path, parts)
		parts = nil
	}
	if have := received(parts); offset != have {
		return FileState{}, errs.E(errs.Conflict, "the server holds %d bytes of %s: send it from offset %d", have, f.Path, have)
	}
	h := sha256.New()
	if len(parts) > 0 {
		if err := restoreHash(h, parts[len(parts)-1].HashState); err != nil {
			return FileState{}, fmt.Errorf("escrow: resume %s/%s: %w", id, f.Path, err)
		}
	}
	// What arrived is stored even when the client hangs up meanwhile.
	keep := context.WithoutCancel(ctx)
	// Pipelined: piece N+1 is read, hashed and encrypted while the blob
	// store is still storing piece N (on S3, uploading it from the spool).
	// The recorder records each piece, in order, as soon as it is stored;
	// handing it piece N+1 waits until piece N is recorded, so at most two
	// pieces are in the store's hands at once, whatever the file's size.
	rec := make(chan *pieceInFlight)
	failed, recorded := make(chan struct{}), make(chan struct{})
	var recErr error
	go func() {
		defer close(recorded)
		for p := range rec {
			if recErr != nil {
				p.discard(keep, s)
				continue
			}
			part, err := p.wait()
			if err == nil {
				part.Seq = len(parts)
				if err = s.recordPart(keep, id, f.Path, part); err != nil {
					s.deleteBlob(keep, part.Cipher)
				}
			}
			if err != nil {
				recErr = err
				close(failed)
				continue
			}
			parts = append(parts, part)
		}
	}()
	// allRecorded ends the recorder; parts is the main goroutine's again.
	allRecorded := func() error {
		close(rec)
		<-recorded
		return recErr
	}
	at := offset
	for at < f.Size {
		want := min(s.uploadPiece, f.Size-at)
		next, readErr, err := s.sealPart(keep, body, at, want, h)
		var n int64
		if next != nil {
			n = next.part.Size
			select {
			case rec <- next:
			case <-failed:
				next.discard(keep, s)
			}
		}
		at += n
		if err != nil || n < want {
			if rerr := allRecorded(); rerr != nil {
				return FileState{}, fmt.Errorf("escrow: upload %s/%s: %w", id, f.Path, rerr)
			}
			at = received(parts)
		}
		switch {
		case err != nil:
			return FileState{}, fmt.Errorf("escrow: upload %s/%s: %w", id, f.Path, err)
		case n < want && readErr != nil:
			return FileState{}, errs.Wrap(errs.Unavailable, readErr, "%s: upload interrupted at byte %d of %d; the server keeps them: send the rest from offset %d", f.Path, at, f.Size, at)
		case n < want:
			return FileState{}, errs.E(errs.Invalid, "%s: the body ended at byte %d of %d; the server keeps them: send the rest from offset %d", f.Path, at, f.Size, at)
		}
		select {
		case <-failed:
			allRecorded()
			return FileState{}, fmt.Errorf("escrow: upload %s/%s: %w", id, f.Path, recErr)
		default:
		}
	}
	if err := allRecorded(); err != nil {
		return FileState{}, fmt.Errorf("escrow: upload %s/%s: %w", id, f.Path, err)
	}
	var one [1]byte
	if n, _ := io.ReadFull(body, one[:]); n > 0 {
		s.dropParts(keep, id, f.Path, parts)
		return FileState{}, errs.E(errs.TooLarge, "%s: body is larger than the %d bytes the manifest declares", f.Path, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		s.dropParts(keep, id, f.Path, parts)
		return FileState{}, errs.E(errs.Invalid, "%s: content hashes to sha256 %s; the manifest declares %s (nothing of it stays: send it again from offset 0)", f.Path, got, f.SHA256)
	}
	if err := s.finishParts(keep, id, f, parts); err != nil {
		return FileState{}, fmt.Errorf("escrow: upload %s/%s: %w", id, f.Path, err)
	}
	return FileState{Path: f.Path, Size: f.Size, Done: true, Received: f.Size}, nil
}

func restoreHash(h hash.Hash, state string) error {
	b, err := hex.DecodeString(state)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "stored hash state")
	}
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return errs.E(errs.Internal, "sha256 cannot restore its state")
	}
	return u.UnmarshalBinary(b)
}

// pieceInFlight is a piece that arrived and was encrypted, and that the
// blob store may still be storing.
type pieceInFlight struct {
	part uploadPart // all but Seq, and Cipher and CipherSize until stored
	put  chan putResult
}

type putResult struct {
	info blob.Info
	err  error
}

// wait returns the piece once it is stored.
func (p *pieceInFlight) wait() (uploadPart, error) {
	r := <-p.put
	if r.err != nil {
		return uploadPart{}, r.err
	}
	p.part.Cipher, p.part.CipherSize = r.info.Digest, r.info.Size
	return p.part, nil
}

// discard waits for the store and deletes the piece's blob.
func (p *pieceInFlight) discard(ctx context.Context, s *Service) {
	if p == nil {
		return
	}
	if part, err := p.wait(); err == nil {
		s.deleteBlob(ctx, part.Cipher)
	}
}

// sealPart encrypts at most limit bytes of body, the file's bytes from
// byte first on, into a blob, writing the plaintext into h too. It returns
// once the piece's plaintext has been read and encrypted; the blob store
// may still be storing it (see pieceInFlight.wait), so the caller can go
// on reading the next piece meanwhile. A body that fails (readErr) or ends
// early still has what arrived stored; err is a failure to store, and a
// nil piece means nothing arrived.
func (s *Service) sealPart(ctx context.Context, body io.Reader, first, limit int64, h hash.Hash) (piece *pieceInFlight, readErr, err error) {
	pr, pw := io.Pipe()
	type result struct {
		n       int64
		readErr error
		err     error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			pw.CloseWithError(r.err)
			done <- r
		}()
		w, err := s.encryptTo(pw)
		if err != nil {
			r.err = fmt.Errorf("encrypt: %w", err)
			return
		}
		src := &readErrors{r: io.LimitReader(body, limit)}
		r.n, err = blob.CopyHashing(w, src, h)
		r.readErr = src.err
		if err != nil && src.err == nil {
			r.err = err // the store stopped reading
			return
		}
		if err := w.Close(); err != nil {
			r.err = fmt.Errorf("encrypt: %w", err)
		}
	}()
	put := make(chan putResult, 1)
	go func() {
		info, err := s.blobs.Put(ctx, pr, "")
		pr.CloseWithError(errPutEnded)
		put <- putResult{info, err}
	}()
	r := <-done
	// The encryptor is done with h: the piece's hash state is final.
	p := &pieceInFlight{part: uploadPart{sealedPiece: sealedPiece{FirstByte: first, Size: r.n}}, put: put}
	if r.err != nil {
		stored := <-put
		if stored.err != nil {
			return nil, r.readErr, stored.err
		}
		s.deleteBlob(ctx, stored.info.Digest)
		return nil, r.readErr, r.err
	}
	if r.n == 0 {
		p.discard(ctx, s)
		return nil, r.readErr, nil
	}
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		p.discard(ctx, s)
		return nil, r.readErr, errs.E(errs.Internal, "sha256 cannot save its state")
	}
	state, err := m.MarshalBinary()
	if err != nil {
		p.discard(ctx, s)
		return nil, r.readErr, err
	}
	p.part.HashState, p.part.Prefix = hex.EncodeToString(state), hex.EncodeToString(h.Sum(nil))
	return p, r.readErr, nil
}

// readErrors remembers a read error other than EOF.
type readErrors struct {
	r   io.Reader
	err error
}

func (e *readErrors) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// recordPart adds a stored piece while the file is still arriving; a
// piece at the same place recorded meanwhile (two uploads of one file at
// once) wins, and this one is refused.
func (s *Service) recordPart(ctx context.Context, id, path string, p uploadPart) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		var up int
		var state State
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT f.uploaded, d.state FROM escrow_files f JOIN escrow_deposits d ON d.id = f.deposit WHERE f.deposit = ? AND f.path = ?`), id, path).Scan(&up, &state)
		if err != nil {
			return db.NotFound(err, "deposit %s has no file %q", id, path)
		}
		if up == 1 || state != Uploading {
			return errs.E(errs.Conflict, "deposit %s: %s can no longer change", id, path)
		}
		if p.Seq > 0 {
			var end int64
			err := tx.QueryRowContext(ctx, s.db.Q(`SELECT first_byte + size FROM escrow_upload_parts WHERE deposit = ? AND path = ? AND seq = ?`), id, path, p.Seq-1).Scan(&end)
			if err != nil || end != p.FirstByte {
				return errs.E(errs.Conflict, "another upload of %s changed it meanwhile: ask where it stands and send from there", path)
			}
		}
		res, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_upload_parts (deposit, path, seq, first_byte, size, cipher_digest, cipher_size, hash_state, prefix_sha256, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (deposit, path, seq) DO NOTHING`),
			id, path, p.Seq, p.FirstByte, p.Size, string(p.Cipher), p.CipherSize, p.HashState, p.Prefix, db.Millis(s.now()))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.E(errs.Conflict, "another upload of %s changed it meanwhile: ask where it stands and send from there", path)
		}
		return nil
	})
}

// dropParts forgets a file's stored pieces and deletes the blobs of those
// it removed (another upload of the file may have taken some meanwhile).
func (s *Service) dropParts(ctx context.Context, id, path string, parts []uploadPart) {
	for _, p := range parts {
		res, err := s.db.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_upload_parts WHERE deposit = ? AND path = ? AND seq = ? AND cipher_digest = ?`), id, path, p.Seq, string(p.Cipher))
		if err != nil {
			s.log.Warn("escrow: could not forget a piece of an upload", "deposit", id, "path", path, "err", err)
			return
		}
		if n, _ := res.RowsAffected(); n == 1 {
			s.deleteBlob(ctx, p.Cipher)
		}
	}
}

// finishParts makes the pieces of a whole, checked file its ciphertext,
// as they are (docs/escrow.md, "How a sealed file is stored"), and marks
// it uploaded: one piece is named in the file's row, several are listed
// in escrow_file_pieces. An empty file, which has no piece, is sealed
// here.
func (s *Service) finishParts(ctx context.Context, id string, f fileRow, parts []uploadPart) error {
	var empty blob.Info
	if len(parts) == 0 {
		var err error
		empty, err = s.sealStream(ctx, io.MultiReader(), f.Entry)
		if err != nil {
			return err
		}
	}
	var stored bool
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		stored = false
		// Another upload of the file from offset 0 may drop these pieces
		// meanwhile: each must still be recorded, and whoever removes its
		// row owns its blob.
		for _, p := range parts {
			res, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM escrow_upload_parts WHERE deposit = ? AND path = ? AND seq = ? AND cipher_digest = ?`), id, f.Path, p.Seq, string(p.Cipher))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return errs.E(errs.Conflict, "another upload of %s changed it meanwhile: ask where it stands and send from there", f.Path)
			}
		}
		one := empty
		if len(parts) == 1 {
			one = blob.Info{Digest: parts[0].Cipher, Size: parts[0].CipherSize}
		}
		res, err := tx.ExecContext(ctx, s.db.Q(`UPDATE escrow_files SET cipher_digest = ?, uploaded = 1
			WHERE deposit = ? AND path = ? AND uploaded = 0
			AND EXISTS (SELECT 1 FROM escrow_deposits WHERE id = ? AND state = ?)`),
			string(one.Digest), id, f.Path, id, Uploading)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		stored = true
		if one.Digest != "" {
			return s.trackBlob(ctx, tx, one, "cipher", s.now())
		}
		return s.recordPieces(ctx, tx, id, f.Path, parts)
	})
	if err != nil || !stored {
		s.deleteBlob(ctx, empty.Digest)
		if err != nil {
			return err
		}
		// The transaction removed the pieces' rows: their blobs are ours.
		for _, p := range parts {
			s.deleteBlob(ctx, p.Cipher)
		}
		return errs.E(errs.Conflict, "deposit %s: %s can no longer change", id, f.Path)
	}
	return nil
}
