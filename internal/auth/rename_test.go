package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// TestOrgNamesAreToldWhenMadeAndChanged renames an organisation and checks
// that whoever listens (the catalog's search index, in serve) hears every
// name an org gets, and that a failed telling is reported, not lost.
func TestOrgNamesAreToldWhenMadeAndChanged(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, err := auth.New(ctx, d, nil)
		if err != nil {
			t.Fatal(err)
		}
		heard := map[string]string{}
		var fail error
		s.OnOrgNamed(func(_ context.Context, org, name string) error {
			if fail != nil {
				return fail
			}
			heard[org] = name
			return nil
		})
		t.Run("a new org's name is told, its id when it has none", func(t *testing.T) {
			if err := s.CreateOrg(ctx, "lumatek", "Lumatek", "vendor"); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateOrg(ctx, "plain", "", "vendor"); err != nil {
				t.Fatal(err)
			}
			if heard["lumatek"] != "Lumatek" || heard["plain"] != "plain" {
				t.Fatalf("heard %v", heard)
			}
		})
		t.Run("a rename changes the name, keeps the id and is told", func(t *testing.T) {
			o, err := s.RenameOrg(ctx, "lumatek", "  Lumatek Home ")
			if err != nil || o.ID != "lumatek" || o.Name != "Lumatek Home" || o.Kind != "vendor" {
				t.Fatalf("RenameOrg = %+v, %v", o, err)
			}
			if heard["lumatek"] != "Lumatek Home" {
				t.Fatalf("heard %v", heard)
			}
		})
		t.Run("renaming an unknown org or to nothing is refused", func(t *testing.T) {
			if _, err := s.RenameOrg(ctx, "nobody", "X"); !errs.Is(err, errs.NotFound) {
				t.Fatalf("unknown org: %v", err)
			}
			if _, err := s.RenameOrg(ctx, "lumatek", " "); !errs.Is(err, errs.Invalid) {
				t.Fatalf("empty name: %v", err)
			}
			if _, err := s.RenameOrg(ctx, "lumatek", strings.Repeat("x", 201)); !errs.Is(err, errs.Invalid) {
				t.Fatalf("long name: %v", err)
			}
		})
		t.Run("a listener's failure is reported with what to do", func(t *testing.T) {
			fail = errors.New("catalog down")
			_, err := s.RenameOrg(ctx, "lumatek", "Lumatek Lighting")
			if err == nil || !strings.Contains(err.Error(), "run the same command again") {
				t.Fatalf("err = %v", err)
			}
			fail = nil
			if _, err := s.RenameOrg(ctx, "lumatek", "Lumatek Lighting"); err != nil || heard["lumatek"] != "Lumatek Lighting" {
				t.Fatalf("again: %v, heard %v", err, heard)
			}
		})
	})
}
