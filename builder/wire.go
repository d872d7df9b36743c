package builder

import "time"

// The protocol's HTTP shape, shared by the handlers (builder/farmhttp) and
// the agent's client (builder/farmclient), which must not link the
// handlers. docs/farm-protocol.md documents every route.

// ProtocolHeader carries the farm protocol version (ProtocolVersion)
// on every call of an agent, and on the server's answers to them.
const ProtocolHeader = "Afterlife-Farm-Protocol"

// NextRequest is the body of POST /v1/jobs/next.
type NextRequest struct {
	WaitMillis int64 `json:"wait_ms"`
}

// ExtendResponse is the answer to POST /v1/jobs/:id/extend.
type ExtendResponse struct {
	LeaseUntil time.Time `json:"lease_until"`
}

// SubmitRequest asks for a recipe to be built.
type SubmitRequest struct {
	Repo        string `json:"repo"`
	Ref         string `json:"ref"`
	Path        string `json:"path,omitempty"`
	RequestedBy string `json:"-"`
}

// SubmitResult is the build a submission made or found.
type SubmitResult struct {
	BuildID string `json:"build_id"`
	Created bool   `json:"created"`
	Commit  string `json:"commit"`
	Recipe  string `json:"recipe"`
	Version string `json:"version"`
}
