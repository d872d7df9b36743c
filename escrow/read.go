package escrow

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// File is an open deposit file. Reading it to EOF checks its digest; a
// corrupt file fails before its last byte is returned, so a caller that
// copies it never holds the complete wrong content.
type File struct {
	manifest.Entry
	Released bool
	io.ReadCloser
}

// Open opens one file of a deposit for p: released files for anyone, sealed
// ones for their own vendor org and admins only (decrypted on the fly).
// Everyone else gets NotFound.
func (s *Service) Open(ctx context.Context, p principal.Principal, id, path string) (*File, error) {
	d, f, err := s.locate(ctx, p, id, path)
	if err != nil {
		return nil, err
	}
	var rc io.ReadCloser
	if d.State == Released && f.Rights != manifest.Private {
		rc, err = s.openPlain(ctx, f.Entry)
	} else {
		rc, err = s.openSealed(ctx, id, f)
	}
	if err != nil {
		return nil, fmt.Errorf("escrow: open %s/%s: %w", id, path, err)
	}
	return &File{Entry: f.Entry, Released: d.State == Released && f.Rights == manifest.Public, ReadCloser: rc}, nil
}

// PublicCopy finds the plaintext copy of a public file of a released
// deposit, which the release wrote into the blob store under its plaintext
// digest (verified as it was written, and by every scrub since), so that a
// server can send it as it is stored: zero-copy from disk, or by redirect
// to the store. It returns an empty digest (and no error) for any other
// file p may read, which Open serves; p's other reads fail as Open's do.
// A copy that a scrub or a read found corrupt or missing is refused.
func (s *Service) PublicCopy(ctx context.Context, p principal.Principal, id, path string) (manifest.Entry, blob.Digest, error) {
	d, f, err := s.locate(ctx, p, id, path)
	if err != nil {
		return manifest.Entry{}, "", err
	}
	if d.State != Released || f.Rights != manifest.Public {
		return f.Entry, "", nil
	}
	plain := blob.Digest("sha256:" + f.SHA256)
	if err := s.usable(ctx, plain); err != nil {
		return manifest.Entry{}, "", fmt.Errorf("escrow: open %s/%s: %w", id, path, err)
	}
	return f.Entry, plain, nil
}

// locate finds file path of deposit id if p may read it, with Open's
// answers for everything else.
func (s *Service) locate(ctx context.Context, p principal.Principal, id, path string) (Deposit, fileRow, error) {
	if err := manifest.ValidatePath(path); err != nil {
		return Deposit{}, fileRow{}, err
	}
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Deposit{}, fileRow{}, err
	}
	if !canSee(p, d) || d.State == Uploading {
		return Deposit{}, fileRow{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	f, err := s.file(ctx, id, path)
	if err != nil {
		return Deposit{}, fileRow{}, err
	}
	if f.IsLink() {
		return Deposit{}, fileRow{}, errs.E(errs.Invalid, "%s is a symbolic link to %s", path, f.Link)
	}
	if !mayRead(p, d, f.Entry) {
		return Deposit{}, fileRow{}, errs.E(errs.NotFound, "file %q of deposit %s is %s: only its vendor and admins may read it", path, id, f.Rights)
	}
	return d, f, nil
}

func (s *Service) openPlain(ctx context.Context, e manifest.Entry) (io.ReadCloser, error) {
	d := blob.Digest("sha256:" + e.SHA256)
	if err := s.usable(ctx, d); err != nil {
		return nil, err
	}
	rc, err := s.blobs.Get(ctx, d, 0, -1)
	if err != nil {
		return nil, s.noteMissing(ctx, d, err)
	}
	return newChecked(rc, e.SHA256, e.Size, e.Path, func(got string) { s.markCorrupt(ctx, d, "content hashes to "+got) }), nil
}

// ReleasedFile reports whether content with this plaintext digest is a
// public file of a released deposit (MayBePublic), and its size. Downloads
// then fetch it from the blob store by that digest (verifying as they
// read); build inputs are asked for with BuildInput.
func (s *Service) ReleasedFile(ctx context.Context, d blob.Digest) (size int64, ok bool, err error) {
	size, rights, ok, err := s.releasedClass(ctx, d)
	if err != nil || !ok || rights != manifest.Public {
		return 0, false, err
	}
	if err := s.usable(ctx, d); err != nil {
		return 0, false, err
	}
	return size, true, nil
}

// usable refuses blobs that a scrub or a read found corrupt or missing.
func (s *Service) usable(ctx context.Context, d blob.Digest) error {
	var status, detail string
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT status, detail FROM escrow_blobs WHERE digest = ?`), string(d)).Scan(&status, &detail)
	if err == sql.ErrNoRows {
		return nil
	}
	if err != nil {
		return db.Classify(err)
	}
	if status != blobOK {
		return errs.Wrap(errs.Conflict, blob.ErrCorrupt, "blob %s is %s (%s): it is not served until an admin restores it", d, status, detail)
	}
	return nil
}

const (
	blobOK      = "ok"
	blobCorrupt = "corrupt"
	blobMissing = "missing"
)

func (s *Service) markCorrupt(ctx context.Context, d blob.Digest, detail string) {
	s.setBlobStatus(ctx, d, blobCorrupt, detail)
}

func (s *Service) noteMissing(ctx context.Context, d blob.Digest, err error) error {
	if errs.Is(err, errs.NotFound) {
		s.setBlobStatus(ctx, d, blobMissing, "not in the blob store")
		return errs.Wrap(errs.Conflict, blob.ErrCorrupt, "blob %s is missing from the blob store", d)
	}
	return err
}

func (s *Service) setBlobStatus(ctx context.Context, d blob.Digest, status, detail string) {
	ctx = context.WithoutCancel(ctx)
	s.log.Error("escrow: blob failed its integrity check; refusing to serve it", "digest", d, "status", status, "detail", detail)
	count(s.metrics.BlobsCorrupt, 1)
	_, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE escrow_blobs SET status = ?, detail = ?, checked_at = ? WHERE digest = ?`),
		status, detail, db.Millis(s.now()), string(d))
	if err != nil {
		s.log.Error("escrow: cannot record a corrupt blob", "digest", d, "err", err)
	}
}

