package recipes

import (
	"fmt"
	"strings"
)

// MaxLicenseLen bounds a license expression.
const MaxLicenseLen = 256

// CheckLicense checks the syntax of an SPDX license expression
// ("GPL-2.0-or-later", "MIT OR Apache-2.0", "GPL-2.0-only WITH
// Linux-syscall-note", "(MIT AND BSD-3-Clause) OR LicenseRef-vendor").
// Identifiers are not checked against the SPDX list, which changes.
func CheckLicense(expr string) error {
	if len(expr) > MaxLicenseLen {
		return fmt.Errorf("license expression is longer than %d characters", MaxLicenseLen)
	}
	p := licenseParser{toks: tokenizeLicense(expr)}
	if len(p.toks) == 0 {
		return fmt.Errorf("empty license expression")
	}
	if err := p.expr(0); err != nil {
		return fmt.Errorf("%q is not an SPDX license expression: %v", expr, err)
	}
	if p.pos != len(p.toks) {
		return fmt.Errorf("%q is not an SPDX license expression: unexpected %q", expr, p.toks[p.pos])
	}
	return nil
}

func tokenizeLicense(s string) []string {
	var toks []string
	for f := range strings.FieldsSeq(s) {
		for f != "" {
			i := strings.IndexAny(f, "()")
			switch {
			case i < 0:
				toks, f = append(toks, f), ""
			case i > 0:
				toks, f = append(toks, f[:i]), f[i:]
			default:
				toks, f = append(toks, f[:1]), f[1:]
			}
		}
	}
	return toks
}

type licenseParser struct {
	toks []string
	pos  int
}

func (p *licenseParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

// expr := term { ("AND" | "OR") term }
func (p *licenseParser) expr(depth int) error {
	if depth > 16 {
		return fmt.Errorf("too deeply nested")
	}
	if err := p.term(depth); err != nil {
		return err
	}
	for p.peek() == "AND" || p.peek() == "OR" {
		p.pos++
		if err := p.term(depth); err != nil {
			return err
		}
	}
	return nil
}

// term := "(" expr ")" | id ["+"] ["WITH" exception]
func (p *licenseParser) term(depth int) error {
	t := p.peek()
	switch {
	case t == "":
		return fmt.Errorf("expression ends early")
	case t == "(":
		p.pos++
		if err := p.expr(depth + 1); err != nil {
			return err
		}
		if p.peek() != ")" {
			return fmt.Errorf("missing ')'")
		}
		p.pos++
		return nil
	case !isLicenseID(strings.TrimSuffix(t, "+")):
		return fmt.Errorf("unexpected %q", t)
	}
	p.pos++
	if p.peek() == "WITH" {
		p.pos++
		if !isLicenseID(p.peek()) {
			return fmt.Errorf("WITH needs an exception id")
		}
		p.pos++
	}
	return nil
}

func isLicenseID(s string) bool {
	if s == "" || s == "AND" || s == "OR" || s == "WITH" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}
