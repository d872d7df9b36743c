package escrow

import (
	"context"

	"github.com/afterlife-oss/afterlife/internal/principal"
)

// PublicSummary is where a product's escrow stands as anyone may know it.
type PublicSummary struct {
	Released int       // deposits released
	Deposits []Deposit // those deposits, newest first (without manifests)
}

// ProductSummary summarises product's deposits as an anonymous reader sees
// them: a sealed deposit's existence is not public, so only released
// deposits are counted and listed.
func (s *Service) ProductSummary(ctx context.Context, product string) (PublicSummary, error) {
	ds, err := s.List(ctx, principal.Principal{}, ListFilter{Product: product, State: Released})
	if err != nil {
		return PublicSummary{}, err
	}
	return PublicSummary{Released: len(ds), Deposits: ds}, nil
}
