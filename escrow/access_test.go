package escrow

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// TestOnlyTheVendorAdminsAndNamedTrusteesSeeASealedDeposit is the escrow's
// side of "sealed is sealed": the rule in canSee, isOwner and
// isQuorumTrustee, called the way the API calls it, on both backends.
// Tokens of the vendor's org that are not vendor tokens were once let in.
func TestOnlyTheVendorAdminsAndNamedTrusteesSeeASealedDeposit(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sealed, _ := e.deposit(t, acme, "demo-cam", "quorum=2/2:alice,bob", demoFiles)
		in := func(role principal.Role, name string) principal.Principal {
			return principal.Principal{TokenID: "t-" + name, Name: name, Role: role, Org: "acme"}
		}
		alice := principal.Principal{TokenID: "t-alice", Name: "alice", Role: principal.Trustee, Org: "trustees"}
		for _, tc := range []struct {
			name     string
			p        principal.Principal
			full     bool // manifest, files, events, listing
			approval bool // the approval state alone
		}{
			{"the depositing vendor sees it all", acme, true, false},
			{"an admin sees it all", admin, true, false},
			{"a maintainer of the vendor's org sees nothing", in(principal.Maintainer, "maint"), false, false},
			{"a builder of the vendor's org sees nothing", in(principal.Builder, "b"), false, false},
			{"a trustee of the vendor's org that the quorum does not name sees nothing", in(principal.Trustee, "carol"), false, false},
			{"a named trustee sees the approval state only", alice, false, true},
			{"another vendor sees nothing", globex, false, false},
			{"an anonymous caller sees nothing", nobody, false, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d, err := e.svc.Get(ctx, tc.p, sealed.ID)
				switch {
				case tc.full:
					if err != nil || len(d.Manifest) == 0 || d.Approvals == nil {
						t.Fatalf("Get = %+v, %v; want the manifest and approval state", d, err)
					}
				case tc.approval:
					if err != nil || d.Manifest != nil || d.Files != 0 || d.ManifestDigest != sealed.ManifestDigest || d.Approvals == nil {
						t.Fatalf("Get = %+v, %v; want the approval state without a manifest", d, err)
					}
				default:
					wantKind(t, err, errs.NotFound)
				}
				f, err := e.svc.Open(ctx, tc.p, sealed.ID, "keys/unlock.pem")
				if tc.full {
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					b, _ := io.ReadAll(f)
					f.Close()
					if string(b) != demoFiles["keys/unlock.pem"] {
						t.Fatalf("Open read %q", b)
					}
				} else {
					wantKind(t, err, errs.NotFound)
				}
				_, err = e.svc.Events(ctx, tc.p, sealed.ID)
				if tc.full != (err == nil) {
					t.Fatalf("Events: %v", err)
				}
				if !tc.full {
					wantKind(t, err, errs.NotFound)
					_, err = e.svc.Receipt(ctx, tc.p, sealed.ID)
					wantKind(t, err, errs.NotFound)
				}
				ds, err := e.svc.List(ctx, tc.p, ListFilter{})
				if err != nil {
					t.Fatal(err)
				}
				listed := slices.ContainsFunc(ds, func(d Deposit) bool { return d.ID == sealed.ID })
				if listed != tc.full {
					t.Fatalf("List shows the sealed deposit: %v, want %v", listed, tc.full)
				}
				if tc.p.Role == principal.Trustee && !tc.approval {
					_, err := e.svc.Approve(ctx, tc.p, sealed.ID, tc.p.Name, "AAAA")
					_, errNone := e.svc.Approve(ctx, tc.p, "dep_none", tc.p.Name, "AAAA")
					if !errs.Is(err, errs.NotFound) || errs.Message(err) != strings.Replace(errs.Message(errNone), "dep_none", sealed.ID, 1) {
						t.Fatalf("approving a sealed deposit that does not name the trustee says %q; for no deposit: %q", errs.Message(err), errs.Message(errNone))
					}
				}
				pending, err := e.svc.PendingApprovals(ctx, tc.p)
				if err != nil {
					t.Fatal(err)
				}
				waiting := slices.ContainsFunc(pending, func(d Deposit) bool { return d.ID == sealed.ID && d.Manifest == nil })
				if waiting != (tc.approval || tc.p.Role == principal.Admin) {
					t.Fatalf("PendingApprovals shows it: %v", waiting)
				}
			})
		}
	})
}
