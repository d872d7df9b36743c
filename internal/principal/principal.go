// Package principal says who is calling: the roles a token may have and
// the Principal a request acts as. internal/auth decides who a caller is;
// routes, pages and parts only read the answer, so they import this small
// package instead of auth, and clients and pages link no database driver.
//
// It must import nothing but internal/errs.
package principal

import (
	"fmt"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Role is what a token may do.
type Role string

const (
	Admin      Role = "admin"      // everything
	Vendor     Role = "vendor"     // its own vendor org's products and deposits
	Maintainer Role = "maintainer" // submits recipes, publishes releases of allowed products
	Builder    Role = "builder"    // pulls jobs and returns results
	Trustee    Role = "trustee"    // approves quorum releases
)

// Roles lists every role, in the order the docs give them.
var Roles = []Role{Admin, Vendor, Maintainer, Builder, Trustee}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", errs.E(errs.Invalid, "unknown role %q (want one of admin, vendor, maintainer, builder, trustee)", s)
}

// Principal is who is calling. The zero Principal is anonymous.
type Principal struct {
	TokenID string
	Name    string
	Role    Role
	Org     string
	// Operator is the operator organisation an admin bound a builder
	// token to; "" when unbound.
	Operator string
}

// IsAnonymous reports whether no token was presented.
func (p Principal) IsAnonymous() bool { return p.Role == "" }

// Is reports whether p has one of roles; admin has them all.
func (p Principal) Is(roles ...Role) bool {
	if p.Role == Admin {
		return true
	}
	for _, r := range roles {
		if p.Role == r {
			return true
		}
	}
	return false
}

// Actor is how p is named in event logs.
func (p Principal) Actor() string {
	if p.IsAnonymous() {
		return "anonymous"
	}
	return fmt.Sprintf("%s:%s", p.Role, p.Name)
}
