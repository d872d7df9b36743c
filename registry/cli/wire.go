package cli

import (
	"time"

	"github.com/afterlife-oss/afterlife/registry/device"
)

// The API's JSON as these commands send and read it. The server's types
// live in packages that link the database, so a client keeps its own view:
// requests in full, answers as far as the commands print them. wire_test.go
// holds them to the server's types.

// publishRequest is registry.PublishRequest.
type publishRequest struct {
	BuildID    string                `json:"build_id"`
	Product    string                `json:"product"`
	Version    string                `json:"version"`
	Channel    string                `json:"channel"`
	Notes      string                `json:"notes"`
	MinVersion string                `json:"min_version"`
	Rollout    []device.RolloutStage `json:"rollout,omitempty"`
}

// rolloutRequest is registry.RolloutRequest.
type rolloutRequest struct {
	Stages []device.RolloutStage `json:"stages"`
}

// rollout is what the commands print of registry.Rollout.
type rollout struct {
	State   string                `json:"state"`
	Stages  []device.RolloutStage `json:"stages"`
	Stage   int                   `json:"stage"`
	Percent int                   `json:"percent"`
}

// reviewRequest is registry.ReviewRequest.
type reviewRequest struct {
	Reason string `json:"reason"`
}

// release is what the commands print of registry.Release.
type release struct {
	ID          string    `json:"id"`
	Product     string    `json:"product"`
	Version     string    `json:"version"`
	Channel     string    `json:"channel"`
	Agreeing    int       `json:"agreeing"`
	Total       int       `json:"total"`
	Yanked      bool      `json:"yanked"`
	PulledBack  bool      `json:"pulled_back"`
	Held        bool      `json:"held"`
	PublishedAt time.Time `json:"published_at"`
	Rollout     *rollout  `json:"rollout,omitempty"`
}

// registration is catalog.Registration.
type registration struct {
	ID        string   `json:"id"`
	Vendor    string   `json:"vendor"`
	Model     string   `json:"model"`
	Revisions []string `json:"revisions"`
	DeviceIDs []string `json:"device_ids"`
	FwupdIDs  []string `json:"fwupd_ids,omitempty"`
	EOL       string   `json:"eol,omitempty"` // YYYY-MM-DD
	RiskNotes string   `json:"risk_notes,omitempty"`
	Support   support  `json:"support,omitzero"`
}

// product is what the commands print of catalog.Product.
type product struct {
	ID        string   `json:"id"`
	Vendor    string   `json:"vendor"`
	Model     string   `json:"model"`
	DeviceIDs []string `json:"device_ids"`
	Status    string   `json:"status"`
	Support   support  `json:"support"`
}

// editRequest is catalog.Edit: a field left nil stays as it is.
type editRequest struct {
	Model     *string   `json:"model,omitempty"`
	Revisions *[]string `json:"revisions,omitempty"`
	DeviceIDs *[]string `json:"device_ids,omitempty"`
	RiskNotes *string   `json:"risk_notes,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// retireRequest is catalog.RetireRequest.
type retireRequest struct {
	Reason string `json:"reason"`
}

// retired is catalog.Retired.
type retired struct {
	ID      string `json:"id"`
	Retired bool   `json:"retired"`
}

// reassignRequest is catalog.ReassignRequest.
type reassignRequest struct {
	DeviceID string `json:"device_id"`
	To       string `json:"to"`
}

// reassigned is what the commands print of catalog.Reassigned.
type reassigned struct {
	DeviceID string  `json:"device_id"`
	From     string  `json:"from"`
	Product  product `json:"product"`
}

// support is catalog.Support as a vendor declares it.
type support struct {
	GeneralAvailability  string `json:"general_availability,omitempty"`
	EndOfSales           string `json:"end_of_sales,omitempty"`
	EndOfSecuritySupport string `json:"end_of_security_support,omitempty"`
	EndOfLife            string `json:"end_of_life,omitempty"`
}
