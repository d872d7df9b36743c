package device

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/version"
)

// SchemaVersion is the version of the signed target fields below; a
// target whose custom field lacks "afterlife": 1 predates them and is
// refused. docs/tuf.md is the schema's reference.
const SchemaVersion = 1

// TargetMeta is what the registry signs about a firmware file: the
// "custom" field of its entry in the TUF targets metadata (a hashed bin),
// signed by the targets role. A device acts on these fields only, never on
// the update offer's copy of them.
type TargetMeta struct {
	Schema     int      `json:"afterlife"`
	Product    string   `json:"product"`
	Version    string   `json:"version"`
	Channel    string   `json:"channel"`
	ReleaseID  string   `json:"release_id"`
	Kind       string   `json:"kind"`
	Community  *bool    `json:"community"`
	MinVersion string   `json:"min_version,omitempty"`
	DeviceIDs  []string `json:"device_ids"`
	RiskNotes  string   `json:"risk_notes,omitempty"`
	PulledBack bool     `json:"pulled_back,omitempty"`
	Held       bool     `json:"held,omitempty"` // held for review after failed installs
	// Rollback, when set, allows devices running a newer version, up to
	// and including Rollback.MaxFrom, to install this older one.
	Rollback *SignedRollback `json:"rollback,omitempty"`
	// Yanked marks a release its maintainers withdrew, with the reason:
	// the target stays listed so devices running it learn of the yank.
	Yanked     bool   `json:"yanked,omitempty"`
	YankReason string `json:"yank_reason,omitempty"`
	// RollbackFromYanked allows devices running exactly one of these
	// yanked versions to go back to this older release (yank.go): the
	// newest release their channel still offers. No other downgrade.
	RollbackFromYanked []YankedFrom `json:"rollback_from_yanked,omitempty"`
	// Rollout, when set, limits the release to a share of the fleet that
	// grows in stages (rollout.go).
	Rollout *SignedRollout `json:"rollout,omitempty"`
	// Delta, when set, says this target is a delta (delta.go): applied to
	// the source image it yields the release's full image.
	Delta *SignedDelta `json:"delta,omitempty"`
	// Log, when set, names the release's publication entry in the
	// transparency log: a device whose root carries a log policy checks
	// that entry's proof before it installs (logproof.go).
	Log *SignedLogEntry `json:"log,omitempty"`
}

// SignedLogEntry is where a release's publication sits in the
// transparency log.
type SignedLogEntry struct {
	Index int64 `json:"index"`
}

// SignedRollback is a signed permission to go back to an older version.
type SignedRollback struct {
	MaxFrom string `json:"max_from"`
	Reason  string `json:"reason"`
}

