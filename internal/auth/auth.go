// Package auth owns organisations, roles and API tokens. Tokens are random,
// shown once, stored only as a hash, expire, can be revoked, and remember
// when they were last used. The package decides who a caller is; what a
// role may do on a route is declared where the route is (internal/httpapi),
// and org scope is checked by the part that owns the resource.
package auth

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/ids"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// Token is a stored token, without its secret.
type Token struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Role     principal.Role `json:"role"`
	Org      string         `json:"org,omitempty"`
	Operator string         `json:"operator,omitempty"` // builder tokens: the operator organisation an admin bound it to
	Created  time.Time      `json:"created"`
	Expires  time.Time      `json:"expires,omitzero"`
	Revoked  time.Time      `json:"revoked,omitzero"`
	LastUsed time.Time      `json:"last_used,omitzero"`
}

// TokenSpec says what token to create. TTL 0 means it does not expire.
type TokenSpec struct {
	Name string
	Role principal.Role
	Org  string
	// Operator binds a builder token to an operator organisation (an org
	// of kind "operator"); only builder tokens take one.
	Operator string
	TTL      time.Duration
}

// Org is an organisation: a vendor, a maintainers' group, a builder operator.
type Org struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
}

//go:embed migrations/*.sql
var migrations embed.FS

// Service stores orgs and tokens.
type Service struct {
	db  *db.DB
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cached // token hash → principal, briefly

	// named is told each org's display name when it is created or renamed
	// (OnOrgNamed).
	named func(ctx context.Context, org, name string) error
}

// OnOrgNamed sets fn to be told an organisation's display name after it
// is created or renamed, so whoever shows it from a copy of its own (the
// catalog's search index) follows.
func (s *Service) OnOrgNamed(fn func(ctx context.Context, org, name string) error) { s.named = fn }

func (s *Service) tellNamed(ctx context.Context, org, name string) error {
	if s.named == nil {
		return nil
	}
	if err := s.named(ctx, org, name); err != nil {
		return fmt.Errorf("auth: org %s is named %q, but telling the catalog failed (run the same command again): %w", org, name, err)
	}
	return nil
}

const maxOrgName = 200

type cached struct {
	p       principal.Principal
	expires time.Time // of the cache entry
	tokExp  time.Time // of the token
}

// cacheFor bounds how long a revocation may take to reach every replica.
const cacheFor = 5 * time.Second

// New migrates the auth tables and returns the service.
func New(ctx context.Context, d *db.DB, now func() time.Time) (*Service, error) {
	sub, _ := fs.Sub(migrations, "migrations")
	if err := d.Migrate(ctx, "auth", sub); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Service{db: d, now: now, cache: map[string]cached{}}, nil
}

var orgID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CreateOrg registers an organisation. id is a slug.
func (s *Service) CreateOrg(ctx context.Context, id, name, kind string) error {
	if !orgID.MatchString(id) {
		return errs.E(errs.Invalid, "org id %q: want lowercase letters, digits and dashes (max 63)", id)
	}
	if name == "" {
		name = id
	}
	if len(name) > maxOrgName {
		return errs.E(errs.Invalid, "org name longer than %d bytes", maxOrgName)
	}
	switch kind {
	case "vendor", "maintainers", "operator", "trustees", "admin":
	default:
		return errs.E(errs.Invalid, "org kind %q: want vendor, maintainers, operator, trustees or admin", kind)
	}
	_, err := s.db.ExecContext(ctx, s.db.Q(`INSERT INTO orgs (id, name, kind, created) VALUES (?, ?, ?, ?)`),
		id, name, kind, db.Millis(s.now()))
	if db.IsUniqueViolation(err) {
		return errs.E(errs.Conflict, "org %s already exists", id)
	}
	if err != nil {
		return fmt.Errorf("auth: create org %s: %w", id, db.Classify(err))
	}
	return s.tellNamed(ctx, id, name)
}

