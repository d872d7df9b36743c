package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/afterlife-oss/afterlife/internal/errs"
)

// Workspace is one run's private scratch filesystem: a tmpfs that holds
// the directories bound at /build, /inputs, /out and /tmp. Its size caps
// the bytes a build may write (Limit), and because every job-specific bind
// comes from it, /proc/self/mountinfo inside the sandbox shows only
// "/build", "/out"… on a tmpfs, never a host path or a job id.
//
// Mounting needs root; without it the workspace is a plain directory and
// writes are not bounded (Limit says so).
type Workspace struct {
	Root                    string
	Build, Inputs, Out, Tmp string
	tmpfs                   bool
}

// stagingSize is the tmpfs size while inputs are staged, before Limit
// shrinks it to what was staged plus the write allowance. tmpfs pages are
// only used when written, so a large ceiling costs nothing.
const stagingSize = 1 << 40

// NewWorkspace creates dir (which must not exist) and, as root, mounts a
// tmpfs on it, then creates build, inputs, out and tmp inside.
func NewWorkspace(dir string) (*Workspace, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "sandbox: workspace %s", dir)
	}
	w := &Workspace{Root: dir}
	if os.Geteuid() == 0 {
		if err := syscall.Mount("afterlife-workspace", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755,size="+strconv.FormatInt(stagingSize, 10)); err != nil {
			os.Remove(dir)
			return nil, errs.Wrap(errs.Unavailable, err, "sandbox: mount the workspace tmpfs on %s", dir)
		}
		w.tmpfs = true
	}
	w.Build, w.Inputs, w.Out, w.Tmp = filepath.Join(dir, "build"), filepath.Join(dir, "inputs"), filepath.Join(dir, "out"), filepath.Join(dir, "tmp")
	for _, d := range []string{w.Build, w.Inputs, w.Out, w.Tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			w.Close()
			return nil, errs.Wrap(errs.Internal, err, "sandbox: workspace %s", d)
		}
	}
	return w, nil
}

// Limit caps the workspace at what is in it now plus writeBytes, once the
// source and inputs are staged: that is what the build may still write to
// /build, /out and /tmp together. It returns how the limit is enforced, for
// the log.
func (w *Workspace) Limit(writeBytes int64) (string, error) {
	if writeBytes <= 0 {
		return "bytes written: not limited", nil
	}
	if !w.tmpfs {
		return "bytes written: not limited (a size-limited tmpfs needs root)", nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(w.Root, &st); err != nil {
		return "", errs.Wrap(errs.Internal, err, "sandbox: statfs %s", w.Root)
	}
	used := int64(st.Blocks-st.Bfree) * int64(st.Bsize)
	size := used + writeBytes
	if err := syscall.Mount("afterlife-workspace", w.Root, "tmpfs", syscall.MS_REMOUNT|syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755,size="+strconv.FormatInt(size, 10)); err != nil {
		return "", errs.Wrap(errs.Internal, err, "sandbox: limit the workspace to %d bytes", size)
	}
	return fmt.Sprintf("bytes written: tmpfs of %d bytes (%d staged + %d) for /build, /out and /tmp", size, used, writeBytes), nil
}

// RemoveWorkspace removes what a workspace left at dir when its builder
// died before Close: it unmounts the tmpfs, if one is there, and removes
// the directory. A dir that does not exist is fine.
func RemoveWorkspace(dir string) error {
	if os.Geteuid() == 0 {
		var here, parent syscall.Stat_t
		if syscall.Stat(dir, &here) == nil && syscall.Stat(filepath.Dir(dir), &parent) == nil && here.Dev != parent.Dev {
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				return errs.Wrap(errs.Internal, err, "sandbox: unmount %s", dir)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return errs.Wrap(errs.Internal, err, "sandbox: remove %s", dir)
	}
	return nil
}

// Close unmounts the workspace and removes it.
func (w *Workspace) Close() error {
	if w.tmpfs {
		if err := syscall.Unmount(w.Root, syscall.MNT_DETACH); err != nil {
			return errs.Wrap(errs.Internal, err, "sandbox: unmount %s", w.Root)
		}
		w.tmpfs = false
	}
	return os.RemoveAll(w.Root)
}
