// Package backup backs up and restores the embedded default's data
// directory (SQLite and a disk blob store): a consistent database snapshot,
// the blobs, the keys, and a manifest of every file's sha256 that a
// restore checks. PostgreSQL and S3 deployments use their own tools.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/afterlife-oss/afterlife/internal/blob/fsstore"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Manifest lists every file of a backup with its digest, so a restore can
// prove it got everything intact.
type Manifest struct {
	Format  int               `json:"format"`
	Created time.Time         `json:"created"`
	Version string            `json:"afterlife_version"`
	Files   map[string]string `json:"files"` // relative path → sha256 hex
}

const format = 1

// Backup writes a backup of the embedded data directory data into dest,
// which must not exist yet; version is recorded in its manifest. It is
// safe while a server uses data.
func Backup(ctx context.Context, data, dest, version string) (*Manifest, error) {
	dbPath := filepath.Join(data, "afterlife.db")
	if _, err := os.Stat(dbPath); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "%s is not an embedded data directory (no afterlife.db)", data)
	}
	if _, err := os.Stat(dest); err == nil {
		return nil, errs.E(errs.Conflict, "%s already exists; back up into a new directory", dest)
	}
	tmp := dest + ".partial"
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	d, err := db.Open(ctx, "sqlite:"+dbPath)
	if err != nil {
		return nil, err
	}
	_, err = d.ExecContext(ctx, `VACUUM INTO ?`, filepath.Join(tmp, "afterlife.db"))
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("backup: snapshot database: %w", err)
	}
	// Blobs after the snapshot: every blob the snapshot refers to exists by
	// then, since blobs are written before the rows that name them. The
	// store copies them itself, without the files of uploads in progress.
	if _, err := os.Stat(filepath.Join(data, "blobs")); err == nil {
		blobs, err := fsstore.New(filepath.Join(data, "blobs"))
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if _, err := blobs.CopyTo(ctx, filepath.Join(tmp, "blobs")); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	for _, sub := range []string{"keys", "admin.token"} {
		if err := copyTree(filepath.Join(data, sub), filepath.Join(tmp, sub), func(string) bool { return true }); err != nil {
			return nil, fmt.Errorf("backup: copy %s: %w", sub, err)
		}
	}
	m := &Manifest{Format: format, Created: time.Now().UTC(), Version: version, Files: map[string]string{}}
	if err := hashTree(tmp, m.Files); err != nil {
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(tmp, "manifest.json"), m); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	ok = true
	return m, nil
}

// Restore restores the backup in src into data, which must be empty or
// absent, checking every file against the backup's manifest; it returns
// how many files it restored. Nothing is left behind when a check fails.
func Restore(src, data string) (int, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(src, "manifest.json"))
	if err != nil {
		return 0, errs.Wrap(errs.Invalid, err, "%s is not an afterlife backup", src)
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Format != format {
		return 0, errs.E(errs.Invalid, "%s: unknown backup format", src)
	}
	if entries, err := os.ReadDir(data); err == nil && len(entries) > 0 {
		return 0, errs.E(errs.Conflict, "%s is not empty; restore into an empty directory", data)
	}
	tmp := filepath.Clean(data) + ".restoring"
	os.RemoveAll(tmp)
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := copyTree(src, tmp, func(rel string) bool { return rel != "manifest.json" }); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	got := map[string]string{}
	if err := hashTree(tmp, got); err != nil {
		return 0, err
	}
	for path, sum := range m.Files {
		if got[path] != sum {
			return 0, errs.E(errs.Invalid, "restore: %s is missing or damaged in the backup", path)
		}
	}
	os.Remove(data)
	if err := os.Rename(tmp, data); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	ok = true
	return len(m.Files), nil
}

// copyTree copies a file or a directory tree, keeping modes, skipping
// relative paths keep rejects. A missing source is not an error.
func copyTree(src, dst string, keep func(rel string) bool) error {
	info, err := os.Lstat(src)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return copyFile(src, dst, info.Mode().Perm())
	}
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "." && !keep(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return nil // sockets, links: not part of a data dir
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func hashTree(root string, into map[string]string) error {
	var paths []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		if rel == "manifest.json" {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		into[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
	}
	return nil
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}
