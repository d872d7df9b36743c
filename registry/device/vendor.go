package device

// This file bootstraps a device's trust from the one key it already has,
// its vendor's update-signing key: the registry publishes the vendor's
// handover statement naming the community root, the transparency log
// proves when it took effect and that no earlier statement claimed this
// device id, and the device pins the root the statement names. See
// docs/handover.md (the device's side).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/handover"
	"github.com/afterlife-oss/afterlife/registry/translog/verify"
)

// HandoverEntryType is the transparency log's entry type of a handover
// that took effect.
const HandoverEntryType = "handover"

// handoverFile records, in StateDir, which handover the pinned root came
// from.
const handoverFile = "handover.json"

// Refusals of a handover, beside the error's kind (errs.Forbidden).
var (
	// ErrHandoverNotLogged: no verifying log entry holds the statement.
	ErrHandoverNotLogged = errors.New("the handover statement is not proved by the transparency log")
	// ErrHandoverSuperseded: an earlier logged handover claims the device id.
	ErrHandoverSuperseded = errors.New("an earlier handover in the transparency log claims this device id")
	// ErrRootMismatch: the root served is not the one the statement names.
	ErrRootMismatch = errors.New("the root served does not match the handover statement's digest")
	// ErrNotVendorSigned: the statement is not signed by the vendor key.
	ErrNotVendorSigned = errors.New("the handover statement is not signed by the vendor's key")
)

// Anchor is the handover a device's trust came from, kept in
// StateDir/handover.json.
type Anchor struct {
	VendorKey       string    `json:"vendor_key"`
	StatementSHA256 string    `json:"statement_sha256"`
	RootName        string    `json:"root_name"`
	RootSHA256      string    `json:"root_sha256"`
	LogEntry        int64     `json:"log_entry"`
	LoggedAt        time.Time `json:"logged_at"`
}

// InitFromVendor is Init for a device that holds only its vendor's key
// (vendorKey: a PEM public key, or the PEM certificates of the CA that
// certifies the vendor's update key). It fetches the product's handover
// statement, verifies it with that key as of its log entry's time,
// verifies the entry's inclusion under the witness policy of the root the
// statement names, checks that no earlier handover entry claims this
// device id, and pins that root, whose sha256 must be the statement's.
// Config.Product and Config.DeviceID are required (or stored by an
// earlier init). A different root already pinned is refused unless
// Config.ReplaceRoot.
func InitFromVendor(ctx context.Context, cfg Config, vendorKey []byte, acceptCommunity bool) (Anchor, error) {
	return anchorToVendor(ctx, cfg, vendorKey, acceptCommunity, false)
}

// TrustVendor re-anchors an initialised device (for example one that
// trusted the registry on first use) on its vendor's handover, verified
// as InitFromVendor does. It keeps the device's install id, settings,
// state and slots; when the root changes it forgets the TUF metadata
// cached under the old one and the log checkpoint accepted under it.
func TrustVendor(ctx context.Context, cfg Config, vendorKey []byte) (Anchor, error) {
	return anchorToVendor(ctx, cfg, vendorKey, false, true)
}

