package registry

import (
	"github.com/afterlife-oss/afterlife/internal/errs"
	"github.com/afterlife-oss/afterlife/registry/version"
)

// ValidVersion reports whether v is a version the registry understands
// (see version.Valid).
func ValidVersion(v string) bool { return version.Valid(v) }

// CompareVersions orders two valid versions (see version.Compare).
func CompareVersions(a, b string) int { return version.Compare(a, b) }

func parseVersion(field, v string) error {
	if !version.Valid(v) {
		return errs.E(errs.Invalid, "%s %q: want dot-separated numbers, optionally -prerelease and +build (e.g. 1.4.2, 2.0.0-rc.1)", field, v)
	}
	return nil
}