// checked hashes what it reads and holds back the last byte until the
// digest (and size, when known) match at EOF.
type checked struct {
	src       io.ReadCloser
	h         hash.Hash
	n         int64
	wantHex   string
	wantSize  int64 // -1: unknown
	name      string
	onCorrupt func(got string)

	buf       []byte
	start     int
	eof       bool
	verifyErr error
	sourceErr error
}

func newChecked(src io.ReadCloser, wantHex string, wantSize int64, name string, onCorrupt func(string)) *checked {
	return &checked{src: src, h: sha256.New(), wantHex: wantHex, wantSize: wantSize, name: name, onCorrupt: onCorrupt, buf: make([]byte, 0, 64<<10)}
}

func (c *checked) Read(p []byte) (int, error) {
	if c.sourceErr != nil {
		return 0, c.sourceErr
	}
	for !c.eof && len(c.buf)-c.start <= 1 {
		c.buf = c.buf[:copy(c.buf, c.buf[c.start:])]
		c.start = 0
		n, err := c.src.Read(c.buf[len(c.buf):cap(c.buf)])
		c.h.Write(c.buf[len(c.buf) : len(c.buf)+n])
		c.buf = c.buf[:len(c.buf)+n]
		c.n += int64(n)
		if c.wantSize >= 0 && c.n > c.wantSize {
			c.eof, c.verifyErr = true, c.corrupt(fmt.Sprintf("more than %d bytes", c.wantSize))
			break
		}
		if err == io.EOF {
			c.eof = true
			c.verifyErr = c.verify()
		} else if err != nil {
			c.sourceErr = err
			return 0, err
		}
	}
	if c.eof && c.verifyErr != nil {
		return 0, c.verifyErr
	}
	avail := c.buf[c.start:]
	if !c.eof {
		avail = avail[:len(avail)-1]
	}
	if len(avail) == 0 && c.eof {
		return 0, io.EOF
	}
	n := copy(p, avail)
	c.start += n
	return n, nil
}

func (c *checked) verify() error {
	got := hex.EncodeToString(c.h.Sum(nil))
	if got != c.wantHex || (c.wantSize >= 0 && c.n != c.wantSize) {
		return c.corrupt(fmt.Sprintf("sha256 %s, %d bytes", got, c.n))
	}
	return nil
}

func (c *checked) corrupt(got string) error {
	if c.onCorrupt != nil {
		c.onCorrupt(got)
	}
	return errs.Wrap(errs.Conflict, blob.ErrCorrupt, "%s does not match its digest: refusing to serve it", c.name)
}

func (c *checked) Close() error { return c.src.Close() }