// RenameOrg changes an organisation's display name (its id stays).
func (s *Service) RenameOrg(ctx context.Context, id, name string) (Org, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxOrgName {
		return Org{}, errs.E(errs.Invalid, "org name: want 1 to %d bytes", maxOrgName)
	}
	res, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE orgs SET name = ? WHERE id = ?`), name, id)
	if err != nil {
		return Org{}, fmt.Errorf("auth: rename org %s: %w", id, db.Classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Org{}, errs.E(errs.NotFound, "org %s not found", id)
	}
	if err := s.tellNamed(ctx, id, name); err != nil {
		return Org{}, err
	}
	return s.Org(ctx, id)
}

// Org returns one organisation.
func (s *Service) Org(ctx context.Context, id string) (Org, error) {
	var o Org
	var created int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT id, name, kind, created FROM orgs WHERE id = ?`), id).
		Scan(&o.ID, &o.Name, &o.Kind, &created)
	if err != nil {
		return Org{}, db.NotFound(err, "org %s not found", id)
	}
	o.Created = db.FromMillis(created)
	return o, nil
}

// Orgs lists organisations.
func (s *Service) Orgs(ctx context.Context) ([]Org, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, kind, created FROM orgs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("auth: list orgs: %w", db.Classify(err))
	}
	defer rows.Close()
	var out []Org
	for rows.Next() {
		var o Org
		var created int64
		if err := rows.Scan(&o.ID, &o.Name, &o.Kind, &created); err != nil {
			return nil, err
		}
		o.Created = db.FromMillis(created)
		out = append(out, o)
	}
	return out, rows.Err()
}

// TokenPrefix starts every secret, so leaked tokens are easy to scan for.
const TokenPrefix = "afl_"

// CreateToken makes a token and returns its secret, which is not stored and
// cannot be shown again.
func (s *Service) CreateToken(ctx context.Context, spec TokenSpec) (string, Token, error) {
	if _, err := principal.ParseRole(string(spec.Role)); err != nil {
		return "", Token{}, err
	}
	if spec.Name == "" || len(spec.Name) > 100 {
		return "", Token{}, errs.E(errs.Invalid, "token name must be 1 to 100 characters")
	}
	if spec.Role == principal.Vendor && spec.Org == "" {
		return "", Token{}, errs.E(errs.Invalid, "a vendor token needs the vendor's org")
	}
	if spec.Org != "" {
		if _, err := s.Org(ctx, spec.Org); err != nil {
			return "", Token{}, err
		}
	}
	if spec.Operator != "" {
		if spec.Role != principal.Builder {
			return "", Token{}, errs.E(errs.Invalid, "only a builder token is bound to an operator")
		}
		if err := s.checkOperator(ctx, spec.Operator); err != nil {
			return "", Token{}, err
		}
	}
	secret := TokenPrefix + strings.ToLower(ids.Secret(32))
	now := s.now()
	t := Token{ID: ids.At("tok", now), Name: spec.Name, Role: spec.Role, Org: spec.Org, Operator: spec.Operator, Created: now.UTC().Truncate(time.Millisecond)}
	if spec.TTL > 0 {
		t.Expires = now.Add(spec.TTL).UTC().Truncate(time.Millisecond)
	}
	if err := s.insertToken(ctx, s.db, secret, t); err != nil {
		return "", Token{}, err
	}
	return secret, t, nil
}

// execer is a database or a transaction.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *Service) insertToken(ctx context.Context, x execer, secret string, t Token) error {
	_, err := x.ExecContext(ctx, s.db.Q(`INSERT INTO tokens (id, hash, name, role, org, operator, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		t.ID, hashSecret(secret), t.Name, string(t.Role), t.Org, t.Operator, db.Millis(t.Created), db.Millis(t.Expires))
	if err != nil {
		return fmt.Errorf("auth: create token: %w", db.Classify(err))
	}
	return nil
}

// BootstrapName names the bootstrap admin token.
const BootstrapName = "bootstrap-admin"

// Bootstrap makes the first admin token of a database, once per database:
// of any number of replicas starting on one database, exactly one gets
// created == true and the secret; the others get created == false and
// make nothing. ttl bounds the token's life (0: it never expires).
func (s *Service) Bootstrap(ctx context.Context, ttl time.Duration) (secret string, t Token, created bool, err error) {
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		secret = TokenPrefix + strings.ToLower(ids.Secret(32))
		now := s.now()
		t = Token{ID: ids.At("tok", now), Name: BootstrapName, Role: principal.Admin, Created: now.UTC().Truncate(time.Millisecond)}
		if ttl > 0 {
			t.Expires = now.Add(ttl).UTC().Truncate(time.Millisecond)
		}
		res, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_bootstrap (id, token, created) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING`),
			t.ID, db.Millis(t.Created))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if created = n == 1; !created {
			return nil
		}
		return s.insertToken(ctx, tx, secret, t)
	})
	if err != nil {
		return "", Token{}, false, fmt.Errorf("auth: bootstrap admin token: %w", db.Classify(err))
	}
	if !created {
		return "", Token{}, false, nil
	}
	return secret, t, true, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Authenticate resolves a secret to its principal. Unknown, expired and
