package escrow

import (
	"context"
	"encoding/xml"
	"fmt"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
)

// Atom types: just what a releases feed needs (RFC 4287).
type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Links   []atomLink  `xml:"link"`
	Author  atomPerson  `xml:"author"`
	Entries []atomEntry `xml:"entry"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Href string `xml:"href,attr"`
	Type string `xml:"type,attr,omitempty"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomEntry struct {
	ID      string     `xml:"id"`
	Title   string     `xml:"title"`
	Updated string     `xml:"updated"`
	Links   []atomLink `xml:"link"`
	Summary string     `xml:"summary"`
}

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
	f := atomFeed{
		ID:      "tag:afterlife,2026:escrow/releases",
		Title:   "afterlife: released escrow deposits",
		Updated: updated.Format(time.RFC3339),
		Links:   []atomLink{{Rel: "self", Href: s.baseURL + "/feeds/releases.atom", Type: "application/atom+xml"}},
		Author:  atomPerson{Name: "afterlife escrow"},
	}
	for _, d := range ds {
		f.Entries = append(f.Entries, atomEntry{
			ID:      "tag:afterlife,2026:escrow/deposit/" + d.ID,
			Title:   fmt.Sprintf("%s: sunset package released", d.Product),
			Updated: d.ReleasedAt.Format(time.RFC3339),
			Links:   []atomLink{{Rel: "alternate", Href: s.baseURL + "/v1/deposits/" + d.ID, Type: "application/json"}},
			Summary: fmt.Sprintf("Deposit %s of %s by %s: %d files, %d bytes, manifest %s. Released %s (policy condition %q fired).",
				d.ID, d.Product, d.Org, d.Files, d.TotalSize, d.ManifestDigest, d.ReleasedAt.Format(time.RFC3339), d.Fired),
		})
	}
	out, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("escrow: feed: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}
