package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroup is a per-run control group used for the process and memory limits
// when this host lets us make one (root, or a delegated subtree), on cgroup
// v2 or, where the pids and memory controllers sit on v1 hierarchies (as on
// hybrid hosts), on v1. Without it, processes are bounded by RLIMIT_NPROC
// on the run's own uid (as root) and memory by RLIMIT_AS per process.
type cgroup struct {
	dirs   []string // one per hierarchy (v2: one; v1: pids and/or memory)
	v2     bool
	pids   string // dir holding pids.* files, "" when not limited
	memory string // dir holding memory.* files, "" when not limited
}

func newCgroup(l Limits, none bool) (*cgroup, []string) {
	if l.MaxProcs <= 0 && l.MemoryBytes <= 0 {
		return nil, nil
	}
	if none {
		var notes []string
		if l.MaxProcs > 0 {
			notes = append(notes, "processes: no pids cgroup")
		}
		if l.MemoryBytes > 0 {
			notes = append(notes, "memory: no memory cgroup")
		}
		return nil, notes
	}
	name := "afterlife-" + randomHex()
	cg := &cgroup{}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		cg.v2 = true
		dir := filepath.Join(cgroupRoot, ownCgroup(""), name)
		if os.Mkdir(dir, 0o755) != nil {
			return nil, []string{"processes: not limited (cannot create a cgroup here)"}
		}
		cg.dirs = []string{dir}
		if l.MaxProcs > 0 && writeFile(filepath.Join(dir, "pids.max"), strconv.Itoa(l.MaxProcs)) {
			cg.pids = dir
		}
		if l.MemoryBytes > 0 && writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(l.MemoryBytes, 10)) {
			_ = writeFile(filepath.Join(dir, "memory.swap.max"), "0")
			cg.memory = dir
		}
	} else {
		if l.MaxProcs > 0 {
			dir := filepath.Join(cgroupRoot, "pids", ownCgroup("pids"), name)
			if os.Mkdir(dir, 0o755) == nil {
				cg.dirs = append(cg.dirs, dir)
				if writeFile(filepath.Join(dir, "pids.max"), strconv.Itoa(l.MaxProcs)) {
					cg.pids = dir
				}
			}
		}
		if l.MemoryBytes > 0 {
			dir := filepath.Join(cgroupRoot, "memory", ownCgroup("memory"), name)
			if os.Mkdir(dir, 0o755) == nil {
				cg.dirs = append(cg.dirs, dir)
				if writeFile(filepath.Join(dir, "memory.limit_in_bytes"), strconv.FormatInt(l.MemoryBytes, 10)) {
					// Memory plus swap, so the build cannot swap past the limit
					// (absent when the kernel does not account swap).
					_ = writeFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), strconv.FormatInt(l.MemoryBytes, 10))
					cg.memory = dir
				}
			}
		}
	}
	version := "v1"
	if cg.v2 {
		version = "v2"
	}
	var notes []string
	if l.MaxProcs > 0 {
		if cg.pids != "" {
			notes = append(notes, "processes: pids cgroup "+version+" max "+strconv.Itoa(l.MaxProcs))
		} else {
			notes = append(notes, "processes: no pids cgroup available")
		}
	}
	if l.MemoryBytes > 0 {
		if cg.memory != "" {
			notes = append(notes, "memory: memory cgroup "+version+" limit "+strconv.FormatInt(l.MemoryBytes, 10)+" bytes for the whole build")
		} else {
			notes = append(notes, "memory: no memory cgroup available")
		}
	}
	if len(cg.dirs) == 0 {
		return nil, notes
	}
	return cg, notes
}

// join moves pid into every hierarchy of the cgroup. The caller does it
// while the process still waits at its gate, before it runs anything else;
// writing from here also works when the process has already left root.
func (c *cgroup) join(pid int) error {
	for _, d := range c.dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// kill ends every process left in the cgroup.
func (c *cgroup) kill() {
	for _, d := range c.dirs {
		if c.v2 && writeFile(filepath.Join(d, "cgroup.kill"), "1") {
			continue
		}
		for _, pid := range readPids(filepath.Join(d, "cgroup.procs")) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (c *cgroup) pidsExhausted() bool {
	if c.pids == "" {
		return false
	}
	return eventCount(filepath.Join(c.pids, "pids.events"), "max") > 0
}

func (c *cgroup) memoryExhausted() bool {
	if c.memory == "" {
		return false
	}
	if c.v2 {
		return eventCount(filepath.Join(c.memory, "memory.events"), "oom_kill") > 0
	}
	return eventCount(filepath.Join(c.memory, "memory.oom_control"), "oom_kill") > 0
}

// remove deletes the cgroups once empty; the kernel refuses while a process
// is still inside, so stragglers are killed first.
func (c *cgroup) remove() {
	c.kill()
	deadline := time.Now().Add(2 * time.Second)
	for _, d := range c.dirs {
		for {
			err := os.Remove(d)
			if err == nil || os.IsNotExist(err) || time.Now().After(deadline) {
				break
			}
			c.kill()
			time.Sleep(10 * time.Millisecond) // the kernel reaps killed tasks asynchronously
		}
	}
}

// ownCgroup is this process's cgroup path for a v1 controller, or the v2
// path when controller is "".
func ownCgroup(controller string) string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "/"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if controller != "" && c == controller {
				return parts[2]
			}
		}
	}
	return "/"
}

func eventCount(file, key string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func readPids(file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

func writeFile(path, value string) bool {
	return os.WriteFile(path, []byte(value), 0o644) == nil
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