// revoked tokens are Unauthenticated errors.
func (s *Service) Authenticate(ctx context.Context, secret string) (principal.Principal, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 200 {
		return principal.Principal{}, errs.E(errs.Unauthenticated, "invalid token")
	}
	h := hashSecret(secret)
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[h]
	s.mu.Unlock()
	if ok && now.Before(c.expires) && (c.tokExp.IsZero() || now.Before(c.tokExp)) {
		return c.p, nil
	}
	var p principal.Principal
	var role string
	var expires, revoked, lastUsed int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT id, name, role, org, operator, expires, revoked, last_used FROM tokens WHERE hash = ?`), h).
		Scan(&p.TokenID, &p.Name, &role, &p.Org, &p.Operator, &expires, &revoked, &lastUsed)
	if err == sql.ErrNoRows {
		return principal.Principal{}, errs.E(errs.Unauthenticated, "invalid token")
	}
	if err != nil {
		return principal.Principal{}, fmt.Errorf("auth: authenticate: %w", db.Classify(err))
	}
	p.Role = principal.Role(role)
	switch {
	case revoked != 0:
		return principal.Principal{}, errs.E(errs.Unauthenticated, "token %s was revoked", p.TokenID)
	case expires != 0 && now.UnixMilli() >= expires:
		return principal.Principal{}, errs.E(errs.Unauthenticated, "token %s expired", p.TokenID)
	}
	// last_used is written at most once a minute per token, so reads do not
	// turn into a write per request.
	if now.UnixMilli()-lastUsed > time.Minute.Milliseconds() {
		if _, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE tokens SET last_used = ? WHERE id = ?`), db.Millis(now), p.TokenID); err != nil {
			return principal.Principal{}, fmt.Errorf("auth: record token use: %w", db.Classify(err))
		}
	}
	s.mu.Lock()
	if len(s.cache) > 10000 {
		clear(s.cache)
	}
	s.cache[h] = cached{p: p, expires: now.Add(cacheFor), tokExp: db.FromMillis(expires)}
	s.mu.Unlock()
	return p, nil
}

// Tokens lists tokens, newest first; org "" lists all.
func (s *Service) Tokens(ctx context.Context, org string) ([]Token, error) {
	q := `SELECT id, name, role, org, operator, created, expires, revoked, last_used FROM tokens`
	var args []any
	if org != "" {
		q += ` WHERE org = ?`
		args = append(args, org)
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(q+` ORDER BY id DESC`), args...)
	if err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", db.Classify(err))
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var role string
		var created, expires, revoked, lastUsed int64
		if err := rows.Scan(&t.ID, &t.Name, &role, &t.Org, &t.Operator, &created, &expires, &revoked, &lastUsed); err != nil {
			return nil, err
		}
		t.Role = principal.Role(role)
		t.Created, t.Expires, t.Revoked, t.LastUsed = db.FromMillis(created), db.FromMillis(expires), db.FromMillis(revoked), db.FromMillis(lastUsed)
		out = append(out, t)
	}
	return out, rows.Err()
}

