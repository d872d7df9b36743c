package tuf

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// A root held by custodians: the root role is a threshold of offline
// keys (for example 2 of 3), each on a different person's machine. A new
// root version goes through three steps: an admin proposes it (the next
// version with its root keys, threshold and the current online keys:
// ProposeRoot, or RotateOrPropose for an online key), each custodian signs
// the proposal offline (SignRootProposal), and an admin publishes the
// signed proposal (PublishRoot), which the repository accepts only with a
// threshold of the previous root's keys and of the new root's own keys, as
// TUF clients require before they walk from one root to the next.

// maxRootSize bounds a root proposal read from outside.
const maxRootSize = 1 << 20

// proposedKeyPath is where a proposed online key waits for the root
// version that lists it: "<dir>/<role>.key.proposed-<version>".
func proposedKeyPath(dir, role string, version int64) string {
	return keyPath(dir, role) + ".proposed-" + strconv.FormatInt(version, 10)
}

// settleProposed installs a proposed key for role once the root of its
// version lists it (a publication that stopped before installing it).
func settleProposed(dir, role string, root *metadata.Metadata[metadata.RootType]) error {
	path := proposedKeyPath(dir, role, root.Signed.Version)
	k, err := readKey(path)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !listedIn(root, role)(k.id) {
		return nil
	}
	return installProposed(dir, role, path)
}

func installProposed(dir, role, path string) error {
	if err := retireKey(dir, role); err != nil {
		return err
	}
	if err := os.Rename(path, keyPath(dir, role)); err != nil {
		return fmt.Errorf("tuf: install proposed %s key: %w", role, err)
	}
	return nil
}

