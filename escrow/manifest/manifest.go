// Package manifest owns the description of a deposit's files: their paths,
// sizes, sha256 digests and kinds, the rules a path must follow to be
// accepted (confined, relative, no NUL), the kinds inferred from paths, the
// size limits, and the manifest digest that receipts and approvals sign.
//
// It is shared by the escrow server and the vendor client, so it must not
// know about databases, HTTP or blob stores.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"sort"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/relpath"
)

// Kind says what a deposited file is for.
type Kind string

// The kinds a file can have.
const (
	Spec      Kind = "spec"
	Source    Kind = "source"
	Toolchain Kind = "toolchain"
	Keys      Kind = "keys"
	Other     Kind = "other"
)

// Kinds lists every valid kind.
var Kinds = []Kind{Spec, Source, Toolchain, Keys, Other}

// ParseKind validates s as a kind.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", errs.E(errs.Invalid, "kind %q: want one of spec, source, toolchain, keys, other", s)
}

// Entry is one file (or symbolic link) of a deposit. SHA256 is 64 lowercase
// hex digits of the file's plaintext; a link has Link set, size 0 and no
// digest.
type Entry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	Kind   Kind   `json:"kind"`
	Link   string `json:"link,omitempty"`
	// Rights is the file's redistribution class (rights.go), set by the
	// server from the deposit's rules. It is not part of the manifest
	// digest: receipts sign the rules themselves.
	Rights Rights `json:"rights,omitempty"`
}

// IsLink reports whether e is a symbolic link.
func (e Entry) IsLink() bool { return e.Link != "" }

// Limits bound what one deposit may hold.
type Limits struct {
	MaxFileSize    int64 // bytes in one file
	MaxDepositSize int64 // bytes in all files of a deposit
	MaxFiles       int   // entries in a deposit
}

// DefaultLimits are generous enough for a firmware sunset package (a
// toolchain tarball is a few GiB) and small enough to protect the server.
var DefaultLimits = Limits{MaxFileSize: 8 << 30, MaxDepositSize: 32 << 30, MaxFiles: 100_000}

// ValidatePath accepts a path relative to the deposit root by the one rule
// every part applies to relative paths (relpath.Check): not empty, not
// absolute, no "." or ".." elements, no empty elements, no backslash, no
// control or bidirectional control characters, valid UTF-8, bounded
// length.
func ValidatePath(p string) error { return relpath.Check(p) }

// ValidateLink accepts a link target that, resolved from the link's
// directory, stays inside the deposit tree.
func ValidateLink(linkPath, target string) error {
	if target == "" || strings.ContainsRune(target, 0) || strings.HasPrefix(target, "/") || len(target) > relpath.MaxLen {
		return errs.E(errs.Invalid, "link %q → %q: targets must be relative, non-empty and without NUL", linkPath, target)
	}
	resolved := path.Join(path.Dir(linkPath), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") || resolved == "." {
		return errs.E(errs.Invalid, "link %q → %q: target escapes the deposit tree", linkPath, target)
	}
	return nil
}

