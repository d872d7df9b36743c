package testenv

import (
	"os/exec"
	"testing"
)

// StartOrphanProbe starts a long sleep the way servers are started and
// returns its pid, so a test can check that it dies with its parent.
func StartOrphanProbe(t testing.TB) int {
	p, err := startProcess(exec.Command("sleep", "600"))
	if err != nil {
		t.Fatalf("start probe: %v", err)
	}
	return p.cmd.Process.Pid
}
