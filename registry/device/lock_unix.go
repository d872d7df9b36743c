//go:build unix

package device

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// lockState takes StateDir/lock so that one process at a time changes the
// slots and the state (the service and an owner's update by hand). It
// fails at once, with errs.Conflict, when another process holds it; the
// kernel releases it when the process ends, however it ends.
func lockState(stateDir string) (func(), error) {
	p := filepath.Join(stateDir, "lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("device: open %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errs.E(errs.Conflict, "device: another afterlife-device process is updating this device (it holds %s); try again when it is done", p)
		}
		return nil, fmt.Errorf("device: lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}
