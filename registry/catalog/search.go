package catalog

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Match is one product a search found, with its vendor's display name.
type Match struct {
	Product
	VendorName string `json:"vendor_name"` // the vendor org's display name; its id when it has none
}

// Found is what a search found: the best matches, at most the limit asked
// for, and how many products match in all.
type Found struct {
	Total    int     `json:"total"`
	Products []Match `json:"products"`
}

const (
	maxQueryLen   = 200
	maxQueryWords = 8
	// similar is how much of a word's trigrams a product's document must
	// share for a misspelt word to match (pg_trgm's default
	// word_similarity_threshold, used on both databases).
	similar = 0.6
)

// Search finds the products matching q: every word of q (vendor display
// name, vendor org, model, product id or device id, in any order) is part
// of the product's search document. When no product has them all, a word
// may be misspelt: it then matches a word of the document that shares most
// of its trigrams (a letter wrong, missing or added in a longer word).
// Exact matches come shortest document first, near ones most similar
// first. An empty q lists products by id.
//
// The index is the database's own: FTS5 with its trigram tokenizer on
// SQLite, pg_trgm on PostgreSQL (migrations 00008), kept in step by
// triggers on products and vendor_names.
func (c *Catalog) Search(ctx context.Context, q string, limit int) (Found, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	q = strings.ToLower(strings.TrimSpace(q))
	if len(q) > maxQueryLen {
		return Found{}, errs.E(errs.Invalid, "search text longer than %d bytes", maxQueryLen)
	}
	words := queryWords(q)
	if len(words) == 0 {
		ps, err := c.List(ctx, Filter{Limit: limit})
		if err != nil {
			return Found{}, err
		}
		n, err := c.Count(ctx)
		if err != nil {
			return Found{}, err
		}
		return c.matches(ctx, ps, n)
	}
	ids, total, err := c.searchExact(ctx, words, limit)
	if err == nil && total == 0 {
		ids, total, err = c.searchNear(ctx, words, limit)
	}
	if err != nil {
		return Found{}, fmt.Errorf("catalog: search %q: %w", q, db.Classify(err))
	}
	ps, err := c.byIDs(ctx, ids)
	if err != nil {
		return Found{}, err
	}
	return c.matches(ctx, ps, total)
}

// queryWords splits q at spaces, keeping each word once and at most
// maxQueryWords of them. A word keeps its punctuation: device ids
// (usb:1d6b:0104, dt:acme,cam200) are words.
func queryWords(q string) []string {
	var out []string
	for _, w := range strings.Fields(q) {
		if !slices.Contains(out, w) && len(out) < maxQueryWords {
			out = append(out, w)
		}
	}
	return out
}

// long reports whether w has the three characters a trigram index needs.
func long(w string) bool { return utf8.RuneCountInString(w) >= 3 }

func likePattern(w string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(w) + "%"
}

// ftsPhrase quotes w as an FTS5 string: with the trigram tokenizer it
// matches w anywhere in the document.
func ftsPhrase(w string) string { return `"` + strings.ReplaceAll(w, `"`, `""`) + `"` }

