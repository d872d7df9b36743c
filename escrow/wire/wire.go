// Package wire holds the escrow's API shapes that the server and the
// vendor's client share. It is a format package: it links no server code
// (no web framework, database driver or migration tool), so a vendor's
// client that imports it stays small.
package wire

import (
	"time"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
)

// HandoverFile is the path at which a deposit carries its handover
// statement (a DSSE envelope, docs/handover.md): the escrow checks it at
// upload, seals it with the rest and releases it with the deposit.
const HandoverFile = "afterlife-handover.dsse.json"

// BridgeFile is the path at which a deposit may carry a bridge image: the
// vendor's own last firmware, signed with its own key, that carries the
// afterlife device client and the community root. Released with a handover
// statement that took effect, it is served unchanged at
// /v1/products/<id>/bridge (docs/handover.md).
const BridgeFile = "afterlife-bridge.img"

// MaxHandoverSize bounds the handover file.
const MaxHandoverSize = 256 << 10

// Handover is a deposit's handover statement as the API shows it.
type Handover struct {
	Deposit     string   `json:"deposit"`
	Product     string   `json:"product"`
	State       string   `json:"state"` // none, checked, claimed, revoked
	VendorKey   string   `json:"vendor_key"`
	RootName    string   `json:"root_name"`
	RootSHA256  string   `json:"root_sha256"`
	RootVersion int64    `json:"root_version"`
	DeviceIDs   []string `json:"device_ids"`
	// EnvelopeSHA256 is the sha256 of the statement file.
	EnvelopeSHA256 string    `json:"envelope_sha256"`
	CheckedAt      time.Time `json:"checked_at"`
	RevokedAt      time.Time `json:"revoked_at,omitzero"`
}

// State is where a deposit is in its life.
type State string

// Deposit states.
const (
	Uploading State = "uploading" // files arriving; visible to its org only
	Sealed    State = "sealed"    // committed, encrypted, private
	Released  State = "released"  // public
)

// Deposit is one sunset package as the API shows it.
type Deposit struct {
	ID             string           `json:"id"`
	Product        string           `json:"product"`
	Org            string           `json:"org"`
	Policy         string           `json:"policy"`
	State          State            `json:"state"`
	ManifestDigest string           `json:"manifest_digest"`
	Files          int              `json:"files"`
	TotalSize      int64            `json:"total_size"`
	CreatedBy      string           `json:"created_by"`
	CreatedAt      time.Time        `json:"created_at"`
	SealedAt       time.Time        `json:"sealed_at,omitzero"`
	ReleasedAt     time.Time        `json:"released_at,omitzero"`
	ReleasedBy     string           `json:"released_by,omitempty"`
	Fired          string           `json:"fired,omitempty"`
	Manifest       []manifest.Entry `json:"manifest,omitempty"`
	// Approvals names the trustees who approved a sealed quorum deposit
	// so far (null for other policies).
	Approvals []string `json:"approvals"`
	// Rights are the vendor's rights rules in order: the last rule that
	// matches a path gives its class, and a path none matches is private.
	// Each manifest entry shows the class it got.
	Rights []manifest.RightsRule `json:"rights"`
	// Grant is the vendor's grant text: the licence or written permission
	// under which public and build-only files may be used.
	Grant string `json:"grant,omitempty"`
	// ShippedImage is the path of the file that holds the image the vendor
	// last shipped (always private), and CompletenessRecipe the path of the
	// recipe file, both in this deposit, that the sealed completeness check
	// rebuilds it with. Shown to the vendor and admins only.
	ShippedImage       string `json:"shipped_image,omitempty"`
	CompletenessRecipe string `json:"completeness_recipe,omitempty"`
}
