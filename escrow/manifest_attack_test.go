package escrow

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDepositsWhoseTreeMisleadsAreRefused sends the server manifests that
// pass a per-entry, lexical check but not a look at the whole tree: a link
// that escapes through another link, names that one file system would
// merge, and names that read as others. Nothing may be created.
func TestDepositsWhoseTreeMisleadsAreRefused(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		srv := serve(t, e.svc)
		manifests := map[string]map[string]string{
			"a link escaping through another link": {"c/f": "x", "a/b/m": "->../../c", "a/b/l": "->m/../../../x"},
			"a loop of links":                      {"a": "->b", "b": "->a"},
			"names equal once case-folded":         {"keys/signing.key": "k1", "KEYS/Signing.key": "k2"},
			"names equal once NFC-normalised":      {"caf\u00e9.txt": "1", "cafe\u0301.txt": "2"},
			"a name with a bidi override":          {"src/evil\u202etxt.exe": "x"},
			"a name with a right-to-left mark":     {"src/a\u200fb.c": "x"},
		}
		for name, files := range manifests {
			t.Run(name+" is refused", func(t *testing.T) {
				body, _ := json.Marshal(CreateRequest{Product: "demo-cam", Policy: "on=2099-01-01", Manifest: entries(files)})
				a := call(t, srv, "POST", "/v1/deposits", "acme", strings.NewReader(string(body)))
				if a.status != 400 || !strings.Contains(a.body, `"invalid"`) {
					t.Fatalf("create = %d %s, want 400 invalid", a.status, a.body)
				}
			})
		}
		a := call(t, srv, "GET", "/v1/uploads", "acme", nil)
		if a.status != 200 || strings.Contains(a.body, "dep_") {
			t.Fatalf("uploads after refusals = %d %s, want none", a.status, a.body)
		}
	})
}
