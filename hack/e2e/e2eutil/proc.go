package e2eutil

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcValue returns the first field after key in a /proc file of "Key: value" lines
// (/proc/<pid>/status, smaps_rollup).
func ProcValue(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			if fields := strings.Fields(rest); len(fields) > 0 {
				return fields[0], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return "", fmt.Errorf("%s: no %s", path, key)
}

// Proc is a process found by Processes.
type Proc struct {
	Pid  int
	Argv []string
}

// Processes lists the live (non-zombie) processes other than this one whose argv satisfies
// match.
func Processes(match func(argv []string) bool) []Proc {
	entries, _ := os.ReadDir("/proc")
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !PidAlive(pid) {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(raw) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		if match(argv) {
			out = append(out, Proc{pid, argv})
		}
	}
	return out
}
