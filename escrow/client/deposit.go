package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// DepositOptions say what to deposit.
type DepositOptions struct {
	Product string
	Policy  string   // e.g. "dead-man=30d,7d+quorum=2/3:alice,bob,carol"
	Paths   []string // files and directories
	// KindsFile, when set, overrides inferred kinds (see LoadKinds).
	KindsFile string
	// Handover, when set, is a signed handover statement file the deposit
	// carries at wire.HandoverFile (docs/handover.md).
	Handover string
	// StateFile remembers an unfinished deposit so that a re-run resumes
	// it (default DefaultStateFile(Product)). It is removed on success.
	StateFile string
	// ReceiptFile is where the signed receipt is written (default
	// "<deposit id>.receipt.json" in the current directory).
	ReceiptFile string
	// Rounds bounds how often the upload restarts from the server's view
	// after the HTTP client gives up on a file (default 5).
	Rounds int
	// Rights are the rights rules (manifest.ParseRightsRule reads
	// "drivers/**=build-only"), in order: the last match wins, and a file
	// none matches is private, published nowhere.
	Rights []manifest.RightsRule
	// Grant is the vendor's grant text (a licence or written permission),
	// shown with the deposit.
	Grant string
	// ShippedImage and CompletenessRecipe are paths in the deposit (as the
	// manifest names them): the image last shipped, kept private, and the
	// recipe file the server's sealed completeness check rebuilds it with.
	ShippedImage, CompletenessRecipe string
	// Again deposits even when a committed deposit of the product already
	// has this exact manifest and policy (a deposit is never deleted, so a
	// re-run after success would otherwise seal a second copy).
	Again bool
}

// DepositResult is what a finished deposit gives back.
type DepositResult struct {
	Deposit     string
	Receipt     receipt.Receipt
	Signed      receipt.Signed
	ReceiptFile string
	Resumed     bool  // an earlier run's upload was continued
	ResumedAt   int64 // bytes the server held when this run began to send
	Sent        int64 // bytes sent by this run
	Skipped     int   // files already on the server
	// AlreadyCommitted is set, and nothing was sent, when a committed
	// deposit of the product (Deposit) has this exact manifest and policy.
	AlreadyCommitted *Deposit
}

type state struct {
	Server         string `json:"server"`
	Product        string `json:"product"`
	Deposit        string `json:"deposit"`
	ManifestDigest string `json:"manifest_digest"`
}

type fileStatus struct {
	Deposit string         `json:"deposit"`
	State   string         `json:"state"`
	Files   []fileProgress `json:"files"`
}

// PolicyChoices names the release policies a deposit may take, for error
// messages and help texts.
const PolicyChoices = "immediate, on=DATE, dead-man=EVERY,GRACE or quorum=K/N:TRUSTEES (combine with '+')"

// CheckPolicy refuses an empty or malformed release policy before anything
// is hashed or sent. There is no default: a vendor who forgot to choose
// must not publish sources and keys at once.
func CheckPolicy(s string) error {
	if strings.TrimSpace(s) == "" {
		return errs.E(errs.Invalid, "a release policy is required (--policy): choose %s", PolicyChoices)
	}
	if _, err := policy.Parse(s); err != nil {
		return fmt.Errorf("release policy %q: %w", s, err)
	}
	return nil
}

