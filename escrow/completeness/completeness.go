// Package completeness compares the image a vendor last shipped with an
// image rebuilt from its deposit: it unpacks both where it can (gzip, tar,
// cpio "newc", ELF sections), classifies every file as identical, differs,
// missing (in the shipped image, not rebuilt) or extra (rebuilt, not
// shipped), and computes a byte-weighted score: the share of the shipped
// image's bytes that were rebuilt bit for bit.
//
// It is a format package: no database, HTTP or blob store, so the vendor's
// CLI and the server can share it.
package completeness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Class is what became of one file of the shipped image.
type Class string

// The classes.
const (
	Identical Class = "identical" // rebuilt bit for bit
	Differs   Class = "differs"   // rebuilt, with other bytes
	Missing   Class = "missing"   // shipped, not rebuilt
	Extra     Class = "extra"     // rebuilt, not shipped
)

// Member is one file of an image, after unpacking: its path inside the
// image (archive members as "outer/inner", ELF sections as "file#.text")
// and its content.
type Member struct {
	Path string
	Data []byte
}

// File is one compared path.
type File struct {
	Path          string `json:"path"`
	Class         Class  `json:"class"`
	ShippedSize   int64  `json:"shipped_size,omitempty"`
	RebuiltSize   int64  `json:"rebuilt_size,omitempty"`
	ShippedSHA256 string `json:"shipped_sha256,omitempty"`
	RebuiltSHA256 string `json:"rebuilt_sha256,omitempty"`
}

// Counts are the files in each class.
type Counts struct {
	Identical int `json:"identical"`
	Differs   int `json:"differs"`
	Missing   int `json:"missing"`
	Extra     int `json:"extra"`
}

// Report is a comparison: the score and per-class counts, which may become
// public, and the per-file list, which stays with the vendor and admins.
type Report struct {
	// ShippedBytes is the size of every shipped file compared (after
	// unpacking); IdenticalBytes the part of it rebuilt bit for bit.
	ShippedBytes   int64  `json:"shipped_bytes"`
	IdenticalBytes int64  `json:"identical_bytes"`
	Counts         Counts `json:"counts"`
	Files          []File `json:"files"`
}

// Percent is the byte-weighted score in whole percent, rounded down, so
// that only an image rebuilt entirely bit for bit scores 100. An empty
// shipped image scores 0.
func (r Report) Percent() int {
	if r.ShippedBytes == 0 {
		return 0
	}
	if r.IdenticalBytes == r.ShippedBytes && r.Counts.Missing == 0 && r.Counts.Differs == 0 {
		return 100
	}
	p := int(math.Floor(float64(r.IdenticalBytes) * 100 / float64(r.ShippedBytes)))
	return min(p, 99)
}

// Sentence is the score as the product page states it.
func (r Report) Sentence() string {
	return fmt.Sprintf("Deposit completeness: %d %% of the shipped image rebuilt bit-for-bit from the deposit", r.Percent())
}

// Compare classifies every member of shipped and rebuilt by path. A path
// twice in one image counts once, with its last content.
func Compare(shipped, rebuilt []Member) Report {
	s, b := index(shipped), index(rebuilt)
	var r Report
	paths := make([]string, 0, len(s)+len(b))
	for p := range s {
		paths = append(paths, p)
	}
	for p := range b {
		if _, ok := s[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		sm, inS := s[p]
		bm, inB := b[p]
		f := File{Path: p}
		if inS {
			f.ShippedSize, f.ShippedSHA256 = int64(len(sm)), sum(sm)
			r.ShippedBytes += f.ShippedSize
		}
		if inB {
			f.RebuiltSize, f.RebuiltSHA256 = int64(len(bm)), sum(bm)
		}
		switch {
		case inS && inB && f.ShippedSHA256 == f.RebuiltSHA256:
			f.Class = Identical
			r.Counts.Identical++
			r.IdenticalBytes += f.ShippedSize
		case inS && inB:
			f.Class = Differs
			r.Counts.Differs++
		case inS:
			f.Class = Missing
			r.Counts.Missing++
		default:
			f.Class = Extra
			r.Counts.Extra++
		}
		r.Files = append(r.Files, f)
	}
	return r
}

func index(ms []Member) map[string][]byte {
	out := make(map[string][]byte, len(ms))
	for _, m := range ms {
		out[m.Path] = m.Data
	}
	return out
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Of lists the files in class c.
func (r Report) Of(c Class) []string {
	var out []string
	for _, f := range r.Files {
		if f.Class == c {
			out = append(out, f.Path)
		}
	}
	return out
}

// Text is the per-file report for the vendor: one line per file that is
// not identical, then the counts and the score.
func (r Report) Text() string {
	var b strings.Builder
	for _, f := range r.Files {
		if f.Class == Identical {
			continue
		}
		fmt.Fprintf(&b, "%-9s %s\n", f.Class, f.Path)
	}
	fmt.Fprintf(&b, "%d identical, %d differ, %d missing, %d extra; %d of %d shipped bytes rebuilt bit for bit\n%s\n",
		r.Counts.Identical, r.Counts.Differs, r.Counts.Missing, r.Counts.Extra, r.IdenticalBytes, r.ShippedBytes, r.Sentence())
	return b.String()
}
