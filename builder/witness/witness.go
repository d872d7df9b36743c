// Package witness is the builder's witness of the transparency log: it
// remembers the last checkpoint it cosigned, checks that each new one
// extends it (a consistency proof) and is signed by the log's key, and
// cosigns it (C2SP tlog-cosignature, cosignature/v1) with a witness key of
// its own, never the builder's attestation key. A log that was rewritten
// or shows this witness a fork gets no cosignature, and the witness says
// so in its log.
//
// It talks to the coordinator only through builder.LogWitness and links
// no server code.
package witness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// Options configure a Witness.
type Options struct {
	Log builder.LogWitness
	// KeyFile is the witness's signer key (made on first use, mode 0600):
	// a file of its own beside the builder's attestation key.
	KeyFile string
	// Name names a new key (letters, digits, '-', '.', '_').
	Name string
	// StateFile remembers the log's key and the last checkpoint cosigned
	// (default: KeyFile + ".state").
	StateFile string
	Logger    *slog.Logger
}

// Witness cosigns checkpoints that extend what it saw before.
type Witness struct {
	o      Options
	signer *fnote.Signer
	vkey   string
}

// state is what a witness remembers between runs.
type state struct {
	LogKey string `json:"log_key"` // pinned at the first checkpoint it saw
	Size   int64  `json:"size"`
	Root   string `json:"root"` // base64
}

var badName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// New loads the witness key, making it on first use.
func New(o Options) (*Witness, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StateFile == "" {
		o.StateFile = o.KeyFile + ".state"
	}
	skey, err := loadOrCreate(o.KeyFile, "afterlife-witness-"+badName.ReplaceAllString(o.Name, "-"))
	if err != nil {
		return nil, err
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "witness: key %s", o.KeyFile)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, err
	}
	return &Witness{o: o, signer: s, vkey: vkey}, nil
}

// VerifierKey is the witness's public key (C2SP vkey, cosignature/v1).
func (w *Witness) VerifierKey() string { return w.vkey }

// VerifierKey derives the cosignature/v1 vkey of a witness signer key.
func VerifierKey(skey string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errs.E(errs.Invalid, "witness: malformed key")
	}
	seed, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(seed) != 1+ed25519.SeedSize || (seed[0] != 0x01 && seed[0] != 0x04) {
		return "", errs.E(errs.Invalid, "witness: key is not an Ed25519 note key")
	}
	// C2SP signed-note: a cosignature/v1 key is algorithm 0x04, and its
	// key id is the first 4 bytes of SHA-256(name || "\n" || 0x04 || key).
	pub := append([]byte{0x04}, ed25519.NewKeyFromSeed(seed[1:]).Public().(ed25519.PublicKey)...)
	h := sha256.Sum256(append([]byte(parts[2]+"\n"), pub...))
	return fmt.Sprintf("%s+%08x+%s", parts[2], binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(pub)), nil
}

