package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"slices"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/registry/device"
)

// deltaSources is how many earlier releases of the same product and
// channel a new release gets deltas from.
const deltaSources = 3

// deltas makes the delta artifacts of a release about to be published:
// for each of the newest deltaSources earlier releases of its product and
// channel (not yanked), the new firmware compressed against the old one
// with zstd's raw dictionary (`zstd --patch-from`, device.EncodeDelta),
// stored in the blob store and listed as a target of its own whose signed
// fields name the source and result digests. A delta that saves nothing,
// an image above device.MaxDeltaSource or any failure is left out and
// logged: devices then download the full image, as they always can.
func (s *Service) deltas(ctx context.Context, rel Release) []Artifact {
	full := rel.Offered()
	if full.Kind != "firmware" || full.Size > device.MaxDeltaSource {
		return nil
	}
	rels, err := s.List(ctx, rel.Product)
	if err != nil {
		s.log.Warn("registry: no deltas for a release: cannot list earlier releases", "release", rel.ID, "err", err)
		return nil
	}
	var sources []Release
	for _, r := range rels {
		if r.Channel == rel.Channel && !r.Yanked && !r.PulledBack && CompareVersions(r.Version, rel.Version) < 0 {
			sources = append(sources, r)
		}
	}
	slices.SortFunc(sources, func(a, b Release) int { return CompareVersions(b.Version, a.Version) })
	if len(sources) > deltaSources {
		sources = sources[:deltaSources]
	}
	if len(sources) == 0 {
		return nil
	}
	result, err := s.readBlob(ctx, blobDigest(full))
	if err != nil {
		s.log.Warn("registry: no deltas for a release: cannot read its firmware", "release", rel.ID, "err", err)
		return nil
	}
	var out []Artifact
	for _, src := range sources {
		a, err := s.delta(ctx, rel, full, result, src)
		if err != nil {
			s.log.Warn("registry: no delta from an earlier release", "release", rel.ID, "from", src.Version, "err", err)
			continue
		}
		if a != nil {
			out = append(out, *a)
		}
	}
	return out
}

func (s *Service) delta(ctx context.Context, rel Release, full Artifact, result []byte, src Release) (*Artifact, error) {
	old := src.Offered()
	if old.Kind != "firmware" || old.Size > device.MaxDeltaSource {
		return nil, nil
	}
	source, err := s.readBlob(ctx, blobDigest(old))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := device.EncodeDelta(&buf, source, result); err != nil {
		return nil, err
	}
	if int64(buf.Len()) >= full.Size {
		return nil, nil // saves nothing
	}
	info, err := s.o.Blobs.Put(ctx, &buf, "")
	if err != nil {
		return nil, fmt.Errorf("registry: store delta: %w", err)
	}
	target := device.DeltaTargetPath(full.Target, src.Version)
	return &Artifact{
		Name: path.Base(target), Kind: "delta", Digest: string(info.Digest), Size: info.Size, Target: target,
		Delta: &device.SignedDelta{SourceVersion: src.Version, SourceSHA256: old.sha256Hex(), ResultSHA256: full.sha256Hex(), ResultLength: full.Size},
	}, nil
}

// readBlob reads a whole blob, verifying its digest.
func (s *Service) readBlob(ctx context.Context, d blob.Digest) ([]byte, error) {
	rc, err := blob.ReadVerified(ctx, s.o.Blobs, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, device.MaxDeltaSource+1))
}
