// Package handover is the format of the handover statement: the vendor's
// own update-signing key vouching, in an in-toto Statement inside a DSSE
// envelope, for the community registry's TUF root. It signs statements and
// verifies them, with a public key a device already holds, with the CA
// certificates it trusts (as of a given time), or, for the escrow at
// deposit, with the key the statement declares.
//
// Devices and vendors' laptops import it, so it must never link server
// code: no web framework, database driver or migration tool, and no other
// afterlife package but internal/errs. It does not know deposits, logs or
// registries; callers check what the statement names against those.
package handover

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

const (
	// PayloadType is the DSSE payload type of an in-toto statement.
	PayloadType = "application/vnd.in-toto+json"
	// PredicateType names the afterlife handover predicate, version 1.
	PredicateType = "https://afterlife.dev/handover/v1"
	// TakesEffectOnRelease is the one condition version 1 knows: the
	// statement takes effect when the escrow deposit carrying it is
	// released by its release policy, and not before.
	TakesEffectOnRelease = "release-of-carrying-deposit"
	// ScopeUpdates is the one scope version 1 knows: the community root
	// may sign firmware updates for the listed device ids, and nothing
	// else of the vendor's (no other products, no vendor accounts).
	ScopeUpdates = "firmware-updates"
	// MaxEnvelopeSize bounds an envelope any function here reads.
	MaxEnvelopeSize = 256 << 10

	maxDeviceIDs   = 64
	maxDeviceIDLen = 200
	maxRevisions   = 64
	maxRevisionLen = 64
	maxCerts       = 8
)

// Root is the statement's one subject: a version of the community TUF
// root metadata, by name ("3.root.json") and the sha256 of its exact bytes.
type Root struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// RootSubject names root metadata bytes as a subject: "<version>.root.json"
// and their sha256. It reads the version only; it does not verify the root
// (the registry does, when it publishes it; a device, when it pins it).
func RootSubject(rootJSON []byte) (Root, error) {
	var m struct {
		Signed struct {
			Type    string `json:"_type"`
			Version int64  `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(rootJSON, &m); err != nil {
		return Root{}, errs.Wrap(errs.Invalid, err, "handover: root metadata is not JSON")
	}
	if m.Signed.Type != "root" || m.Signed.Version < 1 {
		return Root{}, errs.E(errs.Invalid, "handover: the file is not TUF root metadata (type %q, version %d)", m.Signed.Type, m.Signed.Version)
	}
	sum := sha256.Sum256(rootJSON)
	return Root{Name: fmt.Sprintf("%d.root.json", m.Signed.Version), SHA256: hex.EncodeToString(sum[:])}, nil
}

// VendorKey is the key that signs the statement, as the statement
// declares it.
type VendorKey struct {
	// Algorithm is one of the Algorithm constants.
	Algorithm string `json:"algorithm"`
	// PublicKey is the key in PEM (PKIX "PUBLIC KEY").
	PublicKey string `json:"publicKey"`
	// Fingerprint is "sha256:" and the hex SHA-256 of the key's DER
	// (SubjectPublicKeyInfo); the DSSE signature's keyid is the same.
	Fingerprint string `json:"fingerprint"`
	// Certificates, when the vendor's devices trust a CA rather than a
	// bare key, is the chain in PEM, the signing key's certificate first,
	// up to (not necessarily including) the CA the devices hold.
	Certificates []string `json:"certificates,omitempty"`
}

// Predicate is the handover predicate, version 1.
type Predicate struct {
	// Product is the registry's product id.
	Product string `json:"product"`
	// DeviceIDs are the ids the vendor's devices report, each claimed by
	// the first handover logged for it.
	DeviceIDs []string `json:"deviceIds"`
	// HardwareRevisions the handover covers; empty means all.
	HardwareRevisions []string `json:"hardwareRevisions,omitempty"`
	// TakesEffect is the condition; TakesEffectOnRelease.
	TakesEffect string `json:"takesEffect"`
	// Scope is what the community root may sign; ScopeUpdates.
	Scope string `json:"scope"`
	// VendorKey is the key the statement is signed with.
	VendorKey VendorKey `json:"vendorKey"`
}

// Statement is a handover: the root it names and its predicate.
type Statement struct {
	Root      Root
	Predicate Predicate
}

// Validate checks the fields a signer chooses (not the key, which Sign
// fills in): a well-formed root digest, a product, device ids, and the
// condition and scope version 1 knows.
func (st Statement) Validate() error {
	if st.Root.Name == "" {
		return errs.E(errs.Invalid, "handover: the root subject has no name")
	}
	if d, err := hex.DecodeString(st.Root.SHA256); err != nil || len(d) != sha256.Size || st.Root.SHA256 != strings.ToLower(st.Root.SHA256) {
		return errs.E(errs.Invalid, "handover: root digest %q is not 64 lower-case hex digits", st.Root.SHA256)
	}
	p := st.Predicate
	if p.Product == "" {
		return errs.E(errs.Invalid, "handover: no product")
	}
	if len(p.DeviceIDs) == 0 {
		return errs.E(errs.Invalid, "handover: no device ids; the statement hands over the devices that report them")
	}
	if len(p.DeviceIDs) > maxDeviceIDs {
		return errs.E(errs.Invalid, "handover: %d device ids, at most %d", len(p.DeviceIDs), maxDeviceIDs)
	}
	seen := map[string]bool{}
	for _, id := range p.DeviceIDs {
		n, err := NormalizeDeviceID(id)
		if err != nil {
			return err
		}
		if seen[n] {
			return errs.E(errs.Invalid, "handover: device id %q is listed twice", id)
		}
		seen[n] = true
	}
	if len(p.HardwareRevisions) > maxRevisions {
		return errs.E(errs.Invalid, "handover: %d hardware revisions, at most %d", len(p.HardwareRevisions), maxRevisions)
	}
	for _, r := range p.HardwareRevisions {
		if r == "" || len(r) > maxRevisionLen {
			return errs.E(errs.Invalid, "handover: hardware revision %.32q: 1 to %d bytes", r, maxRevisionLen)
		}
	}
	if p.TakesEffect != TakesEffectOnRelease {
		return errs.E(errs.Invalid, "handover: condition %q: version 1 knows only %q", p.TakesEffect, TakesEffectOnRelease)
	}
	if p.Scope != ScopeUpdates {
		return errs.E(errs.Invalid, "handover: scope %q: version 1 knows only %q", p.Scope, ScopeUpdates)
	}
	return nil
}

// NormalizeDeviceID checks that id is "scheme:value" (printable ASCII, no
// spaces) and lowercases the scheme, so ids compare as the registry
// compares them.
func NormalizeDeviceID(id string) (string, error) {
	sch, val, ok := strings.Cut(id, ":")
	if !ok || sch == "" || val == "" || len(id) > maxDeviceIDLen {
		return "", errs.E(errs.Invalid, "handover: device id %.64q: want scheme:value of at most %d bytes", id, maxDeviceIDLen)
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c > '~' {
			return "", errs.E(errs.Invalid, "handover: device id %.64q: printable ASCII without spaces only", id)
		}
	}
	return strings.ToLower(sch) + ":" + val, nil
}

// Covers reports whether the statement lists deviceID.
func (st Statement) Covers(deviceID string) bool {
	n, err := NormalizeDeviceID(deviceID)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(st.Predicate.DeviceIDs, func(id string) bool {
		m, err := NormalizeDeviceID(id)
		return err == nil && m == n
	})
}
