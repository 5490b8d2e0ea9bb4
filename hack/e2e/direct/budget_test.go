package direct

import (
	"strconv"
	"testing"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// Budgets for a CI guard against memory and thread regressions, not a measurement (make
// bench measures). The targets (docs/differences.md §6) are 0.8 MB anonymous memory and at
// most 5 threads per idle monitor. Memory has generous headroom. Threads: 5 once the spare
// thread is retired, 6 when a later slow system call made the runtime start a spare again;
// 7 means the runtime-start thread or the spare was kept.
const (
	maxIdleAnonKB  = 1536
	maxIdleThreads = 6
)

// Five idle monitors, each with a running container and an attached log: every monitor
// stays within the anonymous-memory and thread budgets.
func TestIdleMonitorBudget(t *testing.T) {
	setup(t)
	requireConmonGo(t)
	const n = 5
	pids := make([]int, n)
	for i := range pids {
		c := newContainer(t, bundleOpts{}, "sleep", "1000")
		podmanStyle.create(t, c)
		c.start()
		pid, err := readPidFile(c.conmonPid)
		if err != nil {
			t.Fatal(err)
		}
		pids[i] = pid
	}
	for _, pid := range pids {
		anon := procField(t, "/proc/"+strconv.Itoa(pid)+"/smaps_rollup", "Anonymous:")
		threads := procField(t, "/proc/"+strconv.Itoa(pid)+"/status", "Threads:")
		t.Logf("monitor %d: anonymous %d kB, %d threads", pid, anon, threads)
		if anon > maxIdleAnonKB {
			t.Errorf("monitor %d: %d kB anonymous memory, budget %d kB", pid, anon, maxIdleAnonKB)
		}
		if threads > maxIdleThreads {
			t.Errorf("monitor %d: %d threads, budget %d", pid, threads, maxIdleThreads)
		}
	}
}

// procField returns the first (decimal) number after key in a /proc file.
func procField(t *testing.T, path, key string) int {
	t.Helper()
	v, err := strconv.Atoi(procValue(t, path, key))
	if err != nil {
		t.Fatalf("%s: %s %v", path, key, err)
	}
	return v
}

// procHex returns the hexadecimal mask after key in a /proc file (SigIgn:, SigCgt:).
func procHex(t *testing.T, path, key string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(procValue(t, path, key), 16, 64)
	if err != nil {
		t.Fatalf("%s: %s %v", path, key, err)
	}
	return v
}

func procValue(t *testing.T, path, key string) string {
	t.Helper()
	v, err := e2eutil.ProcValue(path, key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
