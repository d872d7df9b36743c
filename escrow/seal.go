package escrow

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Sealing: a file is hashed while it is encrypted (age) to the escrow key
// and streamed into the blob store, never held whole in memory.

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
	w, err := s.encryptTo(pw)
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	n, sum, err := copyHashed(w, io.LimitReader(body, want.Size+1))
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
	if got := hex.EncodeToString(sum); got != want.SHA256 {
		return errs.E(errs.Invalid, "%s: content hashes to sha256 %s; the manifest declares %s", want.Path, got, want.SHA256)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	return nil
}

// cipherBlock is how much ciphertext the encryptor hands the blob store
// at a time.
const cipherBlock = 1 << 20

// encryptTo encrypts to the escrow key into dst (the pipe the blob store
// reads) through a buffer of cipherBlock bytes: the store reads the
// ciphertext in large blocks, and age encrypts the next block while the
// store hashes and writes the last, instead of waiting on the store after
// each of age's 64 KiB chunks. Close flushes what is left.
func (s *Service) encryptTo(dst io.Writer) (io.WriteCloser, error) {
	buf := bufio.NewWriterSize(dst, cipherBlock)
	w, err := age.Encrypt(buf, s.recipient)
	if err != nil {
		return nil, err
	}
	return &bufferedSeal{w: w, buf: buf}, nil
}

type bufferedSeal struct {
	w   io.WriteCloser
	buf *bufio.Writer
}

func (b *bufferedSeal) Write(p []byte) (int, error) { return b.w.Write(p) }

func (b *bufferedSeal) Close() error {
	if err := b.w.Close(); err != nil {
		return err
	}
	return b.buf.Flush()
}

// copyHashed copies src to dst (the age encryptor) while another
// goroutine hashes what was read: reading the body, hashing it and
// encrypting it run on three goroutines (blob.CopyHashing), and the blob
// store hashes and writes the ciphertext on its own.
func copyHashed(dst io.Writer, src io.Reader) (int64, []byte, error) {
	h := sha256.New()
	n, err := blob.CopyHashing(dst, src, h)
	return n, h.Sum(nil), err
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
