package verdict

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// ErrNoDiffoscope is returned by Diffoscope when diffoscope is not on PATH.
// diffoscope is optional: callers show its report only when it is there.
var ErrNoDiffoscope = errs.E(errs.Unavailable, "diffoscope is not installed")

const (
	// DiffoscopeTimeout bounds one diffoscope run.
	DiffoscopeTimeout = 2 * time.Minute
	// MaxDiffoscopeOutput bounds the report Diffoscope returns; the rest is
	// cut and a marker line says so.
	MaxDiffoscopeOutput = 1 << 20
)

// truncatedMarker ends a report that was cut at MaxDiffoscopeOutput.
const truncatedMarker = "\n[diffoscope report truncated]\n"

// Diffoscope explains how files a and b differ, as diffoscope's text report
// ("" when they are identical). It runs `diffoscope --text - a b` with a
// timeout of DiffoscopeTimeout (or ctx's, if sooner) and returns at most
// MaxDiffoscopeOutput bytes of report. When diffoscope is not on PATH it
// returns ErrNoDiffoscope.
func Diffoscope(ctx context.Context, a, b string) (string, error) {
	bin, err := exec.LookPath("diffoscope")
	if err != nil {
		return "", ErrNoDiffoscope
	}
	ctx, cancel := context.WithTimeout(ctx, DiffoscopeTimeout)
	defer cancel()

	stdout := &boundedBuffer{limit: MaxDiffoscopeOutput}
	stderr := &boundedBuffer{limit: 8 << 10}
	// "--" stops a path that starts with "-" from being read as an option.
	cmd := exec.CommandContext(ctx, bin, "--text", "-", "--", a, b)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	// diffoscope starts other programs (unpackers, diff); kill the whole process group so
	// none outlives the timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	err = cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return "", fmt.Errorf("verdict: diffoscope %s %s: %w", a, b, ctxErr)
	}
	var exit *exec.ExitError
	switch {
	case err == nil: // identical
	case errors.As(err, &exit) && exit.ExitCode() == 1: // differences found
	default:
		return "", fmt.Errorf("verdict: diffoscope %s %s: %w: %s", a, b, err, bytes.TrimSpace(stderr.buf.Bytes()))
	}
	report := stdout.buf.String()
	if stdout.cut {
		report += truncatedMarker
	}
	return report, nil
}

// boundedBuffer keeps the first limit bytes written to it and drops the
// rest, while reporting every write as complete so the writer never blocks.
type boundedBuffer struct {
	buf   bytes.Buffer
	limit int
	cut   bool
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	room := w.limit - w.buf.Len()
	if room < len(p) {
		w.cut = true
		if room > 0 {
			w.buf.Write(p[:room])
		}
		return len(p), nil
	}
	w.buf.Write(p)
	return len(p), nil
}
