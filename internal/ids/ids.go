// Package ids makes identifiers for rows: a short prefix that says what the
// thing is, then a time-sortable, random suffix (so ordering by id follows
// creation time closely without an autoincrement column, which SQLite and
// PostgreSQL spell differently).
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

var enc = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// New returns prefix + "_" + 26 characters: 48 bits of milliseconds and 80
// random bits, in an alphabet that sorts like the time it encodes. It reads
// the wall clock: use it for ids whose time nobody compares (request ids,
// replica names). Rows made by code that has an injected clock use At.
func New(prefix string) string { return At(prefix, time.Now()) }

// At is New with the time given, so that a part's ids follow the clock the
// part was given (and tests that freeze it get ids in that frozen time).
// Ids only roughly follow creation order; logs that need an exact order
// keep a sequence of their own (see db.NextSeq).
func At(prefix string, t time.Time) string {
	var b [16]byte
	ms := uint64(max(t.UnixMilli(), 0))
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	_, _ = rand.Read(b[6:])
	s := strings.ToLower(enc.EncodeToString(b[:]))
	return prefix + "_" + s[:26]
}

// Secret returns n random bytes as lowercase base32 text, for tokens.
func Secret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return enc.EncodeToString(b)
}
