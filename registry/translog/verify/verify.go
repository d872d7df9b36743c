// Package verify checks what the transparency log serves, for clients (the
// device, the CLI, builder witnesses): a checkpoint's log signature and its
// witnesses' cosignatures against a policy (k of n, counting distinct
// operators), an entry's inclusion, the consistency of two checkpoints and
// proof bundles in the spirit of C2SP tlog-proof. It links no server code.
package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Witness is a witness a policy knows: its name, its cosignature verifier
// key (C2SP signed-note vkey, Ed25519 cosignature/v1) and its operator.
type Witness struct {
	Name        string `json:"name"`
	VerifierKey string `json:"verifier_key"`
	Operator    string `json:"operator"`
}

// Policy is what a client accepts: checkpoints of the log Origin signed
// by LogKey and cosigned by witnesses of at least Quorum distinct
// operators.
type Policy struct {
	Origin    string    `json:"origin"`
	LogKey    string    `json:"log_key"` // the log's note verifier key
	Witnesses []Witness `json:"witnesses"`
	Quorum    int       `json:"quorum"`
}

// Checkpoint is a verified checkpoint.
type Checkpoint struct {
	Origin    string
	Size      int64
	Hash      tlog.Hash
	Note      []byte   // as served, with its signatures
	Operators []string // distinct operators whose witnesses cosigned it
}

// ErrPolicy is the kind-less cause of a checkpoint that the log signed but
// too few independent witnesses cosigned.
var ErrPolicy = errors.New("not enough witnesses cosigned the checkpoint")

// Checkpoint verifies a signed checkpoint against the policy: the log's
// signature, its origin, and cosignatures of Quorum distinct operators.
func (p Policy) Checkpoint(b []byte) (Checkpoint, error) {
	cp, err := p.LogSigned(b)
	if err != nil {
		return cp, err
	}
	if len(cp.Operators) < p.Quorum {
		return cp, errs.Wrap(errs.Invalid, ErrPolicy, "checkpoint of size %d: cosigned by %d distinct operators (%s), the policy wants %d",
			cp.Size, len(cp.Operators), strings.Join(cp.Operators, ", "), p.Quorum)
	}
	return cp, nil
}

// LogSigned verifies the log's signature and origin only, and says which
// operators cosigned; it does not apply the quorum.
func (p Policy) LogSigned(b []byte) (Checkpoint, error) {
	logV, err := note.NewVerifier(p.LogKey)
	if err != nil {
		return Checkpoint{}, errs.Wrap(errs.Invalid, err, "log key %q", p.LogKey)
	}
	vs := []note.Verifier{logV}
	operator := map[string]string{} // "name+hash" → operator
	for _, w := range p.Witnesses {
		v, err := fnote.NewVerifierForCosignatureV1(w.VerifierKey)
		if err != nil {
			return Checkpoint{}, errs.Wrap(errs.Invalid, err, "witness %s key", w.Name)
		}
		vs = append(vs, v)
		operator[fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())] = w.Operator
	}
	n, err := note.Open(b, note.VerifierList(vs...))
	if err != nil {
		return Checkpoint{}, errs.Wrap(errs.Invalid, err, "checkpoint signatures")
	}
	var cp Checkpoint
	logSigned := false
	seen := map[string]bool{}
	for _, s := range n.Sigs {
		if s.Name == logV.Name() && s.Hash == logV.KeyHash() {
			logSigned = true
			continue
		}
		if op, ok := operator[fmt.Sprintf("%s+%08x", s.Name, s.Hash)]; ok && !seen[op] {
			seen[op] = true
			cp.Operators = append(cp.Operators, op)
		}
	}
	if !logSigned {
		return Checkpoint{}, errs.E(errs.Invalid, "checkpoint is not signed by the log's key")
	}
	origin, size, hash, err := ParseBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if origin != p.Origin {
		return Checkpoint{}, errs.E(errs.Invalid, "checkpoint of log %q, want %q", origin, p.Origin)
	}
	cp.Origin, cp.Size, cp.Hash, cp.Note = origin, size, hash, b
	return cp, nil
}

// OtherLog reports whether a checkpoint (one a client accepted before) is
// of a log other than the policy's: signed by none of its log key, or of
// another origin. A client whose trusted policy now names another log (a
// registry carried on by a new operator, whose custodians' root names the
// new log) starts over with that log instead of refusing it as rewritten.
func (p Policy) OtherLog(b []byte) bool {
	logV, err := note.NewVerifier(p.LogKey)
	if err != nil {
		return false
	}
	n, err := note.Open(b, note.VerifierList(logV))
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		return true
	}
	if err != nil {
		return false
	}
	origin, _, _, err := ParseBody(n.Text)
	return err == nil && origin != p.Origin
}