// Validate checks every entry and the set as a whole against limits, and
// returns the entries sorted by path.
func Validate(entries []Entry, lim Limits) ([]Entry, error) {
	if len(entries) == 0 {
		return nil, errs.E(errs.Invalid, "manifest is empty")
	}
	if lim.MaxFiles > 0 && len(entries) > lim.MaxFiles {
		return nil, errs.E(errs.TooLarge, "manifest has %d entries; the limit is %d", len(entries), lim.MaxFiles)
	}
	out := append([]Entry(nil), entries...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	var total int64
	seen := make(map[string]bool, len(out))
	for _, e := range out {
		if err := ValidatePath(e.Path); err != nil {
			return nil, err
		}
		if seen[e.Path] {
			return nil, errs.E(errs.Invalid, "path %q appears twice", e.Path)
		}
		seen[e.Path] = true
		if _, err := ParseKind(string(e.Kind)); err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "path %q", e.Path)
		}
		if e.IsLink() {
			if e.Size != 0 || e.SHA256 != "" {
				return nil, errs.E(errs.Invalid, "link %q: size and sha256 must be empty", e.Path)
			}
			if err := ValidateLink(e.Path, e.Link); err != nil {
				return nil, err
			}
			continue
		}
		if err := ValidateHex(e.SHA256); err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "path %q", e.Path)
		}
		if e.Size < 0 {
			return nil, errs.E(errs.Invalid, "path %q: negative size", e.Path)
		}
		if lim.MaxFileSize > 0 && e.Size > lim.MaxFileSize {
			return nil, errs.E(errs.TooLarge, "path %q: %d bytes; the per-file limit is %d", e.Path, e.Size, lim.MaxFileSize)
		}
		total += e.Size
		if lim.MaxDepositSize > 0 && total > lim.MaxDepositSize {
			return nil, errs.E(errs.TooLarge, "deposit exceeds the per-deposit limit of %d bytes", lim.MaxDepositSize)
		}
	}
	// A path cannot be both a file and a directory holding other files.
	for _, e := range out {
		for dir := path.Dir(e.Path); dir != "."; dir = path.Dir(dir) {
			if seen[dir] {
				return nil, errs.E(errs.Invalid, "path %q is both a file and the directory of %q", dir, e.Path)
			}
		}
	}
	if err := CheckTree(out); err != nil {
		return nil, err
	}
	return out, nil
}

// ValidateHex accepts 64 lowercase hex digits.
func ValidateHex(s string) error {
	if len(s) != 64 {
		return errs.E(errs.Invalid, "sha256 %q: want 64 lowercase hex digits", s)
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return errs.E(errs.Invalid, "sha256 %q: want 64 lowercase hex digits", s)
		}
	}
	return nil
}

// Digest is "sha256:<hex>" over the canonical JSON of the entries sorted by
// path, without the rights classes (a deposit's rules are signed in its
// receipt). Receipts and trustee approvals sign it.
func Digest(entries []Entry) string {
	sorted := make([]Entry, len(entries))
	for i, e := range entries {
		e.Rights = ""
		sorted[i] = e
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	b, _ := json.Marshal(sorted) // plain strings and ints: cannot fail
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Totals returns the number of entries and the sum of their sizes.
func Totals(entries []Entry) (files int, size int64) {
	for _, e := range entries {
		size += e.Size
	}
	return len(entries), size
}

// InferKind guesses a file's kind from its path: specs are documents,
// sources are code, anything under a toolchain directory is toolchain, key
// material is keys, the rest is other.
func InferKind(p string) Kind {
	lower := strings.ToLower(p)
	elems := strings.Split(lower, "/")
	dirs := elems[:len(elems)-1]
	base := elems[len(elems)-1]
	ext := path.Ext(base)
	hasDir := func(names ...string) bool {
		for _, d := range dirs {
			for _, n := range names {
				if d == n {
					return true
				}
			}
		}
		return false
	}
	switch {
	case hasDir("keys", "key", "certs", "signing"),
		oneOf(ext, ".key", ".pem", ".der", ".crt", ".p12", ".pfx", ".gpg", ".asc", ".pub"):
		return Keys
	case hasDir("toolchain", "toolchains", "sdk"):
		return Toolchain
	case hasDir("docs", "doc", "spec", "specs", "datasheets"),
		oneOf(ext, ".pdf", ".md", ".txt", ".rst", ".html", ".odt", ".docx", ".svd", ".dts", ".dtsi"):
		return Spec
	case hasDir("src", "source", "sources", "firmware", "driver", "drivers"),
		oneOf(ext, ".c", ".h", ".cc", ".cpp", ".hpp", ".s", ".go", ".rs", ".py", ".sh", ".ld", ".mk", ".patch", ".diff"),
		base == "makefile" || base == "kconfig" || base == "cmakelists.txt":
		return Source
	}
	return Other
}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}
