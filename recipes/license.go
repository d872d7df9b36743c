package recipes

import (
	"fmt"
	"strings"

	"github.com/github/go-spdx/v2/spdxexp"
)

// MaxLicenseLen bounds a license expression.
const MaxLicenseLen = 256

// CheckLicense checks an SPDX license expression ("GPL-2.0-or-later",
// "MIT OR Apache-2.0", "GPL-2.0-only WITH Linux-syscall-note",
// "(MIT AND BSD-3-Clause) OR LicenseRef-vendor"): its syntax, and that every
// identifier is on the SPDX license list that go-spdx carries (LicenseRef-
// names a licence of one's own and is always accepted).
func CheckLicense(expr string) error {
	if len(expr) > MaxLicenseLen {
		return fmt.Errorf("license expression is longer than %d characters", MaxLicenseLen)
	}
	if strings.TrimSpace(expr) == "" {
		return fmt.Errorf("empty license expression")
	}
	if _, err := spdxexp.ExtractLicenses(expr); err != nil {
		return fmt.Errorf("%q is not an SPDX license expression: %v", expr, err)
	}
	if ok, invalid := spdxexp.ValidateLicenses([]string{expr}); !ok {
		return fmt.Errorf("%q is not an SPDX license expression of licences on the SPDX list (%s); see https://spdx.org/licenses/", expr, strings.Join(invalid, ", "))
	}
	return nil
}
