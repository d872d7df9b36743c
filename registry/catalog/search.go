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
// for, and how many products match in all. A search counts at most
// maxCounted products: when more match, Total is maxCounted and
// TotalCapped says there are more (add a word to narrow it down).
type Found struct {
	Total       int     `json:"total"`
	TotalCapped bool    `json:"total_capped,omitempty"`
	Products    []Match `json:"products"`
}

const (
	maxQueryLen   = 200
	maxQueryWords = 8
	// maxCounted bounds the work of a query that matches much of the
	// catalog ("cam"): its matches are counted, and ordered, up to here.
	maxCounted = 1000
	// similar is how much of a word's trigrams a product's document must
	// share for a misspelt word to match (pg_trgm's default
	// word_similarity_threshold, used on both databases).
	similar = 0.6
)

// Search finds the products matching q: every word of q (vendor display
// name, vendor org, model, product id or device id, in any order) is part
// of the product's search document. When no product has them all, a word
// may be misspelt: it then matches a word of the document that shares most
// of its trigrams (a letter wrong, added or swapped in a longer word).
// Exact matches come shortest document first, near ones most similar
// first. A query that is one device id is looked up first. An empty q
// lists products by id.
//
// The index is the database's own: FTS5 with its trigram tokenizer on
// SQLite, pg_trgm on PostgreSQL (migrations 00009), kept in step by
// triggers on products and vendor_names.
func (c *Catalog) Search(ctx context.Context, q string, limit int) (Found, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	// Control characters (a NUL ends an FTS5 query) and broken UTF-8
	// separate words like spaces.
	q = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(q, " "))
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
		return c.matches(ctx, ps, ranked{total: n})
	}
	if len(words) == 1 {
		// A device id names one product; its own table answers at once
		// what the trigram index would find among every id of that scheme.
		if id, err := ParseDeviceID(words[0]); err == nil {
			ps, err := c.ByDeviceID(ctx, id)
			if err != nil {
				return Found{}, err
			}
			if len(ps) > 0 {
				return c.matches(ctx, ps, ranked{total: 1})
			}
		}
	}
	r, err := c.searchExact(ctx, words)
	if err == nil && r.total == 0 {
		r, err = c.searchNear(ctx, words)
	}
	if err != nil {
		return Found{}, fmt.Errorf("catalog: search %q: %w", q, db.Classify(err))
	}
	ps, err := c.byIDs(ctx, r.top(limit))
	if err != nil {
		return Found{}, err
	}
	return c.matches(ctx, ps, r)
}

// ranked is a search's matches, best first, counted up to maxCounted.
type ranked struct {
	ids    []string
	total  int
	capped bool
}

func (r ranked) top(limit int) []string { return r.ids[:min(limit, len(r.ids))] }

// scored is one match and its rank: lower is better.
type scored struct {
	id   string
	rank float64
}

