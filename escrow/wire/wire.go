// Package wire holds the escrow's API shapes that the server and the
// vendor's client share. It is a format package: it links no server code
// (no web framework, database driver or migration tool), so a vendor's
// client that imports it stays small.
package wire

import (
	"time"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
)

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
}
