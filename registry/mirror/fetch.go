package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// maxDoc bounds an API answer or metadata file read into memory.
const maxDoc = 256 << 20

// fetcher downloads from the origin into the mirror directory.
type fetcher struct {
	base  string
	dir   string
	http  *http.Client
	files atomic.Int64 // downloaded
	bytes atomic.Int64
	kept  atomic.Int64 // already present with the right digest
}

// get reads a small document. A 404 is an errs.NotFound error.
func (f *fetcher) get(ctx context.Context, urlPath string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+urlPath, nil)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Invalid, err, "mirror: %s", urlPath)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, nil, errs.Wrap(errs.Unavailable, err, "mirror: GET %s", urlPath)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, httpclient.DecodeError(resp, "GET "+urlPath)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDoc+1))
	if err != nil {
		return nil, nil, errs.Wrap(errs.Unavailable, err, "mirror: GET %s", urlPath)
	}
	if len(b) > maxDoc {
		return nil, nil, errs.E(errs.TooLarge, "mirror: GET %s: more than %d bytes", urlPath, maxDoc)
	}
	f.bytes.Add(int64(len(b)))
	return b, resp.Header, nil
}

// save writes data at rel atomically (a temporary file renamed over it).
func (f *fetcher) save(rel string, data []byte) error {
	full := filepath.Join(f.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if old, err := os.ReadFile(full); err == nil && string(old) == string(data) {
		f.kept.Add(1)
		return nil
	}
	tmp := full + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := os.Rename(tmp, full); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	f.files.Add(1)
	return nil
}

// copyDoc fetches urlPath and saves it at rel, returning its bytes.
func (f *fetcher) copyDoc(ctx context.Context, urlPath, rel string) ([]byte, error) {
	b, _, err := f.get(ctx, urlPath)
	if err != nil {
		return nil, err
	}
	return b, f.save(rel, b)
}

// present reports whether rel exists (and, when sum is given, hashes to it
// with size bytes, -1 for any size).
func (f *fetcher) present(rel, sum string, size int64) bool {
	full := filepath.Join(f.dir, filepath.FromSlash(rel))
	st, err := os.Stat(full)
	if err != nil || !st.Mode().IsRegular() || (size >= 0 && st.Size() != size) {
		return false
	}
	if sum == "" {
		return true
	}
	got, err := fileSHA256(full)
	return err == nil && got == sum
}

// file copies an immutable file: skipped when present with the right
// digest (sum, hex sha256; "" for files named by their version, whose
// content never changes), otherwise downloaded into rel.part, resumed
// with Range from what an interrupted pull left there, checked, and
// renamed into place.
func (f *fetcher) file(ctx context.Context, urlPath, rel, sum string, size int64) error {
	if f.present(rel, sum, size) {
		f.kept.Add(1)
		return nil
	}
	full := filepath.Join(f.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	part := full + partSuffix
	out, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	defer out.Close()
	have, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if size >= 0 && have > size {
		if err := out.Truncate(0); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		have, _ = out.Seek(0, io.SeekStart)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+urlPath, nil)
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "mirror: %s", urlPath)
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "mirror: GET %s", urlPath)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		// The whole file: start the part again.
		if err := out.Truncate(0); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		if _, err := out.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		// The part is already whole (or wrong): check it below.
	default:
		return httpclient.DecodeError(resp, "GET "+urlPath)
	}
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		n, err := io.Copy(out, resp.Body)
		f.bytes.Add(n)
		if err != nil {
			return errs.Wrap(errs.Unavailable, err, "mirror: GET %s (the part is kept; pull again to resume)", urlPath)
		}
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if sum != "" || size >= 0 {
		st, err := os.Stat(part)
		if err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		got, err := fileSHA256(part)
		if err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		if (size >= 0 && st.Size() != size) || (sum != "" && got != sum) {
			_ = os.Remove(part)
			return errs.E(errs.Invalid, "mirror: %s: got %d bytes with sha256 %s, want %d bytes with %s", urlPath, st.Size(), got, size, sum)
		}
	}
	if err := os.Rename(part, full); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	f.files.Add(1)
	return nil
}

func fileSHA256(p string) (string, error) {
	fh, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// readMirror reads a file of the mirror.
func readMirror(dir, rel string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	return b, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// hashFile returns a file's sha256 and size.
func hashFile(p string) (string, int64, error) {
	fh, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
