package buildspec_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/afterlife-oss/afterlife/builder"
	"github.com/afterlife-oss/afterlife/builder/buildspec"
	"github.com/afterlife-oss/afterlife/internal/blob"
	"github.com/afterlife-oss/afterlife/recipes"
	"github.com/afterlife-oss/afterlife/recipes/inputkind"
	"github.com/afterlife-oss/afterlife/recipes/submit"
)

func TestForCarriesEverySubmittedField(t *testing.T) {
	req := submit.BuildRequest{
		RepoURL: "https://example.org/fw.git", Commit: "0123456789abcdef0123456789abcdef01234567", Path: "afterlife.yaml",
		RequestedBy: "maintainer", SourceDateEpoch: 1700000000, Source: blob.FromBytes([]byte("tree")),
		Recipe: &recipes.Recipe{
			Name: "cam-fw", Version: "1.2.0", Products: []string{"acme-cam"},
			Toolchain: recipes.Toolchain{Name: "go", Version: ">=1.26"}, Arch: "amd64",
			Tools: []recipes.Tool{{Name: "cyclonedx-gomod", Version: "v1.10.0"}},
			Steps: []string{"make"}, Outputs: []recipes.Output{{Path: "fw.bin", Kind: "firmware"}},
			Install: "hold reset for 5s", RiskNotes: "bricks rev-a boards",
			Limits: recipes.Limits{Timeout: recipes.Duration(10 * time.Minute), Memory: recipes.ByteSize(1 << 30), CPUs: 2},
		},
		Inputs: []submit.Input{{Digest: blob.FromBytes([]byte("tree")), Mount: "escrow/spec.pdf", Kind: inputkind.Escrow}},
	}
	ceilings := builder.Limits{Processes: 256, WriteBytes: 1 << 32, LogBytes: 1 << 20}
	got := buildspec.For(req, ceilings)
	want := builder.Spec{
		Recipe:    builder.RecipeRef{Name: "cam-fw", Version: "1.2.0", RepoURL: req.RepoURL, Commit: req.Commit, Path: "afterlife.yaml"},
		Products:  []string{"acme-cam"},
		Toolchain: builder.ToolchainReq{Name: "go", Version: ">=1.26"},
		Tools:     []builder.ToolchainReq{{Name: "cyclonedx-gomod", Version: "v1.10.0"}},
		Arch:      "amd64",
		Steps:     []string{"make"},
		Outputs:   []builder.Output{{Path: "fw.bin", Kind: "firmware"}},
		Limits: builder.Limits{TimeoutSeconds: 600, MemoryBytes: 1 << 30, CPUs: 2,
			Processes: 256, WriteBytes: 1 << 32, LogBytes: 1 << 20},
		SourceDateEpoch: 1700000000,
		Source:          req.Source,
		Inputs:          []builder.Input{{Digest: req.Inputs[0].Digest, Mount: "escrow/spec.pdf", Kind: inputkind.Escrow}},
		Install:         "hold reset for 5s",
		RiskNotes:       "bricks rev-a boards",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("For =\n%+v\nwant\n%+v", got, want)
	}
	// A field added to the spec but not to the conversion stays zero here:
	// the copy that once dropped Install would fail this.
	v := reflect.ValueOf(got)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("For leaves Spec.%s empty for a submission that has it", v.Type().Field(i).Name)
		}
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the converted spec does not validate: %v", err)
	}
}