// Deposit scans, hashes, creates (or resumes), uploads and commits a
// deposit, and writes its receipt.
func (c *Client) Deposit(ctx context.Context, o DepositOptions) (DepositResult, error) {
	var res DepositResult
	if err := CheckPolicy(o.Policy); err != nil {
		return res, err
	}
	if err := manifest.ValidateRights(o.Rights); err != nil {
		return res, err
	}
	if len(o.Grant) > manifest.MaxGrantSize {
		return res, errs.E(errs.TooLarge, "grant text of %d bytes: at most %d", len(o.Grant), manifest.MaxGrantSize)
	}
	if o.StateFile == "" {
		o.StateFile = DefaultStateFile(o.Product)
	}
	if o.Rounds <= 0 {
		o.Rounds = 5
	}
	var kinds map[string]manifest.Kind
	if o.KindsFile != "" {
		var err error
		if kinds, err = LoadKinds(o.KindsFile); err != nil {
			return res, err
		}
	}
	files, err := Scan(o.Paths, kinds)
	if err != nil {
		return res, err
	}
	if files, err = withHandover(files, o.Handover); err != nil {
		return res, err
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	hashBar := c.newProgress("hashing", total)
	var hashed atomic.Int64
	err = Hash(files, func(n int64) { hashBar.set(hashed.Add(n)) })
	hashBar.finish()
	if err != nil {
		return res, err
	}
	entries := Entries(files)
	digest := manifest.Digest(entries)

	st, resumed := c.loadState(o.StateFile, o.Product, digest)
	var status fileStatus
	if resumed {
		err := c.call(ctx, http.MethodGet, "/v1/deposits/"+url.PathEscape(st.Deposit)+"/upload", nil, &status)
		if errs.Is(err, errs.NotFound) {
			resumed = false // collected or aborted meanwhile: start over
		} else if err != nil {
			return res, err
		}
	}
	if !resumed && !o.Again {
		same, err := c.committedTwin(ctx, o.Product, o.Policy, digest)
		if err != nil {
			return res, err
		}
		if same != nil {
			res.Deposit, res.AlreadyCommitted = same.ID, same
			return res, nil
		}
	}
	if !resumed {
		var d Deposit
		err := c.call(ctx, http.MethodPost, "/v1/deposits", map[string]any{"product": o.Product, "policy": o.Policy, "manifest": entries, "rights": rightsOrEmpty(o.Rights), "grant": o.Grant,
			"shipped_image": o.ShippedImage, "completeness_recipe": o.CompletenessRecipe}, &d)
		if err != nil {
			return res, err
		}
		st = state{Server: c.base, Product: o.Product, Deposit: d.ID, ManifestDigest: d.ManifestDigest}
		if d.ManifestDigest != digest {
			return res, errs.E(errs.Internal, "the server computed manifest %s, we computed %s", d.ManifestDigest, digest)
		}
		if err := saveState(o.StateFile, st); err != nil {
			return res, err
		}
		status.State = "uploading"
	}
	res.Deposit, res.Resumed = st.Deposit, resumed

	if status.State == "uploading" || status.State == "" {
		if err := c.uploadAll(ctx, st.Deposit, files, &res, o.Rounds); err != nil {
			return res, err
		}
	}
	var signed receipt.Signed
	if err := c.call(ctx, http.MethodPost, "/v1/deposits/"+url.PathEscape(st.Deposit)+"/commit", nil, &signed); err != nil {
		return res, err
	}
	raw, _ := json.MarshalIndent(signed, "", "  ")
	pub, err := c.ReceiptKey(ctx)
	if err != nil {
		return res, err
	}
	r, err := receipt.Verify(pub, raw)
	if err != nil {
		return res, err
	}
	if r.ManifestDigest != digest || r.Deposit != st.Deposit {
		return res, errs.E(errs.Internal, "the receipt names deposit %s manifest %s; we sent %s manifest %s", r.Deposit, r.ManifestDigest, st.Deposit, digest)
	}
	if !resumed && !sameRights(r.Rights, o.Rights) {
		return res, errs.E(errs.Internal, "the receipt states rights %v; we sent %v", r.Rights, o.Rights)
	}
	res.Receipt, res.Signed = r, signed
	res.ReceiptFile = o.ReceiptFile
	if res.ReceiptFile == "" {
		res.ReceiptFile = st.Deposit + ".receipt.json"
	}
	if err := os.WriteFile(res.ReceiptFile, append(raw, '\n'), 0o644); err != nil {
		return res, fmt.Errorf("client: write receipt: %w", err)
	}
	if err := os.Remove(o.StateFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("client: remove state file: %w", err)
	}
	return res, nil
}

// committedTwin is a committed (sealed or released) deposit of product
// with manifest digest and the same policy, or nil.
func (c *Client) committedTwin(ctx context.Context, product, pol, digest string) (*Deposit, error) {
	want, err := policy.Parse(pol)
	if err != nil {
		return nil, err
	}
	var list struct {
		Deposits []Deposit `json:"deposits"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/deposits?limit=1000&product="+url.QueryEscape(product), nil, &list); err != nil {
		return nil, fmt.Errorf("client: look for an identical deposit: %w", err)
	}
	for _, d := range list.Deposits {
		if d.ManifestDigest != digest || (d.State != wire.Sealed && d.State != wire.Released) {
			continue
		}
		if p, err := policy.Parse(d.Policy); err == nil && p.String() == want.String() {
			return &d, nil
		}
	}
	return nil, nil
}

// uploadAll sends what the server does not have yet: whole files, and the
// rest of a file it holds the beginning of. After a cut connection it asks
// the server again what arrived and carries on from there; it gives up
// after rounds attempts in a row that brought nothing new.
func (c *Client) uploadAll(ctx context.Context, id string, files []LocalFile, res *DepositResult, rounds int) error {
	var lastErr error
	var lastHeld int64 = -1
	for fruitless := 0; fruitless < rounds; {
		var status fileStatus
		if err := c.call(ctx, http.MethodGet, "/v1/deposits/"+url.PathEscape(id)+"/upload", nil, &status); err != nil {
			if lastErr != nil && ctx.Err() == nil {
				return fmt.Errorf("%w (then: %w)", lastErr, err)
			}
			return err
		}
		byPath := map[string]fileProgress{}
		for _, f := range status.Files {
			byPath[f.Path] = f
		}
		var todo []LocalFile
		var total, held int64
		for _, f := range files {
			if f.IsLink() {
				continue
			}
			total += f.Size
			st := byPath[f.Path]
			if st.Done {
				held += f.Size
				if lastHeld < 0 {
					res.Skipped++
				}
				continue
			}
			held += st.Received
			todo = append(todo, f)
		}
		if len(todo) == 0 {
			return nil
		}
		if lastHeld < 0 && held > 0 {
			res.ResumedAt = held
		}
		if held > lastHeld {
			fruitless = 0
		} else {
			fruitless++
		}
		lastHeld = held
		bar := c.newProgress("uploading", total)
		var sent atomic.Int64
		sent.Store(held)
		bar.set(held)
		lastErr = nil
		for _, f := range todo {
			n, err := c.putFile(ctx, id, f, byPath[f.Path], func(delta int64) { bar.set(sent.Add(delta)) })
			res.Sent += n
			if err != nil {
				lastErr = err
				break
			}
		}
		bar.finish()
		if lastErr == nil {
			return nil
		}
		if k := errs.KindOf(lastErr); (k != errs.Unavailable && k != errs.Conflict) || ctx.Err() != nil {
			return lastErr // a refusal will not change by retrying
		}
		c.log.Warn("upload interrupted; resuming from what the server holds", "deposit", id, "err", lastErr)
	}
	return lastErr
}

// fileProgress is what the server holds of one file.
type fileProgress struct {
	Path           string `json:"path"`
	Done           bool   `json:"done"`
	Received       int64  `json:"received"`
	ReceivedSHA256 string `json:"received_sha256,omitempty"`
}

// putFile sends f, or its rest when the server holds a beginning of it
// that matches the local file's. The whole file is hashed on the way (the
// beginning read from disk), so a file changed since the manifest was made
// is caught here, whatever the server says. One try: the caller asks the
// server where it stands before the next.
func (c *Client) putFile(ctx context.Context, id string, f LocalFile, held fileProgress, progress func(int64)) (int64, error) {
	fh, err := os.Open(f.Source)
	if err != nil {
		return 0, fmt.Errorf("client: upload %s: %w", f.Path, err)
	}
	defer fh.Close()
	h := sha256.New()
	var from int64
	if held.Received > 0 && held.Received < f.Size {
		if _, err := io.CopyN(h, fh, held.Received); err != nil {
			return 0, fmt.Errorf("client: upload %s: %w", f.Path, err)
		}
		if hex.EncodeToString(h.Sum(nil)) == held.ReceivedSHA256 {
			from = held.Received
		} else {
			// A server that lost or garbled what it holds, or a file changed
			// meanwhile: send it whole, and let the digest decide.
			c.log.Warn("the server's beginning of a file does not match ours; sending it whole", "path", f.Path, "held", held.Received)
			h.Reset()
			if _, err := fh.Seek(0, io.SeekStart); err != nil {
				return 0, fmt.Errorf("client: upload %s: %w", f.Path, err)
			}
		}
	}
	body := &hashingReader{r: io.LimitReader(fh, f.Size-from), h: h, add: progress, closed: make(chan struct{})}
	u := c.base + "/v1/deposits/" + url.PathEscape(id) + "/files/" + escapePath(f.Path)
	if from > 0 {
		u += "?offset=" + strconv.FormatInt(from, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return 0, fmt.Errorf("client: upload %s: %w", f.Path, err)
	}
	req.ContentLength = f.Size - from
	req.Header.Set("Content-Type", "application/octet-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.HTTPClient.Do(req)
	// The transport may go on reading the body after it answers; it
	// closes it when it is done.
	<-body.closed
	if err != nil {
		progress(-body.n)
		return body.n, errs.Wrap(errs.Unavailable, err, "upload %s", f.Path)
	}
	defer httpclient.Drain(resp)
	if body.n == f.Size-from && hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return body.n, errs.E(errs.Invalid, "%s changed after it was hashed: run the same command again to deposit what it holds now", f.Source)
	}
	if resp.StatusCode >= 300 {
		progress(-body.n)
		return body.n, fmt.Errorf("upload %s: %w", f.Path, httpclient.DecodeError(resp, "PUT "+req.URL.Path))
	}
	return body.n, nil
}

// hashingReader hashes and counts what it reads; closed is closed when
// the transport is done with it.
type hashingReader struct {
	r      io.Reader
	h      hash.Hash
	n      int64
	add    func(int64)
	closed chan struct{}
	once   sync.Once
}

func (r *hashingReader) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	r.add(int64(n))
	return n, err
}

func (c *Client) loadState(path, product, digest string) (state, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return state{}, false
	}
	var st state
	if json.Unmarshal(b, &st) != nil || st.Server != c.base || st.Product != product || st.ManifestDigest != digest || st.Deposit == "" {
		return state{}, false // another deposit's leftovers: start a new one
	}
	return st, true
}

func saveState(path string, st state) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("client: state file: %w", err)
	}
	b, _ := json.Marshal(st)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("client: state file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("client: state file: %w", err)
	}
	return nil
}

// progress is a bar on a terminal, periodic lines elsewhere.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	what  string
	total int64
	mu    sync.Mutex
	last  time.Time
	cur   int64
}

func (c *Client) newProgress(what string, total int64) *progress {
	p := &progress{w: c.progress, what: what, total: total, last: time.Now()}
	if f, ok := c.progress.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(f) }),
		)
	}
	return p
}

func (p *progress) set(n int64) {
	if p.bar != nil {
		_ = p.bar.Set64(n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur = n
	if time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, "%s: %s of %s (%d%%)\n", p.what, human(n), human(p.total), percent(n, p.total))
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s: %s of %s (%d%%)\n", p.what, human(p.cur), human(p.total), percent(p.cur, p.total))
}

func percent(n, total int64) int64 {
	if total <= 0 {
		return 100
	}
	return n * 100 / total
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// withHandover adds the handover statement file at wire.HandoverFile.
func withHandover(files []LocalFile, path string) ([]LocalFile, error) {
	if path == "" {
		return files, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "handover statement %s", path)
	}
	if !st.Mode().IsRegular() || st.Size() > wire.MaxHandoverSize {
		return nil, errs.E(errs.Invalid, "handover statement %s: want a file of at most %d bytes", path, wire.MaxHandoverSize)
	}
	for _, f := range files {
		if f.Path == wire.HandoverFile {
			return nil, errs.E(errs.Invalid, "the deposit already holds %s (from %s); give the statement once", wire.HandoverFile, f.Source)
		}
	}
	files = append(files, LocalFile{Entry: manifest.Entry{Path: wire.HandoverFile, Size: st.Size(), Kind: manifest.InferKind(wire.HandoverFile)}, Source: path})
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// RevokeHandover withdraws a sealed deposit's handover statement.
func (c *Client) RevokeHandover(ctx context.Context, depositID string) (wire.Handover, error) {
	var h wire.Handover
	err := c.call(ctx, http.MethodPost, "/v1/deposits/"+url.PathEscape(depositID)+"/handover/revoke", struct{}{}, &h)
	return h, err
}

// Handover returns what a deposit's handover statement claims, and its state.
func (c *Client) Handover(ctx context.Context, depositID string) (wire.Handover, error) {
	var h wire.Handover
	err := c.call(ctx, http.MethodGet, "/v1/deposits/"+url.PathEscape(depositID)+"/handover", nil, &h)
	return h, err
}

func rightsOrEmpty(rules []manifest.RightsRule) []manifest.RightsRule {
	if rules == nil {
		return []manifest.RightsRule{}
	}
	return rules
}

// sameRights reports whether a receipt states the rules we sent.
func sameRights(got []receipt.Rule, sent []manifest.RightsRule) bool {
	if len(got) != len(sent) {
		return false
	}
	for i, r := range sent {
		if got[i].Pattern != r.Pattern || got[i].Rights != string(r.Rights) {
			return false
		}
	}
	return true
}