// searchExact finds the documents containing every word.
func (c *Catalog) searchExact(ctx context.Context, words []string, limit int) ([]string, int, error) {
	var where []string
	var args []any
	var phrases []string
	for _, w := range words {
		if c.db.Dialect == db.SQLite && long(w) {
			phrases = append(phrases, ftsPhrase(w))
			continue
		}
		// Short words on SQLite, every word on PostgreSQL, where pg_trgm's
		// index answers LIKE itself.
		where = append(where, `s.doc LIKE ? ESCAPE '\'`)
		args = append(args, likePattern(w))
	}
	from := `product_search s`
	if len(phrases) > 0 {
		from = `product_search_fts f JOIN product_search s ON s.docid = f.rowid`
		where = append([]string{`product_search_fts MATCH ?`}, where...)
		args = append([]any{strings.Join(phrases, " AND ")}, args...)
	}
	cond := strings.Join(where, ` AND `)
	var total int
	if err := c.db.QueryRowContext(ctx, c.db.Q(`SELECT COUNT(*) FROM `+from+` WHERE `+cond), args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	if total == 0 {
		return nil, 0, nil
	}
	ids, err := c.column(ctx, `SELECT s.product FROM `+from+` WHERE `+cond+fmt.Sprintf(` ORDER BY LENGTH(s.doc), s.product LIMIT %d`, limit), args...)
	return ids, total, err
}

// searchNear finds the documents in which every word of three characters
// or more matches a word at least similar, and every shorter word exactly.
// On PostgreSQL pg_trgm's <% does both the finding and the measuring; on
// SQLite FTS5 finds the documents sharing a trigram with each word and
// wordSimilarity measures them.
func (c *Catalog) searchNear(ctx context.Context, words []string, limit int) ([]string, int, error) {
	var fuzzy, short []string
	for _, w := range words {
		if long(w) {
			fuzzy = append(fuzzy, w)
		} else {
			short = append(short, w)
		}
	}
	if len(fuzzy) == 0 {
		return nil, 0, nil // the exact search said it all
	}
	if c.db.Dialect == db.Postgres {
		return c.searchNearPostgres(ctx, fuzzy, short, limit)
	}
	var groups []string
	for _, w := range fuzzy {
		var or []string
		for _, t := range trigrams(w) {
			or = append(or, ftsPhrase(t))
		}
		groups = append(groups, "("+strings.Join(or, " OR ")+")")
	}
	cond, args := `product_search_fts MATCH ?`, []any{strings.Join(groups, " AND ")}
	for _, w := range short {
		cond += ` AND s.doc LIKE ? ESCAPE '\'`
		args = append(args, likePattern(w))
	}
	rows, err := c.db.QueryContext(ctx, `SELECT s.product, s.doc FROM product_search_fts f JOIN product_search s ON s.docid = f.rowid WHERE `+cond, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	type scored struct {
		id    string
		score float64
	}
	var found []scored
	for rows.Next() {
		var id, doc string
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, 0, err
		}
		doc = strings.ToLower(doc)
		sum := 0.0
		for _, w := range fuzzy {
			s := wordSimilarity(w, doc)
			if s < similar {
				sum = -1
				break
			}
			sum += s
		}
		if sum >= 0 {
			found = append(found, scored{id, sum})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	slices.SortFunc(found, func(a, b scored) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	ids := make([]string, 0, min(limit, len(found)))
	for _, f := range found[:min(limit, len(found))] {
		ids = append(ids, f.id)
	}
	return ids, len(found), nil
}

func (c *Catalog) searchNearPostgres(ctx context.Context, fuzzy, short []string, limit int) ([]string, int, error) {
	var where, score []string
	var args, scoreArgs []any
	for _, w := range fuzzy {
		where = append(where, `? <% s.doc`)
		args = append(args, w)
		score = append(score, `word_similarity(?, s.doc)`)
		scoreArgs = append(scoreArgs, w)
	}
	for _, w := range short {
		where = append(where, `s.doc LIKE ? ESCAPE '\'`)
		args = append(args, likePattern(w))
	}
	cond := strings.Join(where, ` AND `)
	var total int
	if err := c.db.QueryRowContext(ctx, c.db.Q(`SELECT COUNT(*) FROM product_search s WHERE `+cond), args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	if total == 0 {
		return nil, 0, nil
	}
	ids, err := c.column(ctx, `SELECT s.product FROM product_search s WHERE `+cond+
		` ORDER BY `+strings.Join(score, ` + `)+fmt.Sprintf(` DESC, s.product LIMIT %d`, limit), append(args, scoreArgs...)...)
	return ids, total, err
}

func (c *Catalog) column(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, c.db.Q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// byIDs reads the products ids name, in that order.
func (c *Catalog) byIDs(ctx context.Context, ids []string) ([]Product, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	ps, err := c.query(ctx, `SELECT `+cols+` FROM products WHERE id IN (?`+strings.Repeat(`, ?`, len(ids)-1)+`)`, len(ids), args...)
	if err != nil {
		return nil, err
	}
	at := make(map[string]int, len(ids))
	for i, id := range ids {
		at[id] = i
	}
	slices.SortFunc(ps, func(a, b Product) int { return at[a.ID] - at[b.ID] })
	return ps, nil
}

// matches adds the vendors' display names to ps.
func (c *Catalog) matches(ctx context.Context, ps []Product, total int) (Found, error) {
	out := Found{Total: total, Products: make([]Match, 0, len(ps))}
	var orgs []any
	for _, p := range ps {
		if !slices.Contains(orgs, any(p.Vendor)) {
			orgs = append(orgs, p.Vendor)
		}
	}
	names := map[string]string{}
	if len(orgs) > 0 {
		rows, err := c.db.QueryContext(ctx, c.db.Q(`SELECT org, name FROM vendor_names WHERE org IN (?`+strings.Repeat(`, ?`, len(orgs)-1)+`)`), orgs...)
		if err != nil {
			return Found{}, fmt.Errorf("catalog: vendor names: %w", db.Classify(err))
		}
		defer rows.Close()
		for rows.Next() {
			var org, name string
			if err := rows.Scan(&org, &name); err != nil {
				return Found{}, err
			}
			names[org] = name
		}
		if err := rows.Err(); err != nil {
			return Found{}, db.Classify(err)
		}
	}
	for _, p := range ps {
		name := names[p.Vendor]
		if name == "" {
			name = p.Vendor
		}
		out.Products = append(out.Products, Match{Product: p, VendorName: name})
	}
	return out, nil
}

// SetVendorName records org's display name, which search then matches in
// every product of org. The organisations' owner calls it when an org is
// created or renamed, and at every start for all of them, so a name
// changed while this was not listening is caught up.
func (c *Catalog) SetVendorName(ctx context.Context, org, name string) error {
	err := c.db.Tx(ctx, func(tx *sql.Tx) error {
		var old string
		err := tx.QueryRowContext(ctx, c.db.Q(`SELECT name FROM vendor_names WHERE org = ?`), org).Scan(&old)
		if err == nil && old == name {
			return nil // unchanged: no products to re-index
		}
		if err != nil && err != sql.ErrNoRows {
			return err
		}
		_, err = tx.ExecContext(ctx, c.db.Q(`INSERT INTO vendor_names (org, name) VALUES (?, ?)
			ON CONFLICT (org) DO UPDATE SET name = excluded.name`), org, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: vendor name of %s: %w", org, err)
	}
	return nil
}

// trigrams are the distinct three-character substrings of w, as FTS5's
// trigram tokenizer indexes them.
func trigrams(w string) []string {
	r := []rune(w)
	var out []string
	for i := 0; i+3 <= len(r); i++ {
		if t := string(r[i : i+3]); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// paddedTrigrams are a word's trigrams the way pg_trgm counts them, in
// order: the word with two spaces before and one after.
func paddedTrigrams(w string) []string {
	r := append(append([]rune("  "), []rune(w)...), ' ')
	out := make([]string, 0, len(r))
	for i := 0; i+3 <= len(r); i++ {
		out = append(out, string(r[i:i+3]))
	}
	return out
}

// wordSimilarity is pg_trgm's word_similarity(w, doc) for the SQLite side:
// the best, over the runs of consecutive trigrams of doc's words, of the
// trigrams w and the run share divided by those either has. Words are runs
// of letters and digits, as pg_trgm splits them; a query word of several
// (a device id) scores the mean of its parts.
func wordSimilarity(w, doc string) float64 {
	parts := splitWords(w)
	if len(parts) == 0 {
		return 0
	}
	docWords := splitWords(doc)
	sum := 0.0
	for _, part := range parts {
		qt := slices.Compact(slices.Sorted(slices.Values(paddedTrigrams(part))))
		best := 0.0
		for _, dw := range docWords {
			best = max(best, runSimilarity(qt, paddedTrigrams(dw)))
		}
		sum += best
	}
	return sum / float64(len(parts))
}

// runSimilarity is the best share of trigrams between the sorted set qt
// and a run of consecutive trigrams of dt. A run worth measuring starts
// and ends on a shared trigram; any other end only adds to the divisor.
func runSimilarity(qt, dt []string) float64 {
	best := 0.0
	seen := make([]string, 0, len(dt))
	for i := range dt {
		if _, ok := slices.BinarySearch(qt, dt[i]); !ok {
			continue
		}
		seen, shared := seen[:0], 0
		for j := i; j < len(dt); j++ {
			if slices.Contains(seen, dt[j]) {
				continue
			}
			seen = append(seen, dt[j])
			if _, ok := slices.BinarySearch(qt, dt[j]); ok {
				shared++
				best = max(best, float64(shared)/float64(len(qt)+len(seen)-shared))
			}
		}
	}
	return best
}

func splitWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}