// Custom returns m as the map tuf.Target.Custom carries.
func (m TargetMeta) Custom() map[string]any {
	b, _ := json.Marshal(m) // plain strings, bools and slices: cannot fail
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

// ReleaseList is the signed custom field of the zero-length target
// ReleaseListPath(product): the product's offerable releases, so a device
// can find its update in the TUF metadata alone (a static mirror has no
// update API). Entries only point at targets; the device checks each
// target's own TargetMeta before acting.
type ReleaseList struct {
	Schema   int            `json:"afterlife"`
	Product  string         `json:"product"`
	Releases []ListedTarget `json:"releases"`
	// Yanked are the product's yanked releases with their reasons, kept
	// apart from Releases so that a client which does not know them never
	// picks one.
	Yanked []YankedTarget `json:"yanked,omitempty"`
}

// ListedTarget is one release in a ReleaseList.
type ListedTarget struct {
	Version    string `json:"version"`
	Channel    string `json:"channel"`
	Target     string `json:"target"`
	MinVersion string `json:"min_version,omitempty"`
}

// ReleaseListPath is the target path of a product's release list.
func ReleaseListPath(product string) string { return product + "/releases" }

// Channels.
const (
	channelStable  = "stable"
	channelTesting = "testing"
)

// channelAccepts says whether a device on channel dev may install a
// release signed for channel rel: stable takes stable only, testing takes
// both.
func channelAccepts(dev, rel string) bool {
	if dev == "" {
		dev = channelStable
	}
	return rel == channelStable || (dev == channelTesting && rel == channelTesting)
}

// signedMeta decodes the custom field of a verified target entry.
func signedMeta(info *metadata.TargetFiles) (TargetMeta, error) {
	var m TargetMeta
	if info.Custom == nil {
		return m, errs.E(errs.Forbidden, "device: %s carries no signed release fields (product, version, channel, community); "+
			"it was published before targets were signed with them and is not installed", info.Path)
	}
	if err := json.Unmarshal(*info.Custom, &m); err != nil {
		return m, errs.Wrap(errs.Invalid, err, "device: the signed fields of %s", info.Path)
	}
	switch {
	case m.Schema != SchemaVersion:
		return m, errs.E(errs.Forbidden, "device: %s carries signed release fields of schema %d, this client knows %d; it is not installed", info.Path, m.Schema, SchemaVersion)
	case m.Product == "" || !version.Valid(m.Version) || m.Channel == "" || m.ReleaseID == "":
		return m, errs.E(errs.Forbidden, "device: %s lacks a signed product, version, channel or release id; it is not installed", info.Path)
	case m.Community == nil:
		return m, errs.E(errs.Forbidden, "device: %s does not say in its signed fields whether it is a community release; it is not installed", info.Path)
	case m.MinVersion != "" && !version.Valid(m.MinVersion):
		return m, errs.E(errs.Forbidden, "device: %s has a signed min_version %q that is not a version", info.Path, m.MinVersion)
	}
	return m, nil
}

// sameDeviceID compares device ids as the registry does: the scheme
// before the first ':' is case-insensitive.
func sameDeviceID(a, b string) bool {
	norm := func(s string) string {
		if i := strings.IndexByte(s, ':'); i > 0 {
			return strings.ToLower(s[:i]) + s[i:]
		}
		return s
	}
	return norm(a) == norm(b)
}

// identity is what the device knows about itself, from its own state.
type identity struct {
	deviceID string
	product  string // "" when neither configured nor installed yet
	channel  string
	current  string // the version running now
	accept   bool   // community releases allowed
	bucket   int    // the rollout bucket of the install id (Bucket)
}

// accept decides, from signed fields only, whether the device may install
// the target m describes. Every refusal names what was signed and what the
// device is, so an owner can tell a spoofed offer from a misconfiguration.
func (id identity) acceptTarget(path string, m TargetMeta) error {
	if id.product != "" && m.Product != id.product {
		return errs.E(errs.Forbidden, "device: refused %s: it is signed for product %s, this device runs product %s (--product, config key product)", path, m.Product, id.product)
	}
	if !slices.ContainsFunc(m.DeviceIDs, func(d string) bool { return sameDeviceID(d, id.deviceID) }) {
		return errs.E(errs.Forbidden, "device: refused %s: it is signed for product %s with device ids %s, not for this device (%s); the device id is set with --id (config key device_id)",
			path, m.Product, strings.Join(m.DeviceIDs, ", "), id.deviceID)
	}
	if m.PulledBack {
		return errs.E(errs.Forbidden, "device: refused %s %s: the registry pulled this release back", m.Product, m.Version)
	}
	if m.Held {
		return errs.E(errs.Forbidden, "device: refused %s %s: the registry holds this release for review after failed installs", m.Product, m.Version)
	}
	if m.Yanked {
		return errs.E(errs.Forbidden, "device: refused %s %s: the registry yanked this release: %s", m.Product, m.Version, orNone(m.YankReason))
	}
	if !channelAccepts(id.channel, m.Channel) {
		return errs.E(errs.Forbidden, "device: refused %s %s: it is signed for channel %s, this device follows %s (--channel, config key channel)", m.Product, m.Version, m.Channel, id.channel)
	}
	if c := version.Compare(m.Version, id.current); c == 0 {
		return errs.E(errs.Forbidden, "device: refused %s %s: this device already runs %s", m.Product, m.Version, id.current)
	} else if c < 0 {
		rb := m.Rollback
		allowed := m.rollsBackFromYanked(id.current) || (rb != nil && version.Valid(rb.MaxFrom) && version.Compare(id.current, rb.MaxFrom) <= 0)
		if !allowed {
			return errs.E(errs.Forbidden, "device: refused %s %s: this device runs %s and the signed metadata allows no downgrade to it",
				m.Product, m.Version, id.current)
		}
	}
	if m.MinVersion != "" && version.Compare(id.current, m.MinVersion) < 0 {
		return errs.E(errs.Forbidden, "device: refused %s %s: it is signed to install only over %s or newer, this device runs %s",
			m.Product, m.Version, m.MinVersion, id.current)
	}
	if *m.Community && !id.accept {
		return needsOptIn{errs.E(errs.Forbidden,
			"device: %s %s is a community release (so says its signed metadata), built by the community after the vendor's end of life and not by the vendor; "+
				"installing it needs the owner's opt-in, given once and remembered: --accept-community-firmware (config key accept_community). Risk notes: %s", m.Product, m.Version, orNone(m.RiskNotes))}
	}
	return nil
}

// needsOptIn marks the refusal of a community release for want of the
// owner's opt-in, so status can warn about it.
type needsOptIn struct{ error }

func (e needsOptIn) Unwrap() error { return e.error }

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "none given"
	}
	return strings.TrimSpace(s)
}
