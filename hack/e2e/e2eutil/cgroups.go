package e2eutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Hierarchy is one line of the calling process's /proc/self/cgroup, with the directory
// of its cgroup there, found through /proc/self/mountinfo.
type Hierarchy struct {
	Key         string   // "<id>:<controllers>"
	Controllers []string // "cpu", "name=systemd"; none for the unified hierarchy
	Path        string   // the process's cgroup
	// Dir is where that cgroup is mounted; "" if not here (a controller that a container
	// runtime mounted in another mount namespace only).
	Dir string
}

// OwnHierarchies returns the hierarchies of /proc/self/cgroup, in its order.
func OwnHierarchies() ([]Hierarchy, error) {
	type mount struct{ root, point, fstype, options string }
	var mounts []mount
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "<id> <parent> <dev> <root> <mount point> <options> [optional...] - <fstype> <source> <super options>"
		left, right, ok := strings.Cut(sc.Text(), " - ")
		l, r := strings.Fields(left), strings.Fields(right)
		if ok && len(l) >= 5 && len(r) >= 3 && strings.HasPrefix(r[0], "cgroup") {
			mounts = append(mounts, mount{root: l[3], point: l[4], fstype: r[0], options: r[2]})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	lines, err := ReadLines("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	var hs []Hierarchy
	for _, line := range lines {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("/proc/self/cgroup: malformed line %q", line)
		}
		key, p := f[0]+":"+f[1], f[2]
		h := Hierarchy{Key: key, Path: p}
		if f[1] != "" {
			h.Controllers = strings.Split(f[1], ",")
		}
		for _, m := range mounts {
			opts := strings.Split(m.options, ",")
			matches := m.fstype == "cgroup2" && h.Controllers == nil ||
				m.fstype == "cgroup" && h.Controllers != nil &&
					!slices.ContainsFunc(h.Controllers, func(c string) bool { return !slices.Contains(opts, c) })
			if matches && strings.HasPrefix(h.Path, m.root) {
				h.Dir = filepath.Join(m.point, strings.TrimPrefix(h.Path, m.root))
				break
			}
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// ReadLines returns the lines of a file such as /proc/<pid>/cgroup.
func ReadLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), nil
}

// Placement is a cgroup as an engine makes one for a monitor: Rel below the caller's
// own cgroup in each chosen hierarchy (of those mounted here).
type Placement struct {
	Rel    string
	hs     []Hierarchy
	chosen []bool
	made   []string // directories created, outermost first
}

// NewPlacement creates the cgroups; Remove removes them. On error nothing is left.
func NewPlacement(rel string, choose func(Hierarchy) bool) (*Placement, error) {
	hs, err := OwnHierarchies()
	if err != nil {
		return nil, err
	}
	p := &Placement{Rel: rel, hs: hs}
	for _, h := range hs {
		p.chosen = append(p.chosen, h.Dir != "" && choose(h))
		if !p.chosen[len(p.chosen)-1] {
			continue
		}
		dir := h.Dir
		for _, name := range strings.Split(rel, "/") {
			parent := dir
			dir = filepath.Join(dir, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, errors.Join(err, p.Remove())
			}
			p.made = append(p.made, dir)
			// A v1 cpuset cgroup takes no process before it has CPUs and memory nodes.
			if slices.Contains(h.Controllers, "cpuset") {
				for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
					v, err := os.ReadFile(filepath.Join(parent, file))
					if err == nil {
						err = os.WriteFile(filepath.Join(dir, file), v, 0)
					}
					if err != nil {
						return nil, errors.Join(err, p.Remove())
					}
				}
			}
		}
	}
	return p, nil
}

// Move does the engine's part: the process goes into the placement's cgroups.
func (p *Placement) Move(pid int) error {
	for i, h := range p.hs {
		if !p.chosen[i] {
			continue
		}
		procs := filepath.Join(h.Dir, p.Rel, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0); err != nil {
			return err
		}
	}
	return nil
}

// Leave moves the process back into the cgroups the placement was made in.
func (p *Placement) Leave(pid int) error {
	for i, h := range p.hs {
		if !p.chosen[i] {
			continue
		}
		if err := os.WriteFile(filepath.Join(h.Dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return err
		}
	}
	return nil
}

// Want is /proc/<pid>/cgroup of a process in the placement.
func (p *Placement) Want() []string {
	var lines []string
	for i, h := range p.hs {
		if p.chosen[i] {
			lines = append(lines, h.Key+":"+path.Join(h.Path, p.Rel))
		} else {
			lines = append(lines, h.Key+":"+h.Path)
		}
	}
	return lines
}

// Remove removes the cgroups created, innermost first. Processes killed just before may
// still be leaving them: a busy cgroup is tried again for up to two seconds.
func (p *Placement) Remove() error {
	var errs []error
	deadline := time.Now().Add(2 * time.Second)
	for i := len(p.made) - 1; i >= 0; i-- {
		err := unix.Rmdir(p.made[i])
		for err == unix.EBUSY && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			err = unix.Rmdir(p.made[i])
		}
		if err == unix.EBUSY {
			procs, _ := os.ReadFile(filepath.Join(p.made[i], "cgroup.procs"))
			err = fmt.Errorf("%w (processes: %q)", err, strings.Fields(string(procs)))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", p.made[i], err))
		}
	}
	p.made = nil
	return errors.Join(errs...)
}