// ParseBody reads a C2SP checkpoint body: origin, size and root hash lines
// (extension lines after them are allowed and ignored).
func ParseBody(text string) (string, int64, tlog.Hash, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return "", 0, tlog.Hash{}, errs.E(errs.Invalid, "checkpoint body: want origin, size and hash lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return "", 0, tlog.Hash{}, errs.E(errs.Invalid, "checkpoint size %q", lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return "", 0, tlog.Hash{}, errs.E(errs.Invalid, "checkpoint root hash %q", lines[2])
	}
	return lines[0], size, tlog.Hash(h), nil
}

// Inclusion checks that entry is the entry at idx of the checkpoint's tree.
func Inclusion(cp Checkpoint, idx int64, entry []byte, p tlog.RecordProof) error {
	if idx < 0 || idx >= cp.Size {
		return errs.E(errs.Invalid, "entry %d is beyond the checkpoint's size %d", idx, cp.Size)
	}
	if err := tlog.CheckRecord(p, cp.Size, cp.Hash, idx, tlog.RecordHash(entry)); err != nil {
		return errs.Wrap(errs.Invalid, err, "entry %d is not in the checkpoint of size %d", idx, cp.Size)
	}
	return nil
}

// Consistency checks that old's tree is a prefix of new's: the log was
// only appended to between them.
func Consistency(old, new Checkpoint, p tlog.TreeProof) error {
	if old.Size > new.Size {
		return errs.E(errs.Invalid, "checkpoint of size %d is older than the one of size %d", new.Size, old.Size)
	}
	if old.Size == new.Size || old.Size == 0 {
		if old.Size == new.Size && old.Hash != new.Hash {
			return errs.E(errs.Invalid, "two checkpoints of size %d with different roots: the log forked", old.Size)
		}
		return nil
	}
	if err := tlog.CheckTree(p, new.Size, new.Hash, old.Size, old.Hash); err != nil {
		return errs.Wrap(errs.Invalid, err, "checkpoint of size %d is not an extension of the one of size %d: the log was rewritten", new.Size, old.Size)
	}
	return nil
}

// ParseProofLines reads proof hashes, one base64 hash a line.
func ParseProofLines(b []byte) ([]tlog.Hash, error) {
	var out []tlog.Hash
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		h, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil || len(h) != tlog.HashSize {
			return nil, errs.E(errs.Invalid, "proof hash %q", line)
		}
		out = append(out, tlog.Hash(h))
	}
	return out, nil
}

// Bundle is a checked proof bundle: the entry, its index and the
// checkpoint that includes it.
type Bundle struct {
	Index      int64
	Entry      []byte
	Checkpoint Checkpoint
}

// Bundle checks a proof bundle (C2SP tlog-proof whose extra data is the
// entry): its checkpoint against the policy, and the entry's inclusion.
func (p Policy) Bundle(b []byte) (Bundle, error) {
	var tp proof.TLogProof
	if err := tp.Unmarshal(b); err != nil {
		return Bundle{}, errs.Wrap(errs.Invalid, err, "proof bundle")
	}
	if len(tp.ExtraData) == 0 {
		return Bundle{}, errs.E(errs.Invalid, "proof bundle carries no entry")
	}
	cp, err := p.Checkpoint(tp.Checkpoint)
	if err != nil {
		return Bundle{}, err
	}
	hashes := make(tlog.RecordProof, len(tp.Hashes))
	for i, h := range tp.Hashes {
		hashes[i] = tlog.Hash(h)
	}
	if tp.Index > 1<<62 {
		return Bundle{}, errs.E(errs.Invalid, "proof bundle index %d", tp.Index)
	}
	if err := Inclusion(cp, int64(tp.Index), tp.ExtraData, hashes); err != nil {
		return Bundle{}, err
	}
	return Bundle{Index: int64(tp.Index), Entry: tp.ExtraData, Checkpoint: cp}, nil
}

// Commitment recomputes a sealed deposit's commitment from what its
// release entry reveals (docs/transparency.md).
func Commitment(salt, product, manifest string) string {
	h := sha256.Sum256([]byte("afterlife/deposit-commitment/v1\n" + salt + "\n" + product + "\n" + manifest + "\n"))
	return "sha256:" + fmt.Sprintf("%x", h[:])
}
