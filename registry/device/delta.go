package device

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Delta updates. For each new release the registry publishes deltas from
// the last releases of the same product and channel: the new image
// compressed with zstd using the old image as a raw dictionary, which is
// what `zstd --patch-from=old new` writes and `zstd -d --patch-from=old`
// reads. Each delta is a TUF target of its own, at DeltaTargetPath, whose
// signed fields (SignedDelta) record the source and result digests. A
// device uses a delta only when the image in its active slot has the
// source digest, checks the result against the full target's signed
// length and digest, and downloads the full image on any failure.
//
// Memory: applying a delta holds the source image (the dictionary) and
// the decoder's window, the power of two covering both images
// (DeltaWindow): about three times the image in all, measured by
// bench BenchmarkDeltaApplyMemory. Config.NoDeltas turns deltas off for
// devices without that much memory.

// MaxDeltaSource is the largest image a delta is made from or to: the
// zstd window must cover the source, and 512 MiB is the largest window
// the encoder and decoder support.
const MaxDeltaSource = 512 << 20

// SignedDelta is what the registry signs about a delta target.
type SignedDelta struct {
	SourceVersion string `json:"source_version"`
	SourceSHA256  string `json:"source_sha256"`
	ResultSHA256  string `json:"result_sha256"`
	ResultLength  int64  `json:"result_length"`
}

// DeltaTargetPath is the target path of the delta that turns the image of
// sourceVersion into the full target at fullTarget
// ("<product>/<version>/<file>.from-<sourceVersion>.zst").
func DeltaTargetPath(fullTarget, sourceVersion string) string {
	return fullTarget + ".from-" + sourceVersion + ".zst"
}

// DeltaWindow is the zstd window of a delta between images of these sizes:
// the smallest power of two covering both together, so that every part of
// the new image can refer back to any part of the source, at most
// MaxDeltaSource (the largest window zstd's Go encoder writes).
func DeltaWindow(sourceSize, resultSize int64) int {
	n := max(sourceSize+resultSize, zstd.MinWindowSize)
	w := int64(zstd.MinWindowSize)
	for w < n && w < MaxDeltaSource {
		w <<= 1
	}
	return int(w)
}

// EncodeDelta writes result compressed against source, in the format of
// `zstd --patch-from=source result`.
func EncodeDelta(w io.Writer, source, result []byte) error {
	if len(source) > MaxDeltaSource || len(result) > MaxDeltaSource {
		return errs.E(errs.TooLarge, "device: deltas are made between images of up to %d MiB", MaxDeltaSource>>20)
	}
	enc, err := zstd.NewWriter(w, zstd.WithEncoderDictRaw(0, source), zstd.WithWindowSize(DeltaWindow(int64(len(source)), int64(len(result)))),
		zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return fmt.Errorf("device: delta encoder: %w", err)
	}
	if _, err := enc.Write(result); err != nil {
		_ = enc.Close()
		return fmt.Errorf("device: encode delta: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("device: encode delta: %w", err)
	}
	return nil
}

// ApplyDelta writes the image that delta turns source into, reading at
// most limit bytes of output.
func ApplyDelta(w io.Writer, delta io.Reader, source []byte, limit int64) error {
	dec, err := zstd.NewReader(delta, zstd.WithDecoderDictRaw(0, source), zstd.WithDecoderMaxWindow(MaxDeltaSource),
		zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "device: delta")
	}
	defer dec.Close()
	n, err := io.Copy(w, io.LimitReader(dec, limit+1))
	if err != nil {
		return errs.Wrap(errs.Invalid, err, "device: apply delta")
	}
	if n > limit {
		return errs.E(errs.Invalid, "device: the delta yields more than %d bytes", limit)
	}
	return nil
}

// fromDelta builds the candidate's image from a delta against the image
// in the active slot, when the signed metadata lists one for it. It
// returns "" (and no error) when there is no usable delta; any error
// means the caller downloads the full image instead.
func (c *client) fromDelta(ctx context.Context, cand *candidate, want string) (string, error) {
	if c.cfg.NoDeltas {
		return "", nil
	}
	installed, err := installedRelease(c.cfg.InstallDir)
	if err != nil || installed == nil {
		return "", err
	}
	up, err := c.updater()
	if err != nil {
		return "", err
	}
	dinfo, err := up.GetTargetInfo(DeltaTargetPath(cand.info.Path, installed.Version))
	if err != nil {
		return "", nil // no delta from this version
	}
	dm, err := signedMeta(dinfo)
	if err != nil {
		return "", err
	}
	d := dm.Delta
	switch {
	case d == nil:
		return "", errs.E(errs.Invalid, "device: %s carries no signed delta fields", dinfo.Path)
	case d.ResultSHA256 != want || d.ResultLength != cand.info.Length || dm.ReleaseID != cand.meta.ReleaseID:
		return "", errs.E(errs.Invalid, "device: %s is signed as a delta to another image", dinfo.Path)
	case d.SourceVersion != installed.Version || cand.info.Length > MaxDeltaSource:
		return "", nil
	}
	slot, err := activeSlot(c.cfg.InstallDir)
	if err != nil {
		return "", err
	}
	srcPath := filepath.Join(c.cfg.InstallDir, slot, filepath.Base(installed.File))
	source, err := os.ReadFile(srcPath)
	if err != nil {
		return "", fmt.Errorf("device: read the installed image: %w", err)
	}
	if sum := sha256.Sum256(source); hex.EncodeToString(sum[:]) != d.SourceSHA256 {
		return "", nil // the slot does not hold the delta's source
	}
	dpart, err := c.download(ctx, dinfo, hex.EncodeToString(dinfo.Hashes["sha256"]))
	if err != nil {
		return "", err
	}
	defer os.Remove(dpart)
	df, err := os.Open(dpart)
	if err != nil {
		return "", err
	}
	defer df.Close()
	part := filepath.Join(c.cfg.StateDir, partDir, want+".delta-result")
	out, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	err = ApplyDelta(out, df, source, cand.info.Length)
	if serr := out.Sync(); err == nil {
		err = serr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = verifyFile(part, cand.info.Length, want)
	}
	if err != nil {
		_ = os.Remove(part)
		return "", err
	}
	c.log.Info("device: built the update from a delta", "delta", path.Base(dinfo.Path), "delta_bytes", dinfo.Length, "image_bytes", cand.info.Length)
	return part, nil
}