func anchorToVendor(ctx context.Context, cfg Config, vendorKey []byte, acceptCommunity, reanchor bool) (Anchor, error) {
	c, err := newClient(cfg, reanchor)
	if err != nil {
		return Anchor{}, err
	}
	trust, err := vendorTrust(vendorKey)
	if err != nil {
		return Anchor{}, err
	}
	a, rootJSON, pol, cp, err := c.verifyHandover(ctx, trust)
	if err != nil {
		return Anchor{}, err
	}
	changed, err := c.pin(ctx, rootJSON, acceptCommunity, cfg.ReplaceRoot || reanchor, reanchor)
	if err != nil {
		return Anchor{}, err
	}
	if changed {
		// The checkpoint accepted under the old root's policy says
		// nothing under the new one.
		if err := os.Remove(filepath.Join(c.cfg.StateDir, logCheckpointFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Anchor{}, fmt.Errorf("device: %w", err)
		}
	}
	if err := c.extendsAccepted(ctx, pol, cp); err != nil {
		return Anchor{}, errs.Wrap(errs.Forbidden, err, "device: the log's checkpoint")
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return Anchor{}, err
	}
	if err := writeFileSync(filepath.Join(c.cfg.StateDir, handoverFile), append(b, '\n'), 0o644); err != nil {
		return Anchor{}, fmt.Errorf("device: store handover: %w", err)
	}
	c.log.Info("device trusts the root its vendor handed over", "vendor_key", a.VendorKey, "root", a.RootName, "log_entry", a.LogEntry)
	return a, nil
}

// vendorTrust reads the vendor's key: a PEM public key, or CA
// certificates.
func vendorTrust(b []byte) (handover.Trust, error) {
	if blk, _ := pem.Decode(b); blk != nil && blk.Type == "PUBLIC KEY" {
		k, err := handover.ParsePublicKey(b)
		return handover.Trust{Key: k}, err
	}
	cas, err := handover.ParseCertificates(b)
	if err != nil {
		return handover.Trust{}, errs.Wrap(errs.Invalid, err, "device: the vendor key is neither a PEM public key nor PEM CA certificates")
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return handover.Trust{Roots: pool}, nil
}

var rootName = regexp.MustCompile(`^[1-9][0-9]{0,8}\.root\.json$`)

// verifyHandover fetches and checks this device's handover: it returns
// what it learnt, the root to pin, that root's log policy and the
// checkpoint that proved the statement's entry.
func (c *client) verifyHandover(ctx context.Context, trust handover.Trust) (Anchor, []byte, verify.Policy, verify.Checkpoint, error) {
	var none verify.Checkpoint
	product, deviceID := c.st.Product, c.st.DeviceID
	if product == "" || deviceID == "" {
		return Anchor{}, nil, verify.Policy{}, none, errs.E(errs.Invalid, "device: the vendor's handover is looked up by product and device id: give --product and --id")
	}
	refuse := func(cause error, format string, args ...any) error {
		return errs.Wrap(errs.Forbidden, cause, "device: refusing the handover of %s: "+format, append([]any{product}, args...)...)
	}
	q := url.Values{"id": {deviceID}}.Encode()
	env, err := c.getRaw(ctx, "/v1/products/"+url.PathEscape(product)+"/handover?"+q)
	if err != nil {
		return Anchor{}, nil, verify.Policy{}, none, fmt.Errorf("device: fetch the handover statement: %w", err)
	}
	// The statement names the root to fetch; nothing it says is trusted
	// until its signature and log entry verify below.
	claimed, err := handover.ReadUnverified(env)
	if err != nil {
		return Anchor{}, nil, verify.Policy{}, none, err
	}
	if !rootName.MatchString(claimed.Root.Name) {
		return Anchor{}, nil, verify.Policy{}, none, errs.E(errs.Invalid, "device: the statement's root name %.40q is not <version>.root.json", claimed.Root.Name)
	}
	rootJSON, err := c.get(ctx, c.tufURL+"/"+claimed.Root.Name, 512<<10)
	if err != nil {
		return Anchor{}, nil, verify.Policy{}, none, fmt.Errorf("device: fetch the root the handover names: %w", err)
	}
	if sum := sha256.Sum256(rootJSON); hex.EncodeToString(sum[:]) != claimed.Root.SHA256 {
		return Anchor{}, nil, verify.Policy{}, none, refuse(ErrRootMismatch, "the registry's %s has sha256 %x; the statement names %s", claimed.Root.Name, sum, claimed.Root.SHA256)
	}
	// The root is the statement's subject; its log policy is what the
	// statement's log entry must be proved under. The signature over
	// both is the vendor's, checked below with the entry's time.
	pol, ok, err := rootLogPolicy(rootJSON)
	if err != nil {
		return Anchor{}, nil, verify.Policy{}, none, err
	}
	if !ok {
		return Anchor{}, nil, verify.Policy{}, none, refuse(ErrHandoverNotLogged, "root %s carries no log policy (field %s), so the statement's log entry cannot be checked", claimed.Root.Name, LogPolicyField)
	}
	envSum := sha256.Sum256(env)
	envDigest := hex.EncodeToString(envSum[:])
	entry, bundle, err := c.firstHandoverEntry(ctx, pol, product, deviceID)
	switch {
	case err != nil:
		return Anchor{}, nil, verify.Policy{}, none, refuse(fmt.Errorf("%w: %w", ErrHandoverNotLogged, err), "%s", err.Error())
	case entry == nil:
		return Anchor{}, nil, verify.Policy{}, none, refuse(ErrHandoverNotLogged, "no entry of the log hands over device id %s", deviceID)
	case entry.Statement != envDigest:
		return Anchor{}, nil, verify.Policy{}, none, refuse(ErrHandoverSuperseded, "log entry %d handed device id %s over first, by statement %s; the registry serves statement %s, and the first handover wins",
			bundle.Index, deviceID, entry.Statement, envDigest)
	}
	at, err := time.Parse(time.RFC3339Nano, entry.At)
	if err != nil {
		return Anchor{}, nil, verify.Policy{}, none, refuse(ErrHandoverNotLogged, "log entry %d has no time", bundle.Index)
	}
	v, err := handover.Verify(ctx, env, trust, at)
	if err != nil {
		return Anchor{}, nil, verify.Policy{}, none, refuse(fmt.Errorf("%w: %w", ErrNotVendorSigned, err), "%s", errs.Message(err))
	}
	if v.Predicate.Product != product || !v.Covers(deviceID) || v.Root != claimed.Root || entry.RootSHA256 != v.Root.SHA256 {
		return Anchor{}, nil, verify.Policy{}, none, refuse(ErrNotVendorSigned, "the statement hands over %s %v to root %s, not device id %s of %s", v.Predicate.Product, v.Predicate.DeviceIDs, v.Root.SHA256, deviceID, product)
	}
	return Anchor{
		VendorKey: v.Predicate.VendorKey.Fingerprint, StatementSHA256: envDigest, RootName: v.Root.Name, RootSHA256: v.Root.SHA256,
		LogEntry: bundle.Index, LoggedAt: at,
	}, rootJSON, pol, bundle.Checkpoint, nil
}

// handoverEntry is what the device reads of a handover log entry.
type handoverEntry struct {
	Type       string   `json:"type"`
	At         string   `json:"at"`
	Product    string   `json:"product"`
	Statement  string   `json:"statement_sha256"`
	RootSHA256 string   `json:"root_sha256"`
	DeviceIDs  []string `json:"device_ids"`
}

// firstHandoverEntry returns the earliest handover entry about product
// that claims deviceID, each entry proved under pol; nil when none does.
// An entry whose proof does not verify is an error: it might be the
// earliest claim.
func (c *client) firstHandoverEntry(ctx context.Context, pol verify.Policy, product, deviceID string) (*handoverEntry, verify.Bundle, error) {
	var listed []struct {
		Index int64  `json:"index"`
		Type  string `json:"type"`
	}
	if err := c.getJSON(ctx, "/v1/log/about/"+url.PathEscape(product), &listed); err != nil {
		return nil, verify.Bundle{}, err
	}
	want, err := handover.NormalizeDeviceID(deviceID)
	if err != nil {
		return nil, verify.Bundle{}, err
	}
	for _, l := range listed {
		if l.Type != HandoverEntryType {
			continue
		}
		raw, err := c.getRaw(ctx, "/v1/log/entries/"+strconv.FormatInt(l.Index, 10)+"/proof")
		if errs.Is(err, errs.NotFound) {
			// Not in a witnessed checkpoint yet, and neither is any later
			// entry: none of them can be proved now.
			break
		}
		if err != nil {
			return nil, verify.Bundle{}, err
		}
		b, err := pol.Bundle(raw)
		if err != nil {
			return nil, verify.Bundle{}, fmt.Errorf("the log's proof of entry %d does not verify: %w", l.Index, err)
		}
		if b.Index != l.Index {
			return nil, verify.Bundle{}, fmt.Errorf("the log's proof of entry %d proves entry %d", l.Index, b.Index)
		}
		var e handoverEntry
		if err := json.NewDecoder(bytes.NewReader(b.Entry)).Decode(&e); err != nil || e.Type != HandoverEntryType || e.Product != product {
			continue
		}
		for _, id := range e.DeviceIDs {
			if n, err := handover.NormalizeDeviceID(id); err == nil && n == want {
				return &e, b, nil
			}
		}
	}
	return nil, verify.Bundle{}, nil
}
