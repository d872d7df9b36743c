package sandbox

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// UIDRange is a range of host uids (and equal gids) that no account uses,
// from which every run takes one for itself alone. A uid of its own per run
// makes RLIMIT_NPROC count exactly that run's processes, and keeps one
// build from signalling or reading the processes of another.
type UIDRange struct {
	First uint32
	Count uint32
}

// DefaultUIDs is the range used when the builder runs as root and names
// none: far above the ranges distributions hand to users and containers.
var DefaultUIDs = UIDRange{First: 1_500_000_000, Count: 65536}

// uidLockDir holds one lock file per uid in use, shared by every builder on
// the host, so two builders never run jobs under the same uid at once.
const uidLockDir = "/run/afterlife-sandbox/uids"

// jobUID is the uid a run holds until release.
type jobUID struct {
	uid  int
	lock *os.File
}

// acquireUID takes a free uid from r (DefaultUIDs when empty) by locking
// its file; the lock holds until release, or until the process dies.
func acquireUID(r UIDRange) (*jobUID, error) {
	if r.Count == 0 {
		r = DefaultUIDs
	}
	if r.First == 0 || uint64(r.First)+uint64(r.Count) > 1<<32-2 {
		return nil, errs.E(errs.Invalid, "sandbox: uid range %d+%d must leave out root and stay below 4294967294", r.First, r.Count)
	}
	if err := os.MkdirAll(filepath.Dir(uidLockDir), 0o755); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox: uid locks")
	}
	if err := os.MkdirAll(uidLockDir, 0o700); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "sandbox: uid locks")
	}
	start := rand.Uint32N(r.Count)
	for i := range r.Count {
		uid := r.First + (start+i)%r.Count
		f, err := os.OpenFile(filepath.Join(uidLockDir, strconv.FormatUint(uint64(uid), 10)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, errs.Wrap(errs.Unavailable, err, "sandbox: uid lock")
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return &jobUID{uid: int(uid), lock: f}, nil
	}
	return nil, errs.E(errs.Unavailable, "sandbox: all %d uids from %d are in use", r.Count, r.First)
}

func (u *jobUID) release() {
	if u != nil {
		u.lock.Close()
	}
}

// chownTree hands dir and everything below it to uid, without following
// symbolic links, so the build user can write where it may.
func chownTree(dir string, uid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, uid); err != nil {
			return fmt.Errorf("sandbox: chown %s: %w", p, err)
		}
		return nil
	})
}

// tasksOf counts the processes and threads that uid runs now, as
// RLIMIT_NPROC counts them.
func tasksOf(uid int) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join("/proc", p.Name()))
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != uid {
			continue
		}
		tasks, err := os.ReadDir(filepath.Join("/proc", p.Name(), "task"))
		if err != nil {
			continue
		}
		n += len(tasks)
	}
	return n
}