// dropStaleProposals removes proposed keys for root versions up to
// version: their proposals can no longer be published.
func dropStaleProposals(dir string, version int64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		_, v, ok := strings.Cut(e.Name(), ".key.proposed-")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n <= version {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Custody describes who holds the current root.
type Custody struct {
	Version   int64 // the root version
	Threshold int   // signatures a new root needs from this one's keys
	Keys      int   // root keys listed
	// ServerKey is set when the key dir holds a root key the root lists.
	ServerKey bool
}

// SingleKey reports whether one key, which the server holds, can sign a
// new root alone: the embedded default, not a root that outlives its
// operator.
func (c Custody) SingleKey() bool { return c.Threshold <= 1 && c.ServerKey }

// Custody reports who holds the current root.
func (r *Repo) Custody(ctx context.Context) (Custody, error) {
	root, err := getMeta[metadata.RootType](ctx, r.store, "root.json")
	if err != nil {
		return Custody{}, err
	}
	rl := root.Signed.Roles[metadata.ROOT]
	c := Custody{Version: root.Signed.Version, Threshold: rl.Threshold, Keys: len(rl.KeyIDs)}
	if k, err := readKey(keyPath(r.keyDir, metadata.ROOT)); err == nil {
		c.ServerKey = slices.Contains(rl.KeyIDs, k.id)
	}
	return c, nil
}

// PublishRoot publishes a signed root proposal as the next root version.
// It refuses (errs.Invalid) a root that is not signed by a threshold of
// the current root's keys and by a threshold of its own root keys, that
// has expired, or that lists an online key this server does not hold (a
// proposed key is held as "<role>.key.proposed-<N>" by the replica that
// proposed it); a proposal for another version than the next is
// errs.Conflict. An online key that the root changes becomes current, and
// what it signs is re-signed; the timestamp is always re-signed. Callers
// hold the same lock as for Apply.
func (r *Repo) PublishRoot(ctx context.Context, data []byte) (int64, error) {
	if len(data) > maxRootSize {
		return 0, errs.E(errs.TooLarge, "tuf: root proposal is %d bytes, limit %d", len(data), maxRootSize)
	}
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(data)
	if err != nil {
		return 0, errs.Wrap(errs.Invalid, err, "tuf: the proposal is not TUF root metadata")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.load(ctx)
	if err != nil {
		return 0, err
	}
	if err := r.syncKeys(st); err != nil {
		return 0, err
	}
	if err := checkNextRoot(st.root, root, r.o.Now()); err != nil {
		return 0, err
	}
	next := root.Signed.Version
	newKeys := map[string]*roleKey{}
	proposed := map[string]string{}
	for _, role := range onlineRoles {
		rl := root.Signed.Roles[role]
		if rl == nil || len(rl.KeyIDs) != 1 || rl.Threshold != 1 {
			return 0, errs.E(errs.Invalid, "tuf: root version %d: the server signs %s with one key of threshold 1", next, role)
		}
		id := rl.KeyIDs[0]
		if id == r.keys[role].id {
			continue
		}
		path := proposedKeyPath(r.keyDir, role, next)
		k, err := readKey(path)
		if err != nil || k.id != id {
			return 0, errs.E(errs.Invalid, "tuf: root version %d lists a %s key (%.12s…) this server does not hold; an online key is changed by afterlife admin keys rotate, on the replica that keeps its proposed key", next, role, id)
		}
		newKeys[role] = k
		proposed[role] = path
	}
	if err := r.publishRoot(ctx, st, root, newKeys); err != nil {
		return 0, fmt.Errorf("tuf: publish root version %d: %w", next, err)
	}
	for _, role := range onlineRoles {
		if path, ok := proposed[role]; ok {
			if err := installProposed(r.keyDir, role, path); err != nil {
				return 0, err
			}
		}
	}
	dropStaleProposals(r.keyDir, next)
	rl := root.Signed.Roles[metadata.ROOT]
	r.o.Logger.Info("tuf root published", "root_version", next, "threshold", rl.Threshold, "root_keys", len(rl.KeyIDs), "online_keys_changed", len(newKeys))
	return next, nil
}

// checkNextRoot refuses a root that may not follow cur: not the next
// version, expired, without consistent snapshots, with a root role no
// threshold can meet, or not signed by a threshold of cur's root keys and
// of its own, as TUF clients require before they walk from one to the next.
func checkNextRoot(cur, root *metadata.Metadata[metadata.RootType], now time.Time) error {
	cv, next := cur.Signed.Version, root.Signed.Version
	if next != cv+1 {
		return errs.E(errs.Conflict, "tuf: the proposal is root version %d, the current root is version %d: propose version %d", next, cv, cv+1)
	}
	if !root.Signed.Expires.After(now) {
		return errs.E(errs.Invalid, "tuf: root version %d expired at %s", next, root.Signed.Expires.Format(time.RFC3339))
	}
	if !root.Signed.ConsistentSnapshot {
		return errs.E(errs.Invalid, "tuf: root version %d turns consistent snapshots off; the registry serves only consistent snapshots", next)
	}
	if err := checkRootRole(root); err != nil {
		return err
	}
	if err := cur.VerifyDelegate(metadata.ROOT, root); err != nil {
		return errs.Wrap(errs.Invalid, err, "tuf: root version %d is not signed by %d of the %d keys of the current root version %d: it has %d valid signatures of them",
			next, cur.Signed.Roles[metadata.ROOT].Threshold, len(cur.Signed.Roles[metadata.ROOT].KeyIDs), cv, validRootSignatures(cur, root))
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return errs.Wrap(errs.Invalid, err, "tuf: root version %d is not signed by %d of its own %d root keys: it has %d valid signatures of them",
			next, root.Signed.Roles[metadata.ROOT].Threshold, len(root.Signed.Roles[metadata.ROOT].KeyIDs), validRootSignatures(root, root))
	}
	return nil
}

// validRootSignatures counts the root keys of by whose signature root
// verifies, each key once, for a refusal that says how far it got. It
// asks go-tuf one key at a time (a threshold of 1).
func validRootSignatures(by, root *metadata.Metadata[metadata.RootType]) int {
	n := 0
	for _, id := range by.Signed.Roles[metadata.ROOT].KeyIDs {
		one := *by
		one.Signed.Roles = map[string]*metadata.Role{metadata.ROOT: {KeyIDs: []string{id}, Threshold: 1}}
		if one.VerifyDelegate(metadata.ROOT, root) == nil {
			n++
		}
	}
	return n
}

// checkRootRole refuses a root role no threshold can meet.
func checkRootRole(root *metadata.Metadata[metadata.RootType]) error {
	rl := root.Signed.Roles[metadata.ROOT]
	if rl == nil || rl.Threshold < 1 || rl.Threshold > len(rl.KeyIDs) {
		return errs.E(errs.Invalid, "tuf: root version %d: the root role needs a threshold between 1 and its number of keys", root.Signed.Version)
	}
	for _, id := range rl.KeyIDs {
		if _, ok := root.Signed.Keys[id]; !ok {
			return errs.E(errs.Invalid, "tuf: root version %d lists root key %.12s… without the key", root.Signed.Version, id)
		}
	}
	return nil
}

// ProposeRoot returns the next root version after current as an unsigned
// proposal: root keys rootKeys with the given threshold, the online keys
// of current unchanged, expiring at expires. It works offline, from the
// current root.json.
func ProposeRoot(current []byte, rootKeys []*metadata.Key, threshold int, expires time.Time) ([]byte, error) {
	cur, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(current)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "tuf: the current root is not TUF root metadata")
	}
	if len(rootKeys) == 0 {
		return nil, errs.E(errs.Invalid, "tuf: a root needs at least one root key")
	}
	if threshold < 1 || threshold > len(rootKeys) {
		return nil, errs.E(errs.Invalid, "tuf: threshold %d with %d root keys: want 1 to %d", threshold, len(rootKeys), len(rootKeys))
	}
	root, err := copyRoot(cur)
	if err != nil {
		return nil, err
	}
	root.Signed.Version++
	root.Signed.Expires = expires.UTC().Truncate(time.Second)
	root.ClearSignatures()
	for _, id := range slices.Clone(root.Signed.Roles[metadata.ROOT].KeyIDs) {
		if err := root.Signed.RevokeKey(id, metadata.ROOT); err != nil {
			return nil, fmt.Errorf("tuf: propose root: %w", err)
		}
	}
	seen := map[string]bool{}
	for _, k := range rootKeys {
		id, err := k.ID()
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "tuf: root key")
		}
		if seen[id] {
			return nil, errs.E(errs.Invalid, "tuf: root key %.12s… is given twice", id)
		}
		seen[id] = true
		if err := root.Signed.AddKey(k, metadata.ROOT); err != nil {
			return nil, fmt.Errorf("tuf: propose root: %w", err)
		}
	}
	root.Signed.Roles[metadata.ROOT].Threshold = threshold
	b, err := root.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("tuf: encode proposal: %w", err)
	}
	return b, nil
}

