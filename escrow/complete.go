package escrow

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/afterlife-oss/afterlife/escrow/completeness"
	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/internal/db"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/principal"
)

// The sealed completeness check: a deposit marks the image its vendor last
// shipped (a private file of the deposit) and names a recipe file in it.
// The server's own machine rebuilds the deposit with that recipe (the
// Rebuilder; never a farm job, so no community builder ever sees a sealed
// file) and compares the outputs with the shipped image. Until the deposit
// is released only its vendor and admins see the result, unless the vendor
// publishes the score; from release on the score and per-class counts are
// public, signed as an in-toto statement. The per-file report never is.

// Rebuilder builds a deposit's files with a recipe on the operator's own
// machine, in the sandbox: the files never reach a blob store, a queue or
// another machine.
type Rebuilder interface {
	// Rebuild builds with the recipe file at recipe (one of files) and
	// returns the recipe's outputs, each named by its output path.
	Rebuild(ctx context.Context, recipe string, files []RebuildFile) ([]completeness.Member, error)
}

// RebuildFile is one deposit file handed to a Rebuilder.
type RebuildFile struct {
	manifest.Entry
	// Open returns the plaintext, checked against the manifest's digest as
	// it is read.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// Completeness check states.
const (
	CheckNone    = "none" // never checked (or, to others, not yet public)
	CheckRunning = "running"
	CheckDone    = "done"
	CheckFailed  = "failed"
)

// CompletenessPredicateType names the predicate of the signed statement of
// a deposit's completeness score (docs/attestations.md).
const CompletenessPredicateType = "https://afterlife.dev/completeness/v1"

// Completeness is a deposit's completeness check as one caller may see it:
// the score and counts for anyone once they are public; the per-file
// report, the error and who asked for it for the vendor and admins only.
type Completeness struct {
	Deposit   string              `json:"deposit"`
	Product   string              `json:"product"`
	State     string              `json:"state"`
	Percent   int                 `json:"percent"`
	Sentence  string              `json:"sentence,omitempty"`
	Counts    completeness.Counts `json:"counts"`
	Public    bool                `json:"public"`    // anyone may read the score and counts
	Published bool                `json:"published"` // the vendor published them before release
	CheckedAt time.Time           `json:"checked_at,omitzero"`

	ShippedImage string               `json:"shipped_image,omitempty"`
	Recipe       string               `json:"recipe,omitempty"`
	Error        string               `json:"error,omitempty"`
	RequestedBy  string               `json:"requested_by,omitempty"`
	StartedAt    time.Time            `json:"started_at,omitzero"`
	Report       *completeness.Report `json:"report,omitempty"`
}

// markShipped checks the shipped image and recipe a deposit names and
// makes the shipped image private whatever the rules say: it is the
// vendor's product, kept only to measure the deposit against.
func markShipped(entries []manifest.Entry, shipped, recipe string) ([]manifest.Entry, error) {
	if shipped == "" && recipe == "" {
		return entries, nil
	}
	if shipped == "" || recipe == "" {
		return nil, errs.E(errs.Invalid, "a completeness check needs both the shipped image and the recipe that rebuilds it (shipped_image %q, completeness_recipe %q)", shipped, recipe)
	}
	if shipped == recipe {
		return nil, errs.E(errs.Invalid, "the shipped image and the recipe are both %q", shipped)
	}
	found := 0
	for i, e := range entries {
		if e.Path != shipped && e.Path != recipe {
			continue
		}
		if e.IsLink() {
			return nil, errs.E(errs.Invalid, "%s is a symbolic link; the shipped image and the recipe must be files", e.Path)
		}
		if e.Path == shipped {
			entries[i].Rights = manifest.Private
		}
		found++
	}
	if found != 2 {
		return nil, errs.E(errs.Invalid, "the shipped image %q and the recipe %q must both be files of the manifest", shipped, recipe)
	}
	return entries, nil
}

// CheckCompleteness starts the completeness check of a committed deposit
// for its vendor or an admin, replacing an earlier result; it runs in the
// background and CompletenessOf reports it.
func (s *Service) CheckCompleteness(ctx context.Context, p principal.Principal, id string) (Completeness, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Completeness{}, err
	}
	if !isOwner(p, d) {
		return Completeness{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	if d.State == Uploading {
		return Completeness{}, errs.E(errs.Invalid, "deposit %s is still uploading: commit it first", id)
	}
	if d.ShippedImage == "" {
		return Completeness{}, errs.E(errs.Invalid, "deposit %s marks no shipped image (afterlife vendor deposit --shipped-image PATH --completeness-recipe PATH)", id)
	}
	if s.rebuilder == nil {
		return Completeness{}, errs.E(errs.Unavailable, "this server runs no builder of its own, so it cannot check completeness without unsealing (serve --local-builders)")
	}
	now := s.now()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var state string
		var started int64
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT state, started FROM escrow_completeness WHERE deposit = ?`), id).Scan(&state, &started)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO escrow_completeness (deposit, state, requested_by, started) VALUES (?, ?, ?, ?)`),
				id, CheckRunning, p.Actor(), db.Millis(now))
			return err
		case err != nil:
			return err
		case state == CheckRunning && now.Sub(db.FromMillis(started)) < checkTimeout:
			return errs.E(errs.Conflict, "the completeness check of deposit %s is running", id)
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE escrow_completeness SET state = ?, percent = 0, counts = '{}', report = '{}', error = '', requested_by = ?, started = ?, finished = 0 WHERE deposit = ?`),
			CheckRunning, p.Actor(), db.Millis(now), id)
		return err
	})
	if err != nil {
		return Completeness{}, fmt.Errorf("escrow: start the completeness check of %s: %w", id, err)
	}
	s.log.Info("completeness check started", "deposit", id, "actor", p.Actor())
	go s.runCheck(context.WithoutCancel(ctx), d)
	return s.CompletenessOf(ctx, p, id)
}

// checkTimeout bounds one completeness check; a check still marked running
// after it (its replica stopped) may be started again.
const checkTimeout = time.Hour

func (s *Service) runCheck(ctx context.Context, d Deposit) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	// One check at a time per replica: each is a whole build on the
	// server's own machine.
	var r completeness.Report
	var err error
	select {
	case s.checkSlot <- struct{}{}:
		r, err = s.measure(ctx, d)
		<-s.checkSlot
	case <-ctx.Done():
		err = errs.Wrap(errs.Unavailable, ctx.Err(), "waited too long for another completeness check to end")
	}
	now := db.Millis(s.now())
	if err != nil {
		s.log.Warn("completeness check failed", "deposit", d.ID, "err", err)
		_, err = s.db.ExecContext(ctx, s.db.Q(`UPDATE escrow_completeness SET state = ?, error = ?, finished = ? WHERE deposit = ?`),
			CheckFailed, errs.Message(err), now, d.ID)
	} else {
		counts, _ := json.Marshal(r.Counts)
		report, _ := json.Marshal(r)
		s.log.Info("completeness check done", "deposit", d.ID, "percent", r.Percent())
		_, err = s.db.ExecContext(ctx, s.db.Q(`UPDATE escrow_completeness SET state = ?, percent = ?, counts = ?, report = ?, finished = ? WHERE deposit = ?`),
			CheckDone, r.Percent(), string(counts), string(report), now, d.ID)
	}
	if err != nil {
		s.log.Error("completeness check: store the result", "deposit", d.ID, "err", err)
	}
}

// measure rebuilds deposit d and compares the outputs with its shipped
// image. The shipped image itself is never handed to the build, so a
// recipe cannot score by copying it.
func (s *Service) measure(ctx context.Context, d Deposit) (completeness.Report, error) {
	rows, err := s.files(ctx, d.ID)
	if err != nil {
		return completeness.Report{}, err
	}
	var files []RebuildFile
	var shipped *fileRow
	for i := range rows {
		f := rows[i]
		if f.Path == d.ShippedImage {
			shipped = &rows[i]
			continue
		}
		if f.IsLink() {
			continue
		}
		files = append(files, RebuildFile{Entry: f.Entry, Open: func(ctx context.Context) (io.ReadCloser, error) { return s.openContent(ctx, d, f) }})
	}
	if shipped == nil {
		return completeness.Report{}, errs.E(errs.Internal, "deposit %s lost its shipped image %s", d.ID, d.ShippedImage)
	}
	outputs, err := s.rebuilder.Rebuild(ctx, d.CompletenessRecipe, files)
	if err != nil {
		return completeness.Report{}, fmt.Errorf("rebuild with %s: %w", d.CompletenessRecipe, err)
	}
	rc, err := s.openContent(ctx, d, *shipped)
	if err != nil {
		return completeness.Report{}, err
	}
	img, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return completeness.Report{}, fmt.Errorf("read the shipped image: %w", err)
	}
	name := path.Base(d.ShippedImage)
	sm, err := completeness.Unpack(name, img, completeness.DefaultLimits)
	if err != nil {
		return completeness.Report{}, fmt.Errorf("unpack the shipped image: %w", err)
	}
	rm, err := completeness.Rebuilt(name, sm, outputs, completeness.DefaultLimits)
	if err != nil {
		return completeness.Report{}, fmt.Errorf("unpack the rebuilt image: %w", err)
	}
	return completeness.Compare(sm, rm), nil
}

// openContent opens a file's plaintext the way Open does, without a caller:
// only the escrow's own check uses it.
func (s *Service) openContent(ctx context.Context, d Deposit, f fileRow) (io.ReadCloser, error) {
	if f.IsLink() {
		return nil, errs.E(errs.Invalid, "%s is a symbolic link", f.Path)
	}
	if d.State == Released && f.Rights != manifest.Private {
		return s.openPlain(ctx, f.Entry)
	}
	return s.openSealed(ctx, d.ID, f)
}

// CompletenessOf returns deposit id's completeness check: in full to its
// vendor and admins; its score and counts to anyone once the deposit is
// released or its vendor published them; NotFound to everyone else, so a
// sealed deposit is not revealed.
func (s *Service) CompletenessOf(ctx context.Context, p principal.Principal, id string) (Completeness, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Completeness{}, err
	}
	owner := isOwner(p, d)
	if !owner && d.State != Released {
		// Whether it has a published score or not, a sealed deposit
		// answers only when the score is public (below).
		d = Deposit{ID: d.ID, Product: d.Product, State: d.State}
	}
	var c Completeness
	var counts, report string
	var published int
	var started, finished int64
	err = s.db.QueryRowContext(ctx, s.db.Q(`SELECT state, percent, counts, report, error, published, requested_by, started, finished FROM escrow_completeness WHERE deposit = ?`), id).
		Scan(&c.State, &c.Percent, &counts, &report, &c.Error, &published, &c.RequestedBy, &started, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		if !owner && d.State != Released {
			return Completeness{}, errs.E(errs.NotFound, "deposit %s not found", id)
		}
		return Completeness{Deposit: id, Product: d.Product, State: CheckNone}, nil
	}
	if err != nil {
		return Completeness{}, fmt.Errorf("escrow: completeness of %s: %w", id, db.Classify(err))
	}
	c.Deposit, c.Product, c.Published = id, d.Product, published == 1
	c.Public = c.State == CheckDone && (d.State == Released || c.Published)
	if !owner && !c.Public {
		if d.State != Released {
			return Completeness{}, errs.E(errs.NotFound, "deposit %s not found", id)
		}
		// A check that runs or failed is the vendor's business.
		return Completeness{Deposit: id, Product: d.Product, State: CheckNone}, nil
	}
	_ = json.Unmarshal([]byte(counts), &c.Counts) // written by runCheck
	if c.State == CheckDone {
		c.Sentence = fmt.Sprintf("Deposit completeness: %d %% of the shipped image rebuilt bit-for-bit from the deposit", c.Percent)
		c.CheckedAt = db.FromMillis(finished)
	}
	if !owner {
		c.Error, c.RequestedBy = "", ""
		return c, nil
	}
	c.ShippedImage, c.Recipe, c.StartedAt = d.ShippedImage, d.CompletenessRecipe, db.FromMillis(started)
	if c.State == CheckDone {
		var r completeness.Report
		if err := json.Unmarshal([]byte(report), &r); err != nil {
			return Completeness{}, fmt.Errorf("escrow: completeness report of %s: %w", id, err)
		}
		c.Report = &r
	}
	return c, nil
}

// PublishCompleteness makes a sealed deposit's score and counts public
// before release, at its vendor's choice (the per-file report stays
// private). Publishing cannot be taken back.
func (s *Service) PublishCompleteness(ctx context.Context, p principal.Principal, id string) (Completeness, error) {
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return Completeness{}, err
	}
	if !isOwner(p, d) {
		return Completeness{}, errs.E(errs.NotFound, "deposit %s not found", id)
	}
	res, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE escrow_completeness SET published = 1 WHERE deposit = ? AND state = ?`), id, CheckDone)
	if err != nil {
		return Completeness{}, fmt.Errorf("escrow: publish the completeness of %s: %w", id, db.Classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Completeness{}, errs.E(errs.Conflict, "deposit %s has no finished completeness check to publish", id)
	}
	s.log.Info("completeness score published", "deposit", id, "actor", p.Actor())
	return s.CompletenessOf(ctx, p, id)
}

