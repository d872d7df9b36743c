// Package version is the firmware version grammar the registry and the
// device client share: which strings are versions and how two compare.
// It knows nothing of releases, products or HTTP.
package version

// maxLen bounds a version string.
const maxLen = 64

// Valid reports whether v is a version the registry understands:
// an optional "v", dot-separated decimal numbers, then optionally a
// pre-release ("-rc.1") and build metadata ("+abc"), semver style.
func Valid(v string) bool {
	if len(v) == 0 || len(v) > maxLen {
		return false
	}
	i := 0
	if v[0] == 'v' {
		i++
	}
	digits := 0
	for ; i < len(v); i++ {
		c := v[i]
		switch {
		case '0' <= c && c <= '9':
			digits++
		case c == '.' && digits > 0:
			digits = 0
			if i+1 == len(v) {
				return false
			}
		case (c == '-' || c == '+') && digits > 0:
			return validSuffix(v[i+1:])
		default:
			return false
		}
	}
	return digits > 0
}

func validSuffix(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '-' || c == '+') {
			return false
		}
	}
	return true
}

// Compare orders two valid versions: numeric components compare as
// numbers (a missing one is 0), a pre-release sorts before its release,
// pre-release identifiers compare as semver says, build metadata is
// ignored. It allocates nothing: it runs on every update check.
func Compare(a, b string) int {
	if len(a) > 0 && a[0] == 'v' {
		a = a[1:]
	}
	if len(b) > 0 && b[0] == 'v' {
		b = b[1:]
	}
	aCore, aPre := splitCore(a)
	bCore, bPre := splitCore(b)
	for aCore != "" || bCore != "" {
		var x, y string
		x, aCore = nextField(aCore, '.')
		y, bCore = nextField(bCore, '.')
		if c := compareNumeric(x, y); c != 0 {
			return c
		}
	}
	switch {
	case aPre == "" && bPre == "":
		return 0
	case aPre == "":
		return 1
	case bPre == "":
		return -1
	}
	for aPre != "" || bPre != "" {
		if aPre == "" {
			return -1
		}
		if bPre == "" {
			return 1
		}
		var x, y string
		x, aPre = nextField(aPre, '.')
		y, bPre = nextField(bPre, '.')
		xn, yn := isNumeric(x), isNumeric(y)
		var c int
		switch {
		case xn && yn:
			c = compareNumeric(x, y)
		case xn:
			c = -1
		case yn:
			c = 1
		default:
			c = compareStrings(x, y)
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// splitCore cuts a version into its numeric core and its pre-release,
// dropping build metadata.
func splitCore(v string) (core, pre string) {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '+':
			return v[:i], ""
		case '-':
			pre = v[i+1:]
			for j := 0; j < len(pre); j++ {
				if pre[j] == '+' {
					pre = pre[:j]
					break
				}
			}
			return v[:i], pre
		}
	}
	return v, ""
}

func nextField(s string, sep byte) (field, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareNumeric compares decimal strings of any length; "" is 0.
func compareNumeric(x, y string) int {
	for len(x) > 0 && x[0] == '0' {
		x = x[1:]
	}
	for len(y) > 0 && y[0] == '0' {
		y = y[1:]
	}
	if len(x) != len(y) {
		if len(x) < len(y) {
			return -1
		}
		return 1
	}
	return compareStrings(x, y)
}

func compareStrings(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