// GenerateCustodianKey makes an ed25519 root key for a custodian: the
// private key in PEM (PKCS#8), for an offline machine, and the public key
// in PEM (PKIX), for the proposal. id is its TUF key id.
func GenerateCustodianKey() (private, public []byte, id string, err error) {
	k, err := generateRoleKey()
	if err != nil {
		return nil, nil, "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, nil, "", fmt.Errorf("tuf: encode key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		return nil, nil, "", fmt.Errorf("tuf: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), k.id, nil
}

// ParseRootKey reads a custodian's public key (PEM, PKIX, ed25519) as a
// TUF key.
func ParseRootKey(pemBytes []byte) (*metadata.Key, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errs.E(errs.Invalid, "tuf: not a PEM public key")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "tuf: public key")
	}
	if _, ok := pub.(ed25519.PublicKey); !ok {
		return nil, errs.E(errs.Invalid, "tuf: root keys are ed25519, not %T", pub)
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "tuf: public key")
	}
	return k, nil
}

// SignRootProposal adds the signature of the key in keyFile (a
// custodian's key, or the single root.key of the embedded default) to a
// root proposal, replacing an earlier signature by the same key. It works
// offline. keyID is the key's TUF id.
func SignRootProposal(proposal []byte, keyFile string) (signed []byte, keyID string, err error) {
	root, err := readProposal(proposal)
	if err != nil {
		return nil, "", err
	}
	k, err := readKey(keyFile)
	if err != nil {
		return nil, "", err
	}
	root.Signatures = slices.DeleteFunc(root.Signatures, func(s metadata.Signature) bool { return s.KeyID == k.id })
	if _, err := root.Sign(k.signer); err != nil {
		return nil, "", fmt.Errorf("tuf: sign proposal: %w", err)
	}
	b, err := root.ToBytes(true)
	if err != nil {
		return nil, "", fmt.Errorf("tuf: encode proposal: %w", err)
	}
	return b, k.id, nil
}

