package registry

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A full rebuild of the index decodes every release's artifact list and
// encodes every offer: at 1M releases encoding/json's reflection was
// about half of the rebuild's CPU. The two functions here do the same for
// the index's narrow needs by hand, byte for byte as encoding/json would
// (tests hold them to it), and fall back to it for anything unusual.

// decodeIndexArtifacts reads what the index needs of a release's
// artifacts (kind, digest, size, target) from their stored JSON list (as
// json.Marshal of []Artifact wrote it). Digests and targets may be
// substrings of raw: what the index keeps of them it copies. Anything it does not read exactly
// (escapes in those values, an unexpected shape) it leaves to
// encoding/json; it refuses what is not JSON, but not a wrong type in a
// field the index does not read.
func decodeIndexArtifacts(raw string) ([]Artifact, error) {
	if arts, ok := scanArtifacts(raw); ok {
		return arts, nil
	}
	var arts []Artifact
	err := json.Unmarshal([]byte(raw), &arts)
	return arts, err
}

// scanArtifacts reads a JSON array of flat objects whose string values
// hold no escapes; nested values (an SBOM summary, a delta) are skipped.
func scanArtifacts(s string) ([]Artifact, bool) {
	p := jsonScanner{s: s}
	if !p.byte('[') {
		return nil, false
	}
	var arts []Artifact
	if p.peek() == ']' {
		p.i++
		return arts, p.end()
	}
	for {
		var a Artifact
		if !p.byte('{') {
			return nil, false
		}
		for first := true; ; first = false {
			if p.peek() == '}' && first {
				p.i++
				break
			}
			key, ok := p.str()
			if !ok || !p.byte(':') {
				return nil, false
			}
			switch key {
			case "kind", "digest", "target":
				v, ok := p.str()
				if !ok {
					return nil, false
				}
				switch key {
				case "kind":
					a.Kind = internKind(v)
				case "digest":
					a.Digest = v
				case "target":
					a.Target = v
				}
			case "size":
				n, ok := p.int()
				if !ok {
					return nil, false
				}
				a.Size = n
			default:
				// encoding/json matches keys regardless of case.
				for _, k := range []string{"kind", "digest", "target", "size"} {
					if strings.EqualFold(key, k) {
						return nil, false
					}
				}
				if !p.skip() {
					return nil, false
				}
			}
			if p.peek() == ',' {
				p.i++
				continue
			}
			if !p.byte('}') {
				return nil, false
			}
			break
		}
		arts = append(arts, a)
		if p.peek() == ',' {
			p.i++
			continue
		}
		if !p.byte(']') {
			return nil, false
		}
		return arts, p.end()
	}
}

// internKind shares the strings of the usual artifact kinds.
func internKind(k string) string {
	for _, known := range []string{"firmware", KindSBOM, "delta", "log", "other"} {
		if k == known {
			return known
		}
	}
	return strings.Clone(k)
}

type jsonScanner struct {
	s string
	i int
}

func (p *jsonScanner) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonScanner) peek() byte {
	p.space()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *jsonScanner) byte(c byte) bool {
	if p.peek() != c {
		return false
	}
	p.i++
	return true
}

func (p *jsonScanner) end() bool {
	p.space()
	return p.i == len(p.s)
}

// str reads a string without escapes or control characters, as a slice
// of the input.
func (p *jsonScanner) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			return v, utf8.ValidString(v)
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// int reads a non-negative integer as encoding/json writes it.
func (p *jsonScanner) int() (int64, bool) {
	p.space()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	digits := p.s[start:p.i]
	if digits == "" || (len(digits) > 1 && digits[0] == '0') || (p.i < len(p.s) && strings.IndexByte(".eE", p.s[p.i]) >= 0) {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

// skip passes over one valid value of any kind; strings may hold
// escapes here.
func (p *jsonScanner) skip() bool {
	switch c := p.peek(); {
	case c == '"':
		p.i++
		for p.i < len(p.s) {
			switch c := p.s[p.i]; {
			case c == '\\':
				if p.i+1 >= len(p.s) {
					return false
				}
				switch p.s[p.i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					p.i += 2
				case 'u':
					if p.i+6 > len(p.s) {
						return false
					}
					for _, h := range []byte(p.s[p.i+2 : p.i+6]) {
						if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
							return false
						}
					}
					p.i += 6
				default:
					return false
				}
				continue
			case c == '"':
				p.i++
				return true
			case c < 0x20:
				return false
			}
			p.i++
		}
		return false
	case c == '{' || c == '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		p.i++
		if p.peek() == closer {
			p.i++
			return true
		}
		for {
			if c == '{' && (p.peek() != '"' || !p.skip() || !p.byte(':')) {
				return false
			}
			if !p.skip() {
				return false
			}
			if p.peek() == ',' {
				p.i++
				continue
			}
			return p.byte(closer)
		}
	case c == 't' || c == 'f' || c == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if strings.HasPrefix(p.s[p.i:], lit) {
				p.i += len(lit)
				return true
			}
		}
		return false
	default:
		return p.number()
	}
}

// number passes over a number as JSON writes it:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonScanner) number() bool {
	digits := func() int {
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		return p.i - start
	}
	if p.i < len(p.s) && p.s[p.i] == '-' {
		p.i++
	}
	start := p.i
	if n := digits(); n == 0 || (n > 1 && p.s[start] == '0') {
		return false
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// offerAt is where appendOffer wrote the strings an offer and its target
// keep: the start of each value's JSON text in the body, the quote
// included. A value needed no escaping when its text is its length
// plus the quotes; then the index keeps it as a substring of the body.
type offerAt struct{ id, version, minVersion, target int }

// appendOffer appends the JSON of device.Offer{…} exactly as
// json.Marshal writes it (fields in order, HTML-safe escaping), and
// notes in at (when not nil) where some values are.
func appendOffer(b []byte, r *indexRelease, a Artifact, at *offerAt) []byte {
	var scratch offerAt
	if at == nil {
		at = &scratch
	}
	b = append(b, `{"product":`...)
	b = appendJSONString(b, r.Product)
	b = append(b, `,"release_id":`...)
	at.id = len(b)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"version":`...)
	at.version = len(b)
	b = appendJSONString(b, r.Version)
	b = append(b, `,"channel":`...)
	b = appendJSONString(b, r.Channel)
	b = append(b, `,"notes":`...)
	b = appendJSONString(b, r.Notes)
	b = append(b, `,"community":`...)
	b = strconv.AppendBool(b, r.Community)
	b = append(b, `,"risk_notes":`...)
	b = appendJSONString(b, r.RiskNotes)
	b = append(b, `,"min_version":`...)
	at.minVersion = len(b)
	b = appendJSONString(b, r.MinVersion)
	b = append(b, `,"target":{"path":`...)
	at.target = len(b)
	b = appendJSONString(b, a.Target)
	b = append(b, `,"length":`...)
	b = strconv.AppendInt(b, a.Size, 10)
	b = append(b, `,"hashes":{"sha256":`...)
	b = appendJSONString(b, a.sha256Hex())
	return append(b, `}}}`...)
}

// appendJSONString appends s quoted as encoding/json quotes it: control
// characters, quotes and backslashes escaped, <, > and & as \u003c…,
// U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
