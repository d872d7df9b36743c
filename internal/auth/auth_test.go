package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/internal/auth"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/dbtest"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestTokens(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		now := time.Unix(1_800_000_000, 0)
		clock := func() time.Time { return now }
		s, err := auth.New(ctx, d, clock)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateOrg(ctx, "acme", "ACME", "vendor"); err != nil {
			t.Fatal(err)
		}

		t.Run("a secret authenticates and is stored only hashed", func(t *testing.T) {
			secret, tok, err := s.CreateToken(ctx, auth.TokenSpec{Name: "ci", Role: auth.Vendor, Org: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.Authenticate(ctx, secret)
			if err != nil || p.Role != auth.Vendor || p.Org != "acme" || p.TokenID != tok.ID {
				t.Fatalf("Authenticate = %+v, %v", p, err)
			}
			var n int
			d.QueryRowContext(ctx, d.Q(`SELECT COUNT(*) FROM tokens WHERE hash = ? OR name = ?`), secret, secret).Scan(&n)
			if n != 0 {
				t.Fatal("the secret is stored in clear")
			}
			toks, _ := s.Tokens(ctx, "acme")
			if len(toks) != 1 || toks[0].LastUsed.IsZero() {
				t.Fatalf("tokens %+v: want one with a last-used time", toks)
			}
		})

		t.Run("a revoked token stops working", func(t *testing.T) {
			secret, tok, _ := s.CreateToken(ctx, auth.TokenSpec{Name: "leaked", Role: auth.Maintainer})
			if _, err := s.Authenticate(ctx, secret); err != nil {
				t.Fatal(err)
			}
			if err := s.Revoke(ctx, tok.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Authenticate(ctx, secret); !errs.Is(err, errs.Unauthenticated) {
				t.Fatalf("revoked token: %v, want Unauthenticated", err)
			}
		})

		t.Run("an expired token stops working", func(t *testing.T) {
			secret, _, _ := s.CreateToken(ctx, auth.TokenSpec{Name: "short", Role: auth.Builder, TTL: time.Hour})
			if _, err := s.Authenticate(ctx, secret); err != nil {
				t.Fatal(err)
			}
			now = now.Add(2 * time.Hour)
			if _, err := s.Authenticate(ctx, secret); !errs.Is(err, errs.Unauthenticated) {
				t.Fatalf("expired token: %v, want Unauthenticated", err)
			}
		})

		for _, tc := range []struct {
			name string
			spec auth.TokenSpec
			kind errs.Kind
		}{
			{"an unknown role is refused", auth.TokenSpec{Name: "x", Role: "root"}, errs.Invalid},
			{"a vendor token needs an org", auth.TokenSpec{Name: "x", Role: auth.Vendor}, errs.Invalid},
			{"an unknown org is refused", auth.TokenSpec{Name: "x", Role: auth.Vendor, Org: "nope"}, errs.NotFound},
			{"a nameless token is refused", auth.TokenSpec{Role: auth.Admin}, errs.Invalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, _, err := s.CreateToken(ctx, tc.spec); !errs.Is(err, tc.kind) {
					t.Fatalf("got %v, want kind %v", err, tc.kind)
				}
			})
		}

		t.Run("garbage never authenticates", func(t *testing.T) {
			for _, secret := range []string{"", "afl_", "afl_nope", strings.Repeat("a", 500)} {
				if _, err := s.Authenticate(ctx, secret); !errs.Is(err, errs.Unauthenticated) {
					t.Fatalf("%q: %v", secret, err)
				}
			}
		})

		t.Run("org ids are slugs and unique", func(t *testing.T) {
			if err := s.CreateOrg(ctx, "Bad Org", "", "vendor"); !errs.Is(err, errs.Invalid) {
				t.Fatalf("bad id: %v", err)
			}
			if err := s.CreateOrg(ctx, "acme", "", "vendor"); !errs.Is(err, errs.Conflict) {
				t.Fatalf("duplicate: %v", err)
			}
		})
	})
}