func loadOrCreate(path, name string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !os.IsNotExist(err) {
		return "", fmt.Errorf("witness: key %s: %w", path, err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("witness: generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("witness: key dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(skey+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("witness: write key %s: %w", path, err)
	}
	return skey, nil
}

func (w *Witness) load() (state, error) {
	var s state
	b, err := os.ReadFile(w.o.StateFile)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("witness: state %s: %w", w.o.StateFile, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, errs.Wrap(errs.Internal, err, "witness: state %s", w.o.StateFile)
	}
	return s, nil
}

func (w *Witness) save(s state) error {
	b, _ := json.Marshal(s)
	tmp := w.o.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("witness: state: %w", err)
	}
	return os.Rename(tmp, w.o.StateFile)
}

// ErrNotConsistent is the cause of a refusal to cosign: the log's new
// checkpoint does not extend the one this witness cosigned.
var ErrNotConsistent = errors.New("the log's checkpoint does not extend the one this witness cosigned")

// Once checks the newest checkpoint and cosigns it if it extends the last
// one this witness cosigned. It reports the size it cosigned (0: nothing
// new).
func (w *Witness) Once(ctx context.Context) (int64, error) {
	st, err := w.load()
	if err != nil {
		return 0, err
	}
	job, err := w.o.Log.WitnessJob(ctx, st.Size)
	if err != nil {
		return 0, err
	}
	if st.LogKey == "" {
		st.LogKey = job.LogKey // pinned from the first checkpoint on
	}
	text, _, _ := strings.Cut(job.Checkpoint, "\n\n")
	text += "\n"
	origin, _, _ := strings.Cut(text, "\n")
	cp, err := verify.Policy{Origin: origin, LogKey: st.LogKey}.LogSigned([]byte(job.Checkpoint))
	if err != nil {
		return 0, fmt.Errorf("witness: %w", err)
	}
	if job.Old != st.Size {
		return 0, errs.E(errs.Invalid, "witness: asked for a proof from %d, got one from %d", st.Size, job.Old)
	}
	if cp.Size < st.Size {
		return 0, errs.Wrap(errs.Invalid, ErrNotConsistent, "witness: the log shrank from %d to %d", st.Size, cp.Size)
	}
	if cp.Size == st.Size && st.Size > 0 {
		if base64.StdEncoding.EncodeToString(cp.Hash[:]) != st.Root {
			return 0, errs.Wrap(errs.Invalid, ErrNotConsistent, "witness: two checkpoints of size %d with different roots", cp.Size)
		}
		return 0, nil
	}
	if st.Size > 0 {
		oldRoot, err := base64.StdEncoding.DecodeString(st.Root)
		if err != nil || len(oldRoot) != tlog.HashSize {
			return 0, errs.E(errs.Internal, "witness: state holds a bad root")
		}
		proof := make(tlog.TreeProof, 0, len(job.Proof))
		for _, p := range job.Proof {
			h, err := base64.StdEncoding.DecodeString(p)
			if err != nil || len(h) != tlog.HashSize {
				return 0, errs.E(errs.Invalid, "witness: proof hash %q", p)
			}
			proof = append(proof, tlog.Hash(h))
		}
		old := verify.Checkpoint{Size: st.Size, Hash: tlog.Hash(oldRoot)}
		if err := verify.Consistency(old, cp, proof); err != nil {
			w.o.Logger.Error("witness: refusing to cosign: the log's new checkpoint does not extend the one this witness cosigned",
				"cosigned_size", st.Size, "new_size", cp.Size, "err", err)
			return 0, errs.Wrap(errs.Invalid, ErrNotConsistent, "witness: %v", err)
		}
	}
	cosigned, err := note.Sign(&note.Note{Text: text}, w.signer)
	if err != nil {
		return 0, fmt.Errorf("witness: cosign: %w", err)
	}
	_, sigs, _ := strings.Cut(string(cosigned), "\n\n")
	if err := w.o.Log.Cosign(ctx, builder.Cosignature{Size: cp.Size, VerifierKey: w.vkey, Signature: sigs}); err != nil {
		return 0, fmt.Errorf("witness: hand over the cosignature of %d: %w", cp.Size, err)
	}
	st.Size, st.Root = cp.Size, base64.StdEncoding.EncodeToString(cp.Hash[:])
	if err := w.save(st); err != nil {
		return 0, err
	}
	return cp.Size, nil
}

// Run checks and cosigns every interval until ctx ends.
func (w *Witness) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if size, err := w.Once(ctx); err != nil && ctx.Err() == nil {
			if errs.Is(err, errs.NotFound) {
				w.o.Logger.Debug("witness: the log has no checkpoint yet")
			} else {
				w.o.Logger.Warn("witness: did not cosign", "err", err)
			}
		} else if size > 0 {
			w.o.Logger.Debug("witness: cosigned", "size", size)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