// Revoke revokes a token by id. Revoking twice is not an error.
func (s *Service) Revoke(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE tokens SET revoked = ? WHERE id = ? AND revoked = 0`), db.Millis(s.now()), id)
	if err != nil {
		return fmt.Errorf("auth: revoke %s: %w", id, db.Classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var x string
		if err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT id FROM tokens WHERE id = ?`), id).Scan(&x); err != nil {
			return db.NotFound(err, "token %s not found", id)
		}
	}
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
	return nil
}

// checkOperator accepts the id of an organisation of kind "operator".
func (s *Service) checkOperator(ctx context.Context, org string) error {
	o, err := s.Org(ctx, org)
	if err != nil {
		return err
	}
	if o.Kind != "operator" {
		return errs.E(errs.Invalid, "org %s is a %s org; a builder is bound to an org of kind operator", org, o.Kind)
	}
	return nil
}

// BindOperator binds the builder token id to the operator organisation
// org. Only an admin may call it (the route says so): a builder never names
// its own operator, so one party with two tokens cannot pose as two
// independent operators. Binding again moves the token to another operator.
func (s *Service) BindOperator(ctx context.Context, id, org string) (Token, error) {
	if err := s.checkOperator(ctx, org); err != nil {
		return Token{}, err
	}
	var role string
	var revoked int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT role, revoked FROM tokens WHERE id = ?`), id).Scan(&role, &revoked)
	if err != nil {
		return Token{}, db.NotFound(err, "token %s not found", id)
	}
	switch {
	case principal.Role(role) != principal.Builder:
		return Token{}, errs.E(errs.Invalid, "token %s is a %s token; only builder tokens are bound to an operator", id, role)
	case revoked != 0:
		return Token{}, errs.E(errs.Conflict, "token %s is revoked", id)
	}
	if _, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE tokens SET operator = ? WHERE id = ?`), org, id); err != nil {
		return Token{}, fmt.Errorf("auth: bind token %s to operator %s: %w", id, org, db.Classify(err))
	}
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
	return s.token(ctx, id)
}

// OperatorOf returns the operator organisation the token id is bound to,
// "" when it is unbound (every token but a bound builder token). It reads
// the database every time, so a binding counts at once.
func (s *Service) OperatorOf(ctx context.Context, id string) (string, error) {
	var op string
	var revoked int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT operator, revoked FROM tokens WHERE id = ?`), id).Scan(&op, &revoked)
	if err != nil {
		return "", db.NotFound(err, "token %s not found", id)
	}
	if revoked != 0 {
		return "", nil
	}
	return op, nil
}

func (s *Service) token(ctx context.Context, id string) (Token, error) {
	var t Token
	var role string
	var created, expires, revoked, lastUsed int64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT id, name, role, org, operator, created, expires, revoked, last_used FROM tokens WHERE id = ?`), id).
		Scan(&t.ID, &t.Name, &role, &t.Org, &t.Operator, &created, &expires, &revoked, &lastUsed)
	if err != nil {
		return Token{}, db.NotFound(err, "token %s not found", id)
	}
	t.Role = principal.Role(role)
	t.Created, t.Expires, t.Revoked, t.LastUsed = db.FromMillis(created), db.FromMillis(expires), db.FromMillis(revoked), db.FromMillis(lastUsed)
	return t, nil
}

// BuilderToken finds the live builder token named name, or makes one, and
// returns its id: the token of a builder agent that runs inside the server
// and never leaves it, so its secret is not kept. The token is bound to the
// operator organisation operator, made with the display name label when it
// does not exist; a token made before operators were bound is bound now.
func (s *Service) BuilderToken(ctx context.Context, name, operator, label string) (string, error) {
	if err := s.CreateOrg(ctx, operator, label, "operator"); err != nil && !errs.Is(err, errs.Conflict) {
		return "", err
	}
	toks, err := s.Tokens(ctx, "")
	if err != nil {
		return "", err
	}
	for _, t := range toks {
		if t.Name == name && t.Role == principal.Builder && t.Revoked.IsZero() {
			if t.Operator == "" {
				if _, err := s.BindOperator(ctx, t.ID, operator); err != nil {
					return "", err
				}
			}
			return t.ID, nil
		}
	}
	_, t, err := s.CreateToken(ctx, TokenSpec{Name: name, Role: principal.Builder, Operator: operator})
	return t.ID, err
}
