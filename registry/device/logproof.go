package device

// This file is the device's check of the transparency log before it
// installs: the release's publication must be an entry of the log, proved
// against a checkpoint that meets the witness policy the signed TUF root
// carries, and that checkpoint must extend the last one this device
// accepted. docs/transparency.md and docs/device-client.md describe it.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/internal/httpclient"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// LogPolicyField is the signed custom field of the TUF root metadata that
// holds the transparency log's policy (verify.Policy: origin, log key,
// witnesses with their operators, quorum). A root without it does not ask
// devices to check the log.
const LogPolicyField = "afterlife_log"

// logCheckpointFile keeps the newest log checkpoint this device accepted.
const logCheckpointFile = "log-checkpoint"

// ErrNotLogged is the cause of a refusal to install a release whose
// publication the transparency log does not prove.
var ErrNotLogged = errors.New("the release's publication is not proved by the transparency log")

// logPolicy reads the policy from the newest root the TUF updater verified
// (it keeps only verified roots in the metadata cache).
func (c *client) logPolicy() (verify.Policy, bool, error) {
	b, err := os.ReadFile(filepath.Join(c.cfg.StateDir, tufDir, rootFile))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(c.cfg.StateDir, rootFile))
	}
	if err != nil {
		return verify.Policy{}, false, fmt.Errorf("device: read trusted root: %w", err)
	}
	return rootLogPolicy(b)
}

// rootLogPolicy reads the log policy a root's signed fields carry; the
// caller has verified the root.
func rootLogPolicy(b []byte) (verify.Policy, bool, error) {
	var root struct {
		Signed map[string]json.RawMessage `json:"signed"`
	}
	if err := json.Unmarshal(b, &root); err != nil {
		return verify.Policy{}, false, errs.Wrap(errs.Invalid, err, "device: trusted root")
	}
	raw, ok := root.Signed[LogPolicyField]
	if !ok {
		return verify.Policy{}, false, nil
	}
	var pol verify.Policy
	if err := json.Unmarshal(raw, &pol); err != nil {
		return verify.Policy{}, false, errs.Wrap(errs.Invalid, err, "device: the root's %s field", LogPolicyField)
	}
	return pol, true, nil
}

// checkLogged refuses a candidate whose publication the log does not
// prove, when the trusted root carries a log policy.
func (c *client) checkLogged(ctx context.Context, cand *candidate) error {
	pol, ok, err := c.logPolicy()
	if err != nil || !ok {
		return err
	}
	// refuse keeps the cause's chain (verify.ErrPolicy, …) beside ErrNotLogged.
	refuse := func(cause error, format string, args ...any) error {
		return errs.Wrap(errs.Invalid, fmt.Errorf("%w: %w", ErrNotLogged, cause), "device: refusing %s %s: "+format,
			append([]any{cand.meta.Product, cand.meta.Version}, args...)...)
	}
	var found *verify.Bundle
	if cand.meta.Log != nil {
		// The targets role signed where the publication sits: that entry
		// must prove it, and no other is looked for.
		i := cand.meta.Log.Index
		var b verify.Bundle
		raw, err := c.getRaw(ctx, "/v1/log/entries/"+strconv.FormatInt(i, 10)+"/proof")
		switch {
		case err == nil:
			if b, err = pol.Bundle(raw); err != nil {
				return refuse(err, "the log's proof of the signed entry %d does not verify", i)
			}
		case errs.Is(err, errs.NotFound):
			// No proof from the log's API: a static mirror has none (and
			// the origin none for an entry not witnessed yet). Prove the
			// entry from the log's tiles and checkpoint instead.
			b, err = pol.StaticBundle(ctx, c.staticLog, i)
			if errs.Is(err, errs.NotFound) {
				return refuse(err, "the signed entry %d is in no witnessed checkpoint yet", i)
			}
			if err != nil {
				return refuse(err, "the log's tiles do not prove the signed entry %d", i)
			}
			c.log.Info("device: the log's entry proved from its tiles", "entry", i, "log_size", b.Checkpoint.Size)
		default:
			return err
		}
		if b.Index != i || !publishes(b.Entry, cand) {
			return refuse(errors.New("another entry"), "the signed entry %d does not publish release %s", i, cand.meta.ReleaseID)
		}
		found = &b
	} else if found, err = c.lookUpLoggedUnsigned(ctx, pol, cand, refuse); err != nil {
		return err
	}
	if err := c.extendsAccepted(ctx, pol, found.Checkpoint); err != nil {
		return refuse(err, "the log's checkpoint")
	}
	c.log.Info("release is in the transparency log", "entry", found.Index, "log_size", found.Checkpoint.Size, "witnesses", found.Checkpoint.Operators)
	return nil
}

