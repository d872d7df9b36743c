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
	"github.com/afterlife-oss/afterlife/internal/principal"
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
			secret, tok, err := s.CreateToken(ctx, auth.TokenSpec{Name: "ci", Role: principal.Vendor, Org: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.Authenticate(ctx, secret)
			if err != nil || p.Role != principal.Vendor || p.Org != "acme" || p.TokenID != tok.ID {
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
			secret, tok, _ := s.CreateToken(ctx, auth.TokenSpec{Name: "leaked", Role: principal.Maintainer})
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
			secret, _, _ := s.CreateToken(ctx, auth.TokenSpec{Name: "short", Role: principal.Builder, TTL: time.Hour})
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
			{"a vendor token needs an org", auth.TokenSpec{Name: "x", Role: principal.Vendor}, errs.Invalid},
			{"an unknown org is refused", auth.TokenSpec{Name: "x", Role: principal.Vendor, Org: "nope"}, errs.NotFound},
			{"a nameless token is refused", auth.TokenSpec{Role: principal.Admin}, errs.Invalid},
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

func TestBuilderTokensAreBoundToOperatorsByAnAdmin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, err := auth.New(ctx, d, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		for id, kind := range map[string]string{"alice-lab": "operator", "bob-lab": "operator", "acme": "vendor"} {
			if err := s.CreateOrg(ctx, id, "", kind); err != nil {
				t.Fatal(err)
			}
		}
		secret, bound, err := s.CreateToken(ctx, auth.TokenSpec{Name: "b1", Role: principal.Builder, Operator: "alice-lab"})
		if err != nil {
			t.Fatal(err)
		}
		_, legacy, err := s.CreateToken(ctx, auth.TokenSpec{Name: "old", Role: principal.Builder})
		if err != nil {
			t.Fatal(err)
		}
		_, maint, _ := s.CreateToken(ctx, auth.TokenSpec{Name: "m", Role: principal.Maintainer})

		t.Run("a token created with an operator is bound to it", func(t *testing.T) {
			p, err := s.Authenticate(ctx, secret)
			if err != nil || p.Operator != "alice-lab" {
				t.Fatalf("principal %+v, %v", p, err)
			}
			if op, err := s.OperatorOf(ctx, bound.ID); err != nil || op != "alice-lab" {
				t.Fatalf("OperatorOf = %q, %v", op, err)
			}
		})
		t.Run("a token created without one stays unbound", func(t *testing.T) {
			if op, err := s.OperatorOf(ctx, legacy.ID); err != nil || op != "" {
				t.Fatalf("OperatorOf = %q, %v; want unbound", op, err)
			}
		})
		t.Run("an admin binds an unbound token and may move it", func(t *testing.T) {
			for _, org := range []string{"bob-lab", "alice-lab"} {
				tok, err := s.BindOperator(ctx, legacy.ID, org)
				if err != nil || tok.Operator != org {
					t.Fatalf("BindOperator(%s) = %+v, %v", org, tok, err)
				}
				if op, _ := s.OperatorOf(ctx, legacy.ID); op != org {
					t.Fatalf("OperatorOf = %q after binding to %s", op, org)
				}
			}
		})
		refusals := []struct {
			name string
			err  func() error
			want errs.Kind
		}{
			{"only builder tokens take an operator", func() error {
				_, _, err := s.CreateToken(ctx, auth.TokenSpec{Name: "x", Role: principal.Maintainer, Operator: "alice-lab"})
				return err
			}, errs.Invalid},
			{"an operator must be an org of kind operator", func() error {
				_, _, err := s.CreateToken(ctx, auth.TokenSpec{Name: "x", Role: principal.Builder, Operator: "acme"})
				return err
			}, errs.Invalid},
			{"an operator must exist", func() error { _, err := s.BindOperator(ctx, legacy.ID, "nobody"); return err }, errs.NotFound},
			{"a maintainer token cannot be bound", func() error { _, err := s.BindOperator(ctx, maint.ID, "alice-lab"); return err }, errs.Invalid},
			{"an unknown token cannot be bound", func() error { _, err := s.BindOperator(ctx, "tok_none", "alice-lab"); return err }, errs.NotFound},
		}
		for _, r := range refusals {
			t.Run(r.name, func(t *testing.T) {
				if err := r.err(); !errs.Is(err, r.want) {
					t.Fatalf("got %v, want %s", err, r.want)
				}
			})
		}
	})
}
