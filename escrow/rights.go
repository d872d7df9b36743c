package escrow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Redistribution rights: every deposited file has a class (public,
// build-only, private; escrow/manifest's rights.go) given by the deposit's
// rules. Once a deposit is released, public files are published, build-only
// files reach builders only through a job that declares them, and private
// files stay with the vendor and admins. Who may read a file is decided in
// access.go (mayRead); which content may be public anywhere (downloads,
// the mirror, exports) is MayBePublic.

// checkRights validates a deposit's rules and grant text.
func checkRights(rules []manifest.RightsRule, grant string) ([]manifest.RightsRule, error) {
	if err := manifest.ValidateRights(rules); err != nil {
		return nil, err
	}
	if len(grant) > manifest.MaxGrantSize {
		return nil, errs.E(errs.TooLarge, "grant text of %d bytes: at most %d", len(grant), manifest.MaxGrantSize)
	}
	if rules == nil {
		rules = []manifest.RightsRule{}
	}
	return rules, nil
}

// applyRights gives every entry its class. The handover statement and the
// bridge image are public whatever the rules say: they exist to be
// published (docs/handover.md).
func applyRights(entries []manifest.Entry, rules []manifest.RightsRule) []manifest.Entry {
	out := manifest.ApplyRights(entries, rules)
	for i := range out {
		if out[i].Path == wire.HandoverFile || out[i].Path == wire.BridgeFile {
			out[i].Rights = manifest.Public
		}
	}
	return out
}

// receiptRights adds the deposit's rules, its count of files per class and
// the grant's digest to its receipt.
func receiptRights(r receipt.Receipt, d Deposit, entries []manifest.Entry) receipt.Receipt {
	r.Rights = make([]receipt.Rule, len(d.Rights))
	for i, rule := range d.Rights {
		r.Rights[i] = receipt.Rule{Pattern: rule.Pattern, Rights: string(rule.Rights)}
	}
	c := manifest.CountRights(entries)
	r.Classes = map[string]int{string(manifest.Public): c.Public, string(manifest.BuildOnly): c.BuildOnly, string(manifest.Private): c.Private}
	if d.Grant != "" {
		sum := sha256.Sum256([]byte(d.Grant))
		r.GrantSHA256 = hex.EncodeToString(sum[:])
	}
	return r
}

// MayBePublic reports whether content with this plaintext digest may be
// shown to anyone: it is a public file of a released deposit. Everything
// that publishes escrow content (downloads, the mirror, exports) asks this
// and nothing else; a build-only or private file answers false, as does
// content no released deposit holds.
func (s *Service) MayBePublic(ctx context.Context, d blob.Digest) (bool, error) {
	_, rights, ok, err := s.releasedClass(ctx, d)
	return ok && rights == manifest.Public, err
}

// BuildInput reports whether content with this plaintext digest may be a
// build input, its size and its class: a public or build-only file of a
// released deposit. A build-only input reaches only builders holding a job
// whose recipe declares it (builder/farmhttp).
func (s *Service) BuildInput(ctx context.Context, d blob.Digest) (size int64, rights manifest.Rights, ok bool, err error) {
	size, rights, ok, err = s.releasedClass(ctx, d)
	if err != nil || !ok || rights == manifest.Private {
		return 0, "", false, err
	}
	if err := s.usable(ctx, d); err != nil {
		return 0, "", false, err
	}
	return size, rights, true, nil
}

// releasedClass is the most open class any released deposit gives content
// with this digest (the same bytes deposited twice are as open as their
// most open copy), and its size.
func (s *Service) releasedClass(ctx context.Context, d blob.Digest) (int64, manifest.Rights, bool, error) {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return 0, "", false, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT DISTINCT f.rights, f.size FROM escrow_files f JOIN escrow_deposits d ON d.id = f.deposit
		WHERE f.sha256 = ? AND f.link = '' AND d.state = ?`), d.Hex(), Released)
	if err != nil {
		return 0, "", false, fmt.Errorf("escrow: rights of %s: %w", d, db.Classify(err))
	}
	defer rows.Close()
	best, size, found := manifest.Private, int64(0), false
	for rows.Next() {
		var r string
		var n int64
		if err := rows.Scan(&r, &n); err != nil {
			return 0, "", false, err
		}
		found, size = true, n
		if rank(manifest.Rights(r)) < rank(best) {
			best = manifest.Rights(r)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, "", false, db.Classify(err)
	}
	return size, best, found, nil
}

func rank(r manifest.Rights) int {
	switch r {
	case manifest.Public:
		return 0
	case manifest.BuildOnly:
		return 1
	}
	return 2
}

// Grant is a vendor's grant for content it deposited as build-only, as a
// build page quotes it.
type Grant struct {
	Deposit string
	Product string
	Org     string
	Text    string
}

// BuildOnlyGrants lists the grants of the released deposits that hold
// content with this digest as build-only (oldest first): what a build that
// used it may quote. It says nothing of sealed deposits.
func (s *Service) BuildOnlyGrants(ctx context.Context, d blob.Digest) ([]Grant, error) {
	if _, err := blob.ParseDigest(string(d)); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT DISTINCT d.id, d.product, d.org, d.grant_text, d.released_at FROM escrow_files f JOIN escrow_deposits d ON d.id = f.deposit
		WHERE f.sha256 = ? AND f.rights = ? AND d.state = ? ORDER BY d.released_at, d.id`), d.Hex(), string(manifest.BuildOnly), Released)
	if err != nil {
		return nil, fmt.Errorf("escrow: grants of %s: %w", d, db.Classify(err))
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var g Grant
		var at int64
		if err := rows.Scan(&g.Deposit, &g.Product, &g.Org, &g.Text, &at); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, db.Classify(rows.Err())
}
