package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/afterlife-oss/afterlife/internal/atom"
)

// FirmwareFeed is the Atom feed of the 50 newest firmware releases, of one
// product when product is not empty, for owners who follow a device:
// each entry says the version, the channel, how many independent builders
// agreed and the notes; a withdrawn release says so and why. base is the
// server's public URL, for links.
func (s *Service) FirmwareFeed(ctx context.Context, product, base string) ([]byte, error) {
	title, self, id := "afterlife: new firmware", "/feeds/firmware.atom", "tag:afterlife,2026:registry/firmware"
	if product != "" {
		p, err := s.o.Catalog.Get(ctx, product)
		if err != nil {
			return nil, err
		}
		title = fmt.Sprintf("afterlife: new firmware for %s %s", p.Vendor, p.Model)
		self = "/feeds/products/" + url.PathEscape(product) + "/firmware.atom"
		id += "/" + product
	}
	rels, err := s.List(ctx, product)
	if err != nil {
		return nil, err
	}
	if len(rels) > 50 {
		rels = rels[:50]
	}
	updated := time.Unix(0, 0)
	if len(rels) > 0 {
		updated = rels[0].PublishedAt
	}
	base = strings.TrimSuffix(base, "/")
	f := atom.Feed{
		ID: id, Title: title, Updated: atom.Time(updated),
		Links:  []atom.Link{{Rel: "self", Href: base + self, Type: "application/atom+xml"}},
		Author: atom.Person{Name: "afterlife registry"},
	}
	for _, r := range rels {
		e := atom.Entry{
			ID:      "tag:afterlife,2026:registry/release/" + r.ID,
			Title:   fmt.Sprintf("%s %s on the %s channel", r.Product, r.Version, r.Channel),
			Updated: atom.Time(r.PublishedAt),
			Links:   []atom.Link{{Rel: "alternate", Href: base + "/products/" + url.PathEscape(r.Product), Type: "text/html"}},
			Summary: fmt.Sprintf("Version %s of %s, published %s: %d of %d independent builders built exactly the same bytes.",
				r.Version, r.Product, r.PublishedAt.UTC().Format("2 January 2006"), r.Agreeing, r.Total),
		}
		if r.Notes != "" {
			e.Summary += " " + r.Notes
		}
		if r.Yanked {
			e.Title = fmt.Sprintf("%s %s withdrawn", r.Product, r.Version)
			e.Summary += " Withdrawn: " + r.YankReason
		}
		f.Entries = append(f.Entries, e)
	}
	out, err := atom.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("registry: feed: %w", err)
	}
	return out, nil
}

func (s *Service) httpFirmwareFeed(c *gin.Context) error {
	b, err := s.FirmwareFeed(c.Request.Context(), c.Param("id"), s.o.BaseURL)
	if err != nil {
		return err
	}
	c.Data(http.StatusOK, "application/atom+xml; charset=utf-8", b)
	return nil
}
