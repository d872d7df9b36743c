package authcli

import (
	"time"

	"github.com/afterlife-oss/afterlife/internal/principal"
)

// The API's JSON as these commands read it. The server's types live with
// the token store, which links the database, so the commands keep their own
// view; wire_test.go holds it to the server's types.

// apiToken is auth.Token.
type apiToken struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Role     principal.Role `json:"role"`
	Org      string         `json:"org,omitempty"`
	Operator string         `json:"operator,omitempty"`
	Created  time.Time      `json:"created"`
	Expires  time.Time      `json:"expires,omitzero"`
	Revoked  time.Time      `json:"revoked,omitzero"`
	LastUsed time.Time      `json:"last_used,omitzero"`
}

// apiOrg is auth.Org.
type apiOrg struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
}