// lookUpLoggedUnsigned finds the publication of a release whose targets
// were signed before they carried their log entry, through the log's
// unsigned list of a product's entries: only the proof it then fetches is
// checked.
func (c *client) lookUpLoggedUnsigned(ctx context.Context, pol verify.Policy, cand *candidate, refuse func(error, string, ...any) error) (*verify.Bundle, error) {
	var listed []struct {
		Index int64  `json:"index"`
		Type  string `json:"type"`
	}
	if err := c.getJSON(ctx, "/v1/log/about/"+url.PathEscape(cand.meta.Product), &listed); errs.Is(err, errs.NotFound) {
		return nil, refuse(err, "its target does not sign its log entry, and the registry lists no log entries (a static mirror proves only entries the targets sign)")
	} else if err != nil {
		return nil, err
	}
	for i := len(listed) - 1; i >= 0; i-- {
		if listed[i].Type != "release.published" && listed[i].Type != "release.imported" {
			continue
		}
		raw, err := c.getRaw(ctx, "/v1/log/entries/"+strconv.FormatInt(listed[i].Index, 10)+"/proof")
		if errs.Is(err, errs.NotFound) {
			// Logged but not in a witnessed checkpoint yet: it proves
			// nothing now; an older entry may.
			continue
		}
		if err != nil {
			return nil, err
		}
		b, err := pol.Bundle(raw)
		if err != nil {
			return nil, refuse(err, "the log's proof of entry %d does not verify", listed[i].Index)
		}
		if publishes(b.Entry, cand) {
			return &b, nil
		}
	}
	return nil, refuse(errors.New("no such entry"), "no entry of the log publishes release %s", cand.meta.ReleaseID)
}

// publishes reports whether a log entry is the publication of the
// candidate: its release id, product, version and the digest of the file
// the device is about to install.
func publishes(entry []byte, cand *candidate) bool {
	var e struct {
		Type      string `json:"type"`
		Release   string `json:"release"`
		Product   string `json:"product"`
		Version   string `json:"version"`
		Artifacts []struct {
			Target string `json:"target"`
			Digest string `json:"digest"`
		} `json:"artifacts"`
	}
	// A registry that carried another on from its mirror logs the
	// releases it imported as release.imported, with the same fields.
	if json.Unmarshal(entry, &e) != nil || (e.Type != "release.published" && e.Type != "release.imported") {
		return false
	}
	if e.Release != cand.meta.ReleaseID || e.Product != cand.meta.Product || e.Version != cand.meta.Version {
		return false
	}
	want := "sha256:" + hex.EncodeToString(cand.info.Hashes["sha256"])
	return slices.ContainsFunc(e.Artifacts, func(a struct {
		Target string `json:"target"`
		Digest string `json:"digest"`
	}) bool {
		return a.Target == cand.info.Path && a.Digest == want
	})
}

// extendsAccepted checks that cp extends the newest checkpoint this device
// accepted before (a consistency proof), then keeps cp as that one. A log
// that was rewritten since fails here.
func (c *client) extendsAccepted(ctx context.Context, pol verify.Policy, cp verify.Checkpoint) error {
	path := filepath.Join(c.cfg.StateDir, logCheckpointFile)
	prevRaw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("device: %w", err)
	}
	if err == nil && pol.OtherLog(prevRaw) {
		// The trusted root names another log than the one this device
		// checked before (custodians handed the registry to a new
		// operator, docs/mirror.md): its history starts here.
		c.log.Info("device: the trusted root names another transparency log; its checkpoints start anew", "origin", pol.Origin)
		err = fs.ErrNotExist
	}
	if err == nil {
		prev, err := pol.LogSigned(prevRaw)
		if err != nil {
			return fmt.Errorf("the checkpoint this device accepted before no longer verifies: %w", err)
		}
		old, cur := prev, cp
		if cur.Size < old.Size {
			old, cur = cp, prev
		}
		raw, err := c.getRaw(ctx, fmt.Sprintf("/v1/log/consistency?old=%d&size=%d", old.Size, cur.Size))
		switch {
		case err == nil:
			p, err := verify.ParseProofLines(raw)
			if err != nil {
				return err
			}
			err = verify.Consistency(old, cur, p)
			if err != nil {
				return fmt.Errorf("the log does not extend the checkpoint of size %d this device accepted: %w", prev.Size, err)
			}
		case errs.Is(err, errs.NotFound):
			// A static mirror: prove it from its tiles, those of cp's tree;
			// a mirror older than what this device accepted cannot.
			if err := verify.StaticConsistency(ctx, c.staticLog, prev, cp); err != nil {
				return fmt.Errorf("the log does not extend the checkpoint of size %d this device accepted: %w", prev.Size, err)
			}
			c.log.Info("device: the log's consistency proved from its tiles", "accepted_size", prev.Size, "log_size", cp.Size)
		default:
			return err
		}
		if cp.Size < prev.Size {
			return nil // keep the newer one
		}
	}
	return writeFileSync(path, cp.Note, 0o600)
}

// staticLog reads a file of the log's static C2SP tiles (under /log/),
// which a mirror serves as the origin does.
func (c *client) staticLog(ctx context.Context, name string) ([]byte, error) {
	return c.getRaw(ctx, "/log/"+name)
}

func (c *client) getRaw(ctx context.Context, path string) ([]byte, error) {
	u := c.base.String() + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "device: GET %s", path)
	}
	defer httpclient.Drain(resp)
	if resp.StatusCode/100 != 2 {
		return nil, httpclient.DecodeError(resp, "device: GET "+path)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

func (c *client) getJSON(ctx context.Context, path string, out any) error {
	b, err := c.getRaw(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return errs.Wrap(errs.Unavailable, err, "device: GET %s: bad answer", path)
	}
	return nil
}
