package main

// Pure helpers: statistics, /proc parsing, number formatting. Covered by proc_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime/stime in /proc/<pid>/stat; fixed at 100 by the Linux ABI.
const userHZ = 100

// median returns the median of xs (mean of the two middle values for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// quartiles returns the 25th, 50th and 75th percentiles (nearest rank).
func quartiles(xs []float64) (p25, p50, p75 float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(q float64) float64 { return s[int(q*float64(len(s)-1)+0.5)] }
	return at(0.25), median(s), at(0.75)
}

// medianInterval returns a 95% confidence interval of the median of xs, free of any
// assumption about their distribution: the number of values below the median is binomial
// (n, 1/2), so the ranks n/2 ∓ 0.98·√n (normal approximation) bound it. With ten values
// or fewer it is their whole range.
func medianInterval(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := float64(len(s))
	half := 0.98 * math.Sqrt(n)
	i := max(int(math.Floor(n/2-half)), 1)       // 1-based rank
	j := min(int(math.Ceil(n/2+1+half)), len(s)) // 1-based rank
	return s[i-1], s[j-1]
}

// procStat is what the bench needs from /proc/<pid>/stat.
type procStat struct {
	State byte
	CPU   time.Duration // utime + stime of the whole thread group
}

// parseStat parses /proc/<pid>/stat. The command name (field 2) may contain spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no ')' after the command name")
	}
	// After ") ": field 3 (state) is f[0], so field n is f[n-3].
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("stat: %d fields after the command name, want >= 13", len(f))
	}
	utime, err := strconv.ParseUint(f[14-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat: utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[15-3], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat: stime: %w", err)
	}
	ticks := time.Duration(utime + stime)
	return procStat{State: f[0][0], CPU: ticks * time.Second / userHZ}, nil
}

// memInfo is a monitor's footprint, in bytes except Threads.
type memInfo struct {
	RSS, PSS, Anon int64
	Threads        int
}

// parseKB reads "Key:   123 kB" lines into the keys asked for; a key missing from the
// input is an error.
func parseKB(b []byte, keys map[string]*int64) error {
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		dst, ok := keys[k]
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return fmt.Errorf("%s: no value", k)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		*dst = n
		seen++
	}
	if seen < len(keys) {
		return fmt.Errorf("found %d of %d keys", seen, len(keys))
	}
	return nil
}

// parseMem combines /proc/<pid>/smaps_rollup (Pss, Anonymous) and /proc/<pid>/status
// (VmRSS, Threads).
func parseMem(smapsRollup, status []byte) (memInfo, error) {
	var m memInfo
	if err := parseKB(smapsRollup, map[string]*int64{"Pss": &m.PSS, "Anonymous": &m.Anon}); err != nil {
		return m, fmt.Errorf("smaps_rollup: %w", err)
	}
	var threads int64
	if err := parseKB(status, map[string]*int64{"VmRSS": &m.RSS, "Threads": &threads}); err != nil {
		return m, fmt.Errorf("status: %w", err)
	}
	m.Threads = int(threads)
	return m, nil
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func readMem(pid int) (memInfo, error) {
	sr, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memInfo{}, err
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memInfo{}, err
	}
	return parseMem(sr, st)
}

// countLines counts '\n' in r: one per k8s-file record.
func countLines(r io.Reader) (int, error) {
	buf := make([]byte, 1<<20)
	n := 0
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	for _, line := range strings.Split(string(cpuinfo), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// Cell formats. MB is 10^6 bytes, the unit of the budgets; ms2 is for a monitor's own share
// of a round, a few tenths of a millisecond.
func mb(bytes float64) string    { return fmt.Sprintf("%.2f MB", bytes/1e6) }
func ms(seconds float64) string  { return fmt.Sprintf("%.1f ms", seconds*1e3) }
func ms2(seconds float64) string { return fmt.Sprintf("%.2f ms", seconds*1e3) }
func count(n float64) string     { return fmt.Sprintf("%.0f", n) }

// writeLinesFile writes size bytes of 71-byte lines (70 characters and a newline).
func writeLinesFile(path string, size int) error {
	line := []byte(line70 + "\n")
	buf := bytes.Repeat(line, (1<<20)/len(line)+1)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for left := size; left > 0; {
		n := min(left, len(buf))
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}
