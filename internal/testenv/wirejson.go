package testenv

import (
	"maps"
	"reflect"
	"strings"
	"testing"
)

// SameJSON fails t when a client's view of an API body disagrees with the
// server's type: every JSON field of view must be a field of server, with
// the same options and the same kind of value. With whole set, view must
// also have every field of server that is not optional (omitempty or
// omitzero): a request the client sends in full. Clients keep views of
// their own so that they link no server code.
func SameJSON(t testing.TB, view, server any, whole bool) {
	t.Helper()
	vf, sf := jsonFields(reflect.TypeOf(view)), jsonFields(reflect.TypeOf(server))
	for name, v := range vf {
		s, ok := sf[name]
		switch {
		case !ok:
			t.Errorf("%T has JSON field %q, %T has not", view, name, server)
		case v != s:
			t.Errorf("JSON field %q: %T has %s, %T has %s", name, view, v, server, s)
		}
	}
	if !whole {
		return
	}
	for name, s := range sf {
		if strings.Contains(s, "omitempty") || strings.Contains(s, "omitzero") {
			continue
		}
		if _, ok := vf[name]; !ok {
			t.Errorf("%T has JSON field %q, %T does not send it", server, name, view)
		}
	}
}

// jsonFields maps a struct's JSON names to their options and value kind.
func jsonFields(typ reflect.Type) map[string]string {
	out := map[string]string{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous && f.Tag.Get("json") == "" {
			// encoding/json promotes an embedded struct's fields.
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				maps.Copy(out, jsonFields(et))
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = "kind " + f.Type.Kind().String() + ", options " + opts
	}
	return out
}
