// Package client is the vendor and trustee side of the escrow API, for the
// afterlife CLI: it walks and hashes a deposit, uploads it with progress and
// resumes after a dropped connection or a crash without re-sending finished
// files, commits it and keeps the signed receipt; it also checks in,
// approves quorum releases, and verifies receipts offline.
//
// It speaks only HTTP to the server and must not import the server side.
package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/escrow/policy"
	"github.com/afterlife-oss/afterlife/escrow/receipt"
	"github.com/afterlife-oss/afterlife/escrow/wire"
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
)

// Options configure a Client.
type Options struct {
	Server string // base URL, e.g. http://127.0.0.1:8080
	Token  string // API token (vendor or trustee)
	// HTTP is the retrying client; default httpclient.New with Logger.
	HTTP *retryablehttp.Client
	// Progress receives the progress bar (on a terminal) or periodic
	// lines; default os.Stderr. io.Discard silences it.
	Progress io.Writer
	Logger   *slog.Logger
}

// Client talks to one afterlife server.
type Client struct {
	base     string
	token    string
	http     *retryablehttp.Client
	progress io.Writer
	log      *slog.Logger
}

// New returns a client.
func New(o Options) *Client {
	c := &Client{base: strings.TrimSuffix(o.Server, "/"), token: o.Token, http: o.HTTP, progress: o.Progress, log: o.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil {
		c.http = httpclient.New(httpclient.Options{Logger: c.log})
	}
	if c.progress == nil {
		c.progress = os.Stderr
	}
	return c
}

// call sends a JSON request (body may be nil) and decodes a JSON answer
// into out (may be nil).
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("client: encode: %w", err)
		}
	}
	var rb any
	if raw != nil {
		rb = raw
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base+path, rb)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, out)
}

func (c *Client) do(req *retryablehttp.Request, out any) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "%s %s", req.Method, req.URL.Redacted())
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode >= 300 {
		return httpclient.DecodeError(resp, req.Method+" "+req.URL.Path)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return errs.Wrap(errs.Unavailable, err, "%s %s: bad answer", req.Method, req.URL.Redacted())
	}
	return nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// Deposit is the server's view of a deposit, as the escrow part defines it.
type Deposit = wire.Deposit

// GetDeposit fetches a deposit and its manifest.
func (c *Client) GetDeposit(ctx context.Context, id string) (Deposit, error) {
	var d Deposit
	err := c.call(ctx, http.MethodGet, "/v1/deposits/"+url.PathEscape(id), nil, &d)
	return d, err
}

// ReceiptKey fetches the server's receipt public key. Verifying a receipt
// with a key fetched from the same server proves less than with a key
// obtained out of band; the CLI saves it for offline checks.
func (c *Client) ReceiptKey(ctx context.Context) (ed25519.PublicKey, error) {
	var k struct {
		PublicKey string `json:"public_key"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/escrow/receipt-key", nil, &k); err != nil {
		return nil, err
	}
	return receipt.ParsePublicKey([]byte(k.PublicKey))
}

// Checkin tells the server that org is alive; it returns the time
// recorded.
func (c *Client) Checkin(ctx context.Context, org string) (time.Time, error) {
	var r struct {
		At time.Time `json:"at"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/vendors/"+url.PathEscape(org)+"/checkin", nil, &r)
	return r.At, err
}

// ApprovalResult tells what an approval achieved.
type ApprovalResult struct {
	Deposit   string `json:"deposit"`
	Approvals int    `json:"approvals"`
	Needed    int    `json:"needed"`
	Released  bool   `json:"released"`
}

// Approve signs and sends trustee's approval of a sealed deposit. It signs
// the manifest digest the server shows, so the approval holds for exactly
// that content (the digest the vendor's signed receipt names). A trustee
// never sees the sealed manifest itself; when the server does return one,
// it must hash to that digest.
func (c *Client) Approve(ctx context.Context, depositID, trustee string, key ed25519.PrivateKey) (ApprovalResult, error) {
	d, err := c.GetDeposit(ctx, depositID)
	if err != nil {
		return ApprovalResult{}, err
	}
	if d.ManifestDigest == "" {
		return ApprovalResult{}, errs.E(errs.Invalid, "deposit %s shows no manifest digest to approve", depositID)
	}
	if got := manifest.Digest(d.Manifest); d.Manifest != nil && got != d.ManifestDigest {
		return ApprovalResult{}, errs.E(errs.Invalid, "the server's manifest hashes to %s but it claims %s: refusing to approve", got, d.ManifestDigest)
	}
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(key, policy.ApprovalMessage(depositID, d.ManifestDigest)))
	var r ApprovalResult
	err = c.call(ctx, http.MethodPost, "/v1/deposits/"+url.PathEscape(depositID)+"/approvals",
		map[string]string{"trustee": trustee, "signature": sig}, &r)
	return r, err
}

// VerifyReceiptFile checks a saved receipt against a public key file
// ("ed25519:<base64>" or PEM), offline.
func VerifyReceiptFile(receiptPath, keyPath string) (receipt.Receipt, error) {
	rb, err := os.ReadFile(receiptPath)
	if err != nil {
		return receipt.Receipt{}, errs.Wrap(errs.Invalid, err, "receipt file")
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return receipt.Receipt{}, errs.Wrap(errs.Invalid, err, "key file")
	}
	pub, err := receipt.ParsePublicKey(kb)
	if err != nil {
		return receipt.Receipt{}, err
	}
	return receipt.Verify(pub, rb)
}

// GenerateKey writes a new ed25519 key (PEM PKCS#8, mode 0600) for a
// trustee and returns its public key in text form, to register with
// POST /v1/trustees. It never overwrites a file.
func GenerateKey(path string) (string, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("client: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("client: encode key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return "", errs.E(errs.Conflict, "%s exists; refusing to overwrite a key", path)
	}
	if err != nil {
		return "", fmt.Errorf("client: write key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return "", fmt.Errorf("client: write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("client: write key: %w", err)
	}
	return receipt.FormatPublicKey(pub), nil
}

// LoadKey reads an ed25519 private key (PEM PKCS#8), refusing a file that
// others may read.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "key file")
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, errs.E(errs.Invalid, "key file %s has mode %v; want 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "key file")
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errs.E(errs.Invalid, "key file %s: want a PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "key file %s", path)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errs.E(errs.Invalid, "key file %s: not an ed25519 key", path)
	}
	return key, nil
}

// DefaultStateFile is where an unfinished deposit of product is
// remembered, so a re-run resumes it.
func DefaultStateFile(product string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "afterlife", "deposit-"+product+".json")
}