// CompletenessAttestation is the public score as a DSSE envelope, signed
// with the receipt key, around an in-toto statement whose subject is the
// shipped image (its manifest digest) and whose predicate holds the score
// and counts, never the per-file report. Only a public score is signed.
func (s *Service) CompletenessAttestation(ctx context.Context, p principal.Principal, id string) ([]byte, error) {
	c, err := s.CompletenessOf(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if !c.Public {
		return nil, errs.E(errs.Conflict, "deposit %s has no public completeness score: it is signed once the deposit is released or its vendor publishes it", id)
	}
	d, err := s.load(ctx, s.db.DB, id)
	if err != nil {
		return nil, err
	}
	f, err := s.file(ctx, id, d.ShippedImage)
	if err != nil {
		return nil, err
	}
	pred, err := structpb.NewStruct(map[string]any{
		"deposit": id, "product": c.Product, "manifest_digest": d.ManifestDigest,
		"percent": float64(c.Percent), "sentence": c.Sentence, "checked_at": c.CheckedAt.UTC().Format(time.RFC3339),
		"counts": map[string]any{"identical": float64(c.Counts.Identical), "differs": float64(c.Counts.Differs), "missing": float64(c.Counts.Missing), "extra": float64(c.Counts.Extra)},
	})
	if err != nil {
		return nil, fmt.Errorf("escrow: completeness predicate: %w", err)
	}
	st := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       []*intoto.ResourceDescriptor{{Name: path.Base(d.ShippedImage), Digest: map[string]string{"sha256": f.SHA256}}},
		PredicateType: CompletenessPredicateType,
		Predicate:     pred,
	}
	if err := st.Validate(); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "escrow: completeness statement")
	}
	payload, err := protojson.MarshalOptions{UseProtoNames: false}.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("escrow: encode the completeness statement: %w", err)
	}
	signer, err := dsse.NewEnvelopeSigner(receiptSigner{s.key})
	if err != nil {
		return nil, fmt.Errorf("escrow: dsse signer: %w", err)
	}
	env, err := signer.SignPayload(ctx, "application/vnd.in-toto+json", payload)
	if err != nil {
		return nil, fmt.Errorf("escrow: sign the completeness statement: %w", err)
	}
	return json.Marshal(env)
}

// receiptSigner signs DSSE envelopes with the receipt key; its key id is
// the receipt key's (GET /v1/escrow/receipt-key serves both).
type receiptSigner struct{ key ed25519.PrivateKey }

func (r receiptSigner) Sign(ctx context.Context, data []byte) ([]byte, error) {
	return ed25519.Sign(r.key, data), ctx.Err()
}

func (r receiptSigner) Verify(ctx context.Context, data, sig []byte) error {
	if !ed25519.Verify(r.key.Public().(ed25519.PublicKey), data, sig) {
		return errs.E(errs.Invalid, "ed25519 signature mismatch")
	}
	return ctx.Err()
}

func (r receiptSigner) KeyID() (string, error) {
	return receipt.KeyID(r.key.Public().(ed25519.PublicKey)), nil
}

func (r receiptSigner) Public() crypto.PublicKey { return r.key.Public() }
