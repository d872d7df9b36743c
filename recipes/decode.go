package recipes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// decoder turns YAML into a Recipe while recording the line of every field,
// so that each problem can be reported where it is. It walks the yaml.Node
// tree itself (unknown and duplicate fields, wrong kinds, aliases), and then
// decodes once more with yaml.v3's KnownFields(true) as a cross-check.
type decoder struct {
	file  string
	errs  Errors
	lines map[string]int  // field path -> line of its value
	bad   map[string]bool // field paths whose value could not be decoded
}

func (d *decoder) add(line int, field, format string, args ...any) {
	if d.bad != nil {
		d.bad[field] = true
	}
	d.errs = append(d.errs, FieldError{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)

// addYAML reports an error from yaml.v3, taking the line from its text when
// the library gives one.
func (d *decoder) addYAML(err error) {
	var te *yaml.TypeError
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		line := 0
		if sub := yamlLineRe.FindStringSubmatch(m); sub != nil {
			line, _ = strconv.Atoi(sub[1])
			m = sub[2]
		}
		d.add(line, "", "%s", m)
	}
}

func (d *decoder) decode(data []byte) *Recipe {
	if !utf8.Valid(data) {
		d.add(0, "", "file is not valid UTF-8")
		return nil
	}
	root, ok := d.document(data)
	if !ok {
		return nil
	}
	var r Recipe
	d.lines[""] = root.Line
	d.value(root, reflect.ValueOf(&r).Elem(), "")
	if len(d.errs) > 0 {
		// The partly decoded recipe still gets validated, so that one run
		// reports every problem; fields in d.bad are not judged twice.
		return &r
	}
	// The cross-check: yaml.v3's own strict decoding must agree.
	var check Recipe
	if err := strictDecode(data, &check); err != nil {
		d.addYAML(err)
		return nil
	}
	return &r
}

// document parses data as exactly one YAML document holding a mapping.
func (d *decoder) document(data []byte) (n *yaml.Node, ok bool) {
	// yaml.v3 is outside code reading outside input; a panic in it must
	// become a refused recipe, not a crashed server.
	defer func() {
		if p := recover(); p != nil {
			d.add(0, "", "YAML parser failed: %v", p)
			n, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			d.add(0, "", "file is empty")
		} else {
			d.addYAML(err)
		}
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		line := extra.Line
		if err != nil {
			d.addYAML(err)
			return nil, false
		}
		d.add(line, "", "the file must hold one YAML document; remove the second one")
		return nil, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		d.add(doc.Line, "", "file is empty")
		return nil, false
	}
	return doc.Content[0], true
}

func strictDecode(data []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("YAML parser failed: %v", p)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// value decodes n into v, which is addressable.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.add(n.Line, path, "YAML anchors and aliases are not allowed in recipes")
		return
	}
	if n.Tag != "" && !strings.HasPrefix(n.Tag, "!!") {
		d.add(n.Line, path, "custom YAML tag %s is not allowed", n.Tag)
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if isNull(n) {
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.add(n.Line, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), path)
		v.Set(p)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!binary" {
			d.add(n.Line, path, "want a string, got %s", describe(n))
			return
		}
		if isNull(n) {
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.add(n.Line, path, "want a whole number, got %s", describe(n))
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.add(n.Line, path, "%q is not a whole number in range", n.Value)
			return
		}
		v.SetInt(i)
	default:
		d.add(n.Line, path, "internal: no decoder for %s", v.Type())
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.add(n.Line, path, "want a mapping of fields, got %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			d.add(k.Line, path, "field names must be plain words, got %s", describe(k))
			continue
		}
		sub := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.add(k.Line, sub, "set twice (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", k.Value)
			if s := closest(k.Value, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errs = append(d.errs, FieldError{File: d.file, Line: k.Line, Field: path, Msg: msg})
			continue
		}
		d.lines[sub] = val.Line
		d.value(val, v.Field(idx), sub)
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.add(n.Line, path, "want a list, got %s", describe(n))
		return
	}
	if len(n.Content) == 0 {
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, el := range n.Content {
		sub := fmt.Sprintf("%s[%d]", path, i)
		d.lines[sub] = el.Line
		if isNull(el) {
			d.add(el.Line, sub, "empty list item")
			continue
		}
		d.value(el, s.Index(i), sub)
	}
	v.Set(s)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!str":
		return strconv.Quote(n.Value)
	}
	return n.Tag + " " + strconv.Quote(n.Value)
}

// structFields maps yaml names to field indexes.
func structFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			m[name] = i
		}
	}
	return m
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// closest suggests a known field for a misspelt one.
func closest(s string, fields map[string]int) string {
	best, bestD := "", 3
	for f := range fields {
		if dist := editDistance(s, f); dist < bestD || (dist == bestD && f < best && best != "") {
			best, bestD = f, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
