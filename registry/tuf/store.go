package tuf

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Store keeps the repository's metadata files by the name a TUF client
// fetches them under ("root.json", "3.root.json", "timestamp.json",
// "12.snapshot.json", "4.targets.json", "7.bins-2a.json"). Names under
// "state/" are the repository's own and are never served. The registry
// implements Store with its database; every replica shares it.
type Store interface {
	// GetMeta returns the file's bytes, or an error of kind errs.NotFound.
	GetMeta(ctx context.Context, name string) ([]byte, error)
	// PutMeta creates or replaces the file.
	PutMeta(ctx context.Context, name string, data []byte) error
}

// validName accepts the names a repository writes: one path element, or
// "state/" followed by one.
func validName(name string) bool {
	if name == "" || strings.ContainsAny(name, `\`) || !fs.ValidPath(name) {
		return false
	}
	rest := strings.TrimPrefix(name, statePrefix)
	return !strings.Contains(rest, "/") && rest != ""
}

// MemStore is a Store in memory, for tests and for trying things out.
type MemStore struct {
	mu    sync.RWMutex
	files map[string][]byte
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{files: map[string][]byte{}} }

// GetMeta implements Store.
func (m *MemStore) GetMeta(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	b, ok := m.files[name]
	if !ok {
		return nil, errs.E(errs.NotFound, "tuf metadata %s not found", name)
	}
	return append([]byte(nil), b...), nil
}

// PutMeta implements Store.
func (m *MemStore) PutMeta(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validName(name) {
		return errs.E(errs.Invalid, "tuf metadata name %q is not valid", name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = append([]byte(nil), data...)
	return nil
}

// DirStore is a Store in a directory: one file per name, replaced
// atomically (temporary file, fsync, rename), so a reader never sees half
// a file. It suits one machine; replicas share the database-backed Store.
type DirStore struct {
	dir string
}

// NewDirStore returns a DirStore rooted at dir, creating it.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, statePrefix), 0o755); err != nil {
		return nil, fmt.Errorf("tuf: create store dir %s: %w", dir, err)
	}
	return &DirStore{dir: dir}, nil
}

// GetMeta implements Store.
func (d *DirStore) GetMeta(ctx context.Context, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !validName(name) {
		return nil, errs.E(errs.NotFound, "tuf metadata %s not found", name)
	}
	b, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errs.E(errs.NotFound, "tuf metadata %s not found", name)
	}
	if err != nil {
		return nil, fmt.Errorf("tuf: read %s: %w", name, err)
	}
	return b, nil
}

// PutMeta implements Store.
func (d *DirStore) PutMeta(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validName(name) {
		return errs.E(errs.Invalid, "tuf metadata name %q is not valid", name)
	}
	if err := writeFileAtomic(filepath.Join(d.dir, filepath.FromSlash(name)), data, 0o644); err != nil {
		return fmt.Errorf("tuf: write %s: %w", name, err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