// rank orders found best first and counts it.
func rank(found []scored) ranked {
	slices.SortFunc(found, func(a, b scored) int {
		if a.rank != b.rank {
			if a.rank < b.rank {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	r := ranked{total: len(found)}
	if r.total > maxCounted {
		r.total, r.capped, found = maxCounted, true, found[:maxCounted]
	}
	for _, f := range found {
		r.ids = append(r.ids, f.id)
	}
	return r
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

// searchExact finds the documents containing every word, at most
// maxCounted+1 of them (so it knows when there are more), shortest first.
func (c *Catalog) searchExact(ctx context.Context, words []string) (ranked, error) {
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
		// CROSS JOIN keeps the full-text index the outer loop.
		from = `product_search_fts f CROSS JOIN product_search s ON s.docid = f.rowid`
		where = append([]string{`product_search_fts MATCH ?`}, where...)
		args = append([]any{strings.Join(phrases, " AND ")}, args...)
	}
	rows, err := c.db.QueryContext(ctx, c.db.Q(`SELECT s.product, LENGTH(s.doc) FROM `+from+` WHERE `+strings.Join(where, ` AND `)+
		fmt.Sprintf(` LIMIT %d`, maxCounted+1)), args...)
	if err != nil {
		return ranked{}, err
	}
	defer rows.Close()
	var found []scored
	for rows.Next() {
		var f scored
		if err := rows.Scan(&f.id, &f.rank); err != nil {
			return ranked{}, err
		}
		found = append(found, f)
	}
	if err := rows.Err(); err != nil {
		return ranked{}, err
	}
	return rank(found), nil
}

// searchNear finds the documents in which every word of three characters
// or more matches a word at least similar, and every shorter word exactly,
// most similar first. On PostgreSQL pg_trgm's <% does both the finding and
// the measuring; on SQLite FTS5 finds the documents that share a piece of
// four characters with each word (a smaller share falls below similar)
// and wordSimilarity measures them.
func (c *Catalog) searchNear(ctx context.Context, words []string) (ranked, error) {
	var fuzzy, short []string
	for _, w := range words {
		if long(w) {
			fuzzy = append(fuzzy, w)
		} else {
			short = append(short, w)
		}
	}
	if len(fuzzy) == 0 {
		return ranked{}, nil // the exact search said it all
	}
	var q string
	var args []any
	if c.db.Dialect == db.Postgres {
		var where, score []string
		var scoreArgs []any
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
		q = `SELECT s.product, -(` + strings.Join(score, ` + `) + `) FROM product_search s WHERE ` + strings.Join(where, ` AND `)
		args = append(scoreArgs, args...)
	} else {
		var groups []string
		for _, w := range fuzzy {
			var or []string
			for _, piece := range pieces(w, 4) {
				or = append(or, ftsPhrase(piece))
			}
			groups = append(groups, "("+strings.Join(or, " OR ")+")")
		}
		q, args = `SELECT s.product, s.doc FROM product_search_fts f CROSS JOIN product_search s ON s.docid = f.rowid WHERE product_search_fts MATCH ?`, []any{strings.Join(groups, " AND ")}
		for _, w := range short {
			q += ` AND s.doc LIKE ? ESCAPE '\'`
			args = append(args, likePattern(w))
		}
	}
	rows, err := c.db.QueryContext(ctx, c.db.Q(q+fmt.Sprintf(` LIMIT %d`, maxCandidates)), args...)
	if err != nil {
		return ranked{}, err
	}
	defer rows.Close()
	measured := make([][][]string, len(fuzzy))
	for i, w := range fuzzy {
		measured[i] = queryTrigrams(w)
	}
	var found []scored
	for rows.Next() {
		if c.db.Dialect == db.Postgres {
			var f scored
			if err := rows.Scan(&f.id, &f.rank); err != nil {
				return ranked{}, err
			}
			found = append(found, f)
			continue
		}
		var id, doc string
		if err := rows.Scan(&id, &doc); err != nil {
			return ranked{}, err
		}
		dt := docTrigrams(strings.ToLower(doc))
		sum := 0.0
		for _, w := range measured {
			s := similarity(w, dt)
			if s < similar {
				sum = -1
				break
			}
			sum += s
		}
		if sum >= 0 {
			found = append(found, scored{id, -sum})
		}
	}
	if err := rows.Err(); err != nil {
		return ranked{}, err
	}
	return rank(found), nil
}

// maxCandidates bounds the documents a near search reads: the matches
// counted and a margin for SQLite's candidates that fall below similar.
const maxCandidates = 4 * maxCounted

// pieces are the distinct substrings of n characters of w, or w itself
// when it is shorter.
func pieces(w string, n int) []string {
	r := []rune(w)
	if len(r) <= n {
		return []string{w}
	}
	var out []string
	for i := 0; i+n <= len(r); i++ {
		if p := string(r[i : i+n]); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
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

// matches adds the vendors' display names to ps, r's best.
func (c *Catalog) matches(ctx context.Context, ps []Product, r ranked) (Found, error) {
	out := Found{Total: r.total, TotalCapped: r.capped, Products: make([]Match, 0, len(ps))}
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

// optimizeSearch merges SQLite's full-text index into one segment, which
// every search then reads once instead of once a segment (at 100k
// products: a third of the time). Each start does it; between starts FTS5
// merges as two segments of a size appear (migration 00009). PostgreSQL's
// index needs nothing of the kind.
func (c *Catalog) optimizeSearch(ctx context.Context) error {
	if c.db.Dialect != db.SQLite {
		return nil
	}
	if _, err := c.db.ExecContext(ctx, `INSERT INTO product_search_fts (product_search_fts) VALUES ('optimize')`); err != nil {
		return fmt.Errorf("catalog: merge the search index: %w", db.Classify(err))
	}
	return nil
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

// paddedTrigrams are a word's trigrams the way pg_trgm counts them, in
// order: the word with two spaces before and one after. They are slices
// of one string, so measuring many documents allocates little.
func paddedTrigrams(w string) []string {
	p := "  " + w + " "
	starts := make([]int, 0, len(p)+1)
	for i := range p {
		starts = append(starts, i)
	}
	starts = append(starts, len(p))
	out := make([]string, 0, len(starts))
	for i := 0; i+3 < len(starts); i++ {
		out = append(out, p[starts[i]:starts[i+3]])
	}
	return out
}

// wordSimilarity is pg_trgm's word_similarity(w, doc) for the SQLite side:
// the best, over the runs of consecutive trigrams of doc's words, of the
// trigrams w and the run share divided by those either has. Words are runs
// of letters and digits, as pg_trgm splits them; a query word of several
// (a device id) scores the mean of its parts.
func wordSimilarity(w, doc string) float64 {
	return similarity(queryTrigrams(w), docTrigrams(doc))
}

// queryTrigrams are the sorted, distinct trigrams of each part of query
// word w.
func queryTrigrams(w string) [][]string {
	var out [][]string
	for _, part := range splitWords(w) {
		out = append(out, slices.Compact(slices.Sorted(slices.Values(paddedTrigrams(part)))))
	}
	return out
}

// docTrigrams are the trigrams of each word of doc, in order.
func docTrigrams(doc string) [][]string {
	words := splitWords(doc)
	out := make([][]string, len(words))
	for i, dw := range words {
		out[i] = paddedTrigrams(dw)
	}
	return out
}

// similarity is wordSimilarity of a query word's parts' trigrams and a
// document's words' trigrams.
func similarity(parts, doc [][]string) float64 {
	if len(parts) == 0 {
		return 0
	}
	sum := 0.0
	for _, qt := range parts {
		best := 0.0
		for _, dt := range doc {
			best = max(best, runSimilarity(qt, dt))
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
