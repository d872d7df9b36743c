package recipes

import (
	"errors"
	"reflect"
	"testing"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

func FuzzParse(f *testing.F) {
	f.Add(readTestdata(f, "full.yaml"))
	f.Add([]byte(minimal))
	for _, s := range []string{
		"",
		"name: [",
		"a: &x [*x]",
		"name: x\nname: y\n",
		"- 1\n- 2\n",
		"limits: {timeout: 0s, memory: 0, cpus: -1}\n",
		"toolchain: {name: go, version: '>=1.25,<1.27'}\n",
		"inputs: {escrow: [{digest: sha256:00, as: ../x}], git: [{name: a, url: 'file:///x', commit: abc}]}\n",
		"outputs: [{path: a, kind: firmware}, {path: a/b, kind: log}]\n",
		"source_date_epoch: 0x10\n",
		"steps: !!seq [a]\n",
		"<<: {name: x}\n",
		"---\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			var list Errors
			if !errs.Is(err, errs.Invalid) || !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error without kind or list: %v", err)
			}
			return
		}
		// The node walker and yaml.v3's strict decoder must agree.
		var check Recipe
		if err := strictDecode(data, &check); err != nil {
			t.Fatalf("Parse accepted what KnownFields decoding refuses: %v", err)
		}
		check.normalize()
		if !reflect.DeepEqual(&check, r) {
			t.Fatalf("decoders disagree:\nwalker %+v\nyaml   %+v", r, &check)
		}
		c1, err := r.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJSON(c1)
		if err != nil {
			t.Fatalf("canonical JSON does not parse back: %v\n%s", err, c1)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip changed the recipe:\n%+v\n%+v", r, back)
		}
		c2, err := back.Canonical()
		if err != nil || string(c1) != string(c2) {
			t.Fatalf("canonical JSON not stable:\n%s\n%s", c1, c2)
		}
	})
}
