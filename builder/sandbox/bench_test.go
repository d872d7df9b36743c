package sandbox_test

import (
	"context"
	"os/exec"
	"testing"

	"github.com/afterlife-oss/afterlife/builder/sandbox"
)

// BenchmarkSandboxStartup measures what a sandbox costs over running the
// same command directly: bwrap with all namespaces, binds and the step
// runner, against a plain exec of /bin/true.
func BenchmarkSandboxStartup(b *testing.B) {
	requireTools(b, "bwrap")
	b.Run("bwrap true", func(b *testing.B) {
		d := newDirs(b)
		spec := d.spec("true")
		for b.Loop() {
			if _, err := sandbox.Run(context.Background(), spec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct true", func(b *testing.B) {
		for b.Loop() {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