// MergeRootProposals collects the signatures of copies of one proposal,
// signed on different machines, into one. Every copy must propose the
// same root, byte for byte in canonical form.
func MergeRootProposals(copies ...[]byte) ([]byte, error) {
	if len(copies) == 0 {
		return nil, errs.E(errs.Invalid, "tuf: no proposal given")
	}
	var merged *metadata.Metadata[metadata.RootType]
	var want []byte
	for i, c := range copies {
		root, err := readProposal(c)
		if err != nil {
			return nil, fmt.Errorf("tuf: proposal %d: %w", i+1, err)
		}
		canon, err := cjson.EncodeCanonical(root.Signed)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "tuf: proposal %d", i+1)
		}
		if merged == nil {
			merged, want = root, canon
			continue
		}
		if !bytes.Equal(canon, want) {
			return nil, errs.E(errs.Invalid, "tuf: proposal %d proposes another root than proposal 1; sign one proposal", i+1)
		}
		for _, s := range root.Signatures {
			if !slices.ContainsFunc(merged.Signatures, func(m metadata.Signature) bool { return m.KeyID == s.KeyID }) {
				merged.Signatures = append(merged.Signatures, s)
			}
		}
	}
	b, err := merged.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("tuf: encode proposal: %w", err)
	}
	return b, nil
}

func readProposal(b []byte) (*metadata.Metadata[metadata.RootType], error) {
	if len(b) > maxRootSize {
		return nil, errs.E(errs.TooLarge, "tuf: root proposal is %d bytes, limit %d", len(b), maxRootSize)
	}
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(b)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "tuf: not a TUF root proposal")
	}
	return root, nil
}

// RootSummary is what a custodian reads before signing a proposal.
type RootSummary struct {
	Version   int64               `json:"version"`
	Expires   time.Time           `json:"expires"`
	Threshold int                 `json:"threshold"`
	RootKeys  []string            `json:"root_keys"`
	Online    map[string][]string `json:"online_keys"` // role → key ids
	SignedBy  []string            `json:"signed_by"`   // key ids with a signature (not verified)
}

// DescribeRoot summarises root metadata (a proposal or a published root)
// without verifying its signatures.
func DescribeRoot(b []byte) (RootSummary, error) {
	root, err := readProposal(b)
	if err != nil {
		return RootSummary{}, err
	}
	rl := root.Signed.Roles[metadata.ROOT]
	s := RootSummary{Version: root.Signed.Version, Expires: root.Signed.Expires, Online: map[string][]string{}}
	if rl != nil {
		s.Threshold, s.RootKeys = rl.Threshold, slices.Clone(rl.KeyIDs)
	}
	for _, role := range onlineRoles {
		if r := root.Signed.Roles[role]; r != nil {
			s.Online[role] = slices.Clone(r.KeyIDs)
		}
	}
	for _, sig := range root.Signatures {
		s.SignedBy = append(s.SignedBy, sig.KeyID)
	}
	return s, nil
}

// String is the summary as a custodian reads it.
func (s RootSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "root version %d, expires %s\n", s.Version, s.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "root keys (a new root needs %d of these %d):\n", s.Threshold, len(s.RootKeys))
	for _, id := range s.RootKeys {
		fmt.Fprintf(&b, "  %s\n", id)
	}
	for _, role := range onlineRoles {
		fmt.Fprintf(&b, "%s key: %s\n", role, strings.Join(s.Online[role], ", "))
	}
	fmt.Fprintf(&b, "signatures: %d\n", len(s.SignedBy))
	return b.String()
}

// RootVersion returns the version of the published root whose bytes hash
// to sha256 (lower-case hex), or errs.NotFound: whether a handover
// statement names one of this registry's roots.
func (r *Repo) RootVersion(ctx context.Context, sha256Hex string) (int64, error) {
	cur, err := getMeta[metadata.RootType](ctx, r.store, "root.json")
	if err != nil {
		return 0, err
	}
	for v := cur.Signed.Version; v >= 1; v-- {
		b, err := r.store.GetMeta(ctx, fmt.Sprintf("%d.root.json", v))
		if err != nil {
			return 0, fmt.Errorf("tuf: root version %d: %w", v, err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) == sha256Hex {
			return v, nil
		}
	}
	return 0, errs.E(errs.NotFound, "no root version of this registry has sha256 %s", sha256Hex)
}
