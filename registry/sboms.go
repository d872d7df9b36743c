package registry

import (
	"context"

	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/registry/sbom"
)

// KindSBOM is the output kind of an SBOM.
const KindSBOM = "sbom"

// readSBOM reads an SBOM output from the blob store with the format's own
// library (registry/sbom); an SBOM it cannot read is refused at publish.
func (s *Service) readSBOM(ctx context.Context, d blob.Digest) (*sbom.Summary, error) {
	rc, err := s.o.Blobs.Get(ctx, d, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sum, err := sbom.Parse(rc)
	if err != nil {
		return nil, err
	}
	return &sum, nil
}
