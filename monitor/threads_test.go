package monitor

import (
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseThreadCount(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int
		ok   bool
	}{
		{"1234 (conmon) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 5 0 99 1000 200", 5, true},
		// A command name with spaces and parentheses: the name ends at the last ')'.
		{"7 (a) b (c) ) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 12 0 1 2 3", 12, true},
		{"7 (x) R 1 7 7", 0, false},
		{"7 (x) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 many 0", 0, false},
	} {
		got, err := parseThreadCount(tc.stat)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseThreadCount(%q) = %d, %v; want %d (ok %v)", tc.stat, got, err, tc.want, tc.ok)
		}
	}
}

// retireSpareThreads ends idle threads.
func TestRetireSpareThreads(t *testing.T) {
	// Goroutines blocked in system calls at the same time leave idle threads behind.
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := unix.NsecToTimespec(int64(20 * time.Millisecond))
			unix.Nanosleep(&ts, nil)
		}()
	}
	wg.Wait()
	before, err := threadCount()
	if err != nil {
		t.Fatal(err)
	}
	if tasks, err := os.ReadDir("/proc/self/task"); err != nil || len(tasks) != before {
		t.Fatalf("threadCount %d, /proc/self/task: %d entries (%v)", before, len(tasks), err)
	}
	if before <= idleThreads {
		t.Fatalf("only %d threads: no spare to retire", before)
	}
	retireSpareThreads()
	after, err := threadCount()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("threads: %d before, %d after", before, after)
	if after >= before {
		t.Errorf("threads: %d before, %d after retiring spares", before, after)
	}
}
