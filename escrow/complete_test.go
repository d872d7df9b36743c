package escrow

import (
	"testing"

	"github.com/afterlife-oss/afterlife/escrow/manifest"
	"github.com/afterlife-oss/afterlife/internal/errs"
)

func TestTheShippedImageIsMarkedPrivateAndBothMarksMustBeFiles(t *testing.T) {
	entries := func() []manifest.Entry {
		return []manifest.Entry{
			{Path: "recipe/afterlife.yaml", Rights: manifest.Public},
			{Path: "shipped/fw.tar", Rights: manifest.Public},
			{Path: "shipped/latest", Link: "fw.tar", Rights: manifest.Public},
		}
	}
	for _, tc := range []struct {
		name, shipped, recipe string
		ok                    bool
	}{
		{"a deposit without marks is left as it is", "", "", true},
		{"a shipped image and a recipe that are files are accepted", "shipped/fw.tar", "recipe/afterlife.yaml", true},
		{"a shipped image without a recipe is refused", "shipped/fw.tar", "", false},
		{"a recipe without a shipped image is refused", "", "recipe/afterlife.yaml", false},
		{"a path the manifest lacks is refused", "shipped/other.tar", "recipe/afterlife.yaml", false},
		{"a symbolic link is refused", "shipped/latest", "recipe/afterlife.yaml", false},
		{"one file as both is refused", "shipped/fw.tar", "shipped/fw.tar", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := markShipped(entries(), tc.shipped, tc.recipe)
			if !tc.ok {
				if !errs.Is(err, errs.Invalid) {
					t.Fatalf("err %v, want Invalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range got {
				want := manifest.Public
				if e.Path == tc.shipped {
					want = manifest.Private
				}
				if e.Rights != want {
					t.Errorf("%s is %s, want %s", e.Path, e.Rights, want)
				}
			}
		})
	}
}
