package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/afterlife-oss/afterlife/registry/device"
	"github.com/afterlife-oss/afterlife/registry/sbom"
)

// awkwardStrings are strings encoding/json escapes in every way it can.
var awkwardStrings = []string{
	"", "plain", `quote " and backslash \`, "new\nline\ttab\rreturn\bback\fform", "\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "line\u2028para\u2029", "bad utf-8 \xff\xfe end", "ünïcødé 🎉", "\xe2\x80",
}

func TestOffersAreEncodedByHandAsEncodingJSONEncodesThem(t *testing.T) {
	for _, s := range awkwardStrings {
		t.Run(s, func(t *testing.T) {
			r := &indexRelease{ID: "rel_" + s, Product: "p" + s, Version: "1.0.0" + s, Channel: Stable, Notes: s,
				MinVersion: s, Community: len(s)%2 == 0, RiskNotes: s + s}
			a := Artifact{Target: "p/1.0.0/" + s, Size: int64(len(s)) << 40, Digest: "sha256:" + sha256Hex([]byte(s))}
			want, err := json.Marshal(device.Offer{
				Product: r.Product, ReleaseID: r.ID, Version: r.Version, Channel: r.Channel, Notes: r.Notes,
				Community: r.Community, RiskNotes: r.RiskNotes, MinVersion: r.MinVersion,
				Target: device.OfferTarget{Path: a.Target, Length: a.Size, Hashes: map[string]string{"sha256": a.sha256Hex()}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendOffer(nil, r, a, nil); string(got) != string(want) {
				t.Fatalf("by hand:\n%s\nencoding/json:\n%s", got, want)
			}
		})
	}
}

// An offer keeps its strings in its product's arena, some as substrings
// of its body; escaped or not, each reads back as it was, and the
// release's targets are found under their own paths with their digests,
// whether the release was encoded while it was read or when it was added.
func TestAnOfferAndItsTargetsKeepTheirStringsEscapedOrNot(t *testing.T) {
	for _, s := range awkwardStrings {
		for _, encoded := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s encoded while read %v", s, encoded), func(t *testing.T) {
				fw := Artifact{Kind: "firmware", Target: "p/1.0.0/" + s, Size: 7, Digest: "sha256:" + sha256Hex([]byte(s))}
				other := Artifact{Kind: "other", Target: "p/1.0.0/" + s + ".txt", Size: 9, Digest: "sha256:" + sha256Hex([]byte(s+"x"))}
				r := indexRelease{ID: "rel_" + s, Product: "p", Version: "1.0.0" + s, Channel: Stable, MinVersion: s,
					Artifacts: []Artifact{other, fw}, DeviceIDs: []string{"usb:1"}}
				want := appendOffer(nil, &r, fw, nil)
				if encoded {
					var buf []byte
					buf, r.enc = encodeOffer([]byte("an earlier offer"), &r)
					r.enc.data = buf[len("an earlier offer"):]
				}
				ix := buildIndex([]indexRelease{r})
				part, _ := ix.products.get("p")
				o := part.offer(0)
				if o.releaseID != "rel_"+s || o.version != "1.0.0"+s || o.minVersion != s || o.body != string(want) {
					t.Fatalf("the offer holds id %q version %q min %q body %s, want %q %q %q %s", o.releaseID, o.version, o.minVersion, o.body, "rel_"+s, "1.0.0"+s, s, want)
				}
				if o.length != strconv.Itoa(len(want)) || len(o.etag) != 34 || o.etag[0] != '"' || o.etag[33] != '"' {
					t.Fatalf("the offer's headers are ETag %s and Content-Length %s", o.etag, o.length)
				}
				for _, a := range []Artifact{fw, other} {
					got, ok := ix.target(a.Target)
					if !ok || string(got.digest()) != a.Digest || got.size != a.Size || got.release != "rel_"+s {
						t.Fatalf("target %q is listed %v as %s %d %q", a.Target, ok, got.digest(), got.size, got.release)
					}
				}
				if _, ok := ix.target(fw.Target + "x"); ok {
					t.Fatal("a path the release does not have is found")
				}
				var paths []string
				for _, f := range part.files {
					paths = append(paths, part.str(f.path))
				}
				if !slices.Equal(paths, []string{other.Target, fw.Target}) {
					t.Fatalf("the part lists targets %q", paths)
				}
			})
		}
	}
}

func TestArtifactListsAreDecodedByHandAsEncodingJSONDecodesThem(t *testing.T) {
	lists := map[string][]Artifact{
		"one firmware": {{Name: "fw.bin", Path: "out/fw.bin", Kind: "firmware", Digest: "sha256:" + sha256Hex([]byte("a")), Size: 3026, Target: "cam/1.0.0/fw.bin"}},
		"an SBOM and a delta beside the firmware": {
			{Name: "sbom.json", Path: "out/sbom.json", Kind: KindSBOM, Digest: "sha256:1", Size: 18, Target: "cam/1.0.0/sbom.json",
				SBOM: &sbom.Summary{Format: "CycloneDX 1.6", Subject: sbom.Component{Name: `cam "fw"`}, Components: []sbom.Component{{Name: "busybox"}, {Name: "<x>"}}}},
			{Name: "fw.bin", Path: "out/fw.bin", Kind: "firmware", Digest: "sha256:2", Size: 1 << 40, Target: "cam/1.0.0/fw.bin"},
			{Name: "fw.bin.zst", Kind: "delta", Digest: "sha256:3", Size: 0, Target: "cam/1.0.0/delta-from-0.9.0/fw.bin.zst",
				Delta: &device.SignedDelta{SourceVersion: "0.9.0", SourceSHA256: "ab", ResultLength: 7}},
		},
		"names that need escapes": {{Name: "a\"b\\c", Path: "x\ny", Kind: "other", Digest: "sha256:4", Size: 1, Target: "cam/<1>/&"}},
		"none":                    {},
	}
	for name, arts := range lists {
		t.Run(name, func(t *testing.T) {
			raw, err := json.Marshal(arts)
			if err != nil {
				t.Fatal(err)
			}
			for _, text := range []string{string(raw), " \n" + indent(t, raw) + "\n"} {
				checkDecodedAsJSON(t, text)
			}
		})
	}
	for _, bad := range []string{"", "[", "{}", `[{"size":-1}]`, `[{"size":1.5}]`, `[{"size":01}]`, `[{"kind":"firmware",}]`, `[{"kind":"\u0066irmware"}]`, `[1]`, `[{}] x`} {
		t.Run("odd input "+bad, func(t *testing.T) { checkDecodedAsJSON(t, bad) })
	}
}

func indent(t *testing.T, raw []byte) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkDecodedAsJSON holds decodeIndexArtifacts to json.Unmarshal on the
// fields the index reads: the same values, and an error for anything that
// is not JSON. (A list whose only fault is the type of a field the index
// does not read, such as a number for a name, it reads: the lists are
// written by json.Marshal of []Artifact.)
func checkDecodedAsJSON(t *testing.T, text string) {
	t.Helper()
	got, gerr := decodeIndexArtifacts(text)
	var want []Artifact
	werr := json.Unmarshal([]byte(text), &want)
	var typeErr *json.UnmarshalTypeError
	if gerr == nil && werr != nil && errors.As(werr, &typeErr) && !slices.Contains([]string{"kind", "digest", "target", "size"}, strings.ToLower(typeErr.Field)) {
		return
	}
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: by hand err %v, encoding/json err %v", text, gerr, werr)
	}
	if werr != nil {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d artifacts by hand, %d by encoding/json", text, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.Digest != w.Digest || g.Size != w.Size || g.Target != w.Target {
			t.Fatalf("%q: artifact %d by hand %+v, by encoding/json %+v", text, i, g, w)
		}
	}
}

func FuzzIndexArtifactDecoding(f *testing.F) {
	for _, s := range []string{`[{"name":"fw.bin","kind":"firmware","digest":"sha256:1","size":3,"target":"a/b"}]`, `[]`, `[{"sbom":{"a":[1,{"b":"\""}]},"size":0}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) { checkDecodedAsJSON(t, text) })
}

func FuzzOfferEncoding(f *testing.F) {
	for _, s := range awkwardStrings {
		f.Add(s, int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, s string, size int64) {
		r := &indexRelease{ID: s, Product: s, Version: s, Channel: s, Notes: s, MinVersion: s, RiskNotes: s}
		a := Artifact{Target: s, Size: size, Digest: "sha256:" + s}
		want, err := json.Marshal(device.Offer{Product: s, ReleaseID: s, Version: s, Channel: s, Notes: s, RiskNotes: s, MinVersion: s,
			Target: device.OfferTarget{Path: s, Length: size, Hashes: map[string]string{"sha256": a.sha256Hex()}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendOffer(nil, r, a, nil); string(got) != string(want) {
			t.Fatalf("by hand:\n%s\nencoding/json:\n%s", got, want)
		}
	})
}
