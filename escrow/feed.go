package escrow

import (
	"context"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/internal/atom"
	"github.com/afterlife-oss/afterlife/internal/db"
)

// ReleasesFeed renders the Atom feed of the 50 latest releases.
func (s *Service) ReleasesFeed(ctx context.Context) ([]byte, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT `+depositCols+` FROM escrow_deposits WHERE state = ? ORDER BY released_at DESC, id DESC LIMIT 50`), Released)
	if err != nil {
		return nil, fmt.Errorf("escrow: feed: %w", db.Classify(err))
	}
	defer rows.Close()
	var ds []Deposit
	for rows.Next() {
		d, err := scanDeposit(rows)
		if err != nil {
			return nil, fmt.Errorf("escrow: feed: %w", err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("escrow: feed: %w", db.Classify(err))
	}
	updated := time.Unix(0, 0).UTC()
	if len(ds) > 0 {
		updated = ds[0].ReleasedAt
	}
	f := atom.Feed{
		ID:      "tag:afterlife,2026:escrow/releases",
		Title:   "afterlife: released escrow deposits",
		Updated: updated.Format(time.RFC3339),
		Links:   []atom.Link{{Rel: "self", Href: s.baseURL + "/feeds/releases.atom", Type: "application/atom+xml"}},
		Author:  atom.Person{Name: "afterlife escrow"},
	}
	for _, d := range ds {
		f.Entries = append(f.Entries, atom.Entry{
			ID:      "tag:afterlife,2026:escrow/deposit/" + d.ID,
			Title:   fmt.Sprintf("%s: sunset package released", d.Product),
			Updated: d.ReleasedAt.Format(time.RFC3339),
			Links:   []atom.Link{{Rel: "alternate", Href: s.baseURL + "/v1/deposits/" + d.ID, Type: "application/json"}},
			Summary: fmt.Sprintf("Deposit %s of %s by %s: %d files, %d bytes, manifest %s. Released %s (policy condition %q fired).",
				d.ID, d.Product, d.Org, d.Files, d.TotalSize, d.ManifestDigest, d.ReleasedAt.Format(time.RFC3339), d.Fired),
		})
	}
	out, err := atom.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("escrow: feed: %w", err)
	}
	return out, nil
}
