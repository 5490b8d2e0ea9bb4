package stress

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Many containers created at once through CRI-O's fd protocol, by the monitor under test
// and by conmon in the same run: every create reports a pid, every container's exit file
// appears with its code. The create times (launcher fork to pid on the sync pipe) are
// reported, not judged: make bench measures speed.
func TestCreateBurst(t *testing.T) {
	setup(t)
	t.Cleanup(func() { checkNoStrays(t) })
	n, rounds := size(20, 100), size(1, 3)
	bins := []string{monitorPath}
	if _, err := os.Stat(refConmon); err == nil && monitorPath != refConmon {
		bins = append(bins, refConmon)
	} else {
		t.Logf("no comparison: %s missing or under test", refConmon)
	}
	slowest := map[string][]time.Duration{}
	for r := range rounds {
		order := bins
		if r%2 == 1 {
			order = slices.Clone(bins)
			slices.Reverse(order)
		}
		for _, bin := range order {
			took, cpu := burst(t, bin, n)
			slices.Sort(took)
			slowest[bin] = append(slowest[bin], took[len(took)-1])
			report(t, fmt.Sprintf("round %d: %s", r+1, bin), "%d creates: fastest %v, median %v, slowest %v; CPU per container (launcher and monitor) %v",
				n, ms(took[0]), ms(took[len(took)/2]), ms(took[len(took)-1]), ms(cpu/time.Duration(n)))
		}
	}
	if len(bins) == 2 {
		a, b := slices.Max(slowest[bins[0]]), slices.Max(slowest[bins[1]])
		report(t, "slowest create", "%s %v, conmon %v (%.2fx) over %d round(s) of %d on %d CPUs",
			bins[0], ms(a), ms(b), float64(a)/float64(b), rounds, n, runtime.NumCPU())
	}
}

// burst creates n containers with bin at once, then starts them and checks their ends;
// it returns the create times and the CPU time the launchers and monitors used.
func burst(t *testing.T, bin string, n int) ([]time.Duration, time.Duration) {
	t.Helper()
	g := newGroup(t)
	ctrs := make([]*ctr, n)
	for i := range ctrs {
		ctrs[i] = g.mustCtr(t, false, nil, "sh", "-c", "exit "+strconv.Itoa(i%256))
	}
	took := make([]time.Duration, n)
	errs := make([]error, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			_, took[i], errs[i] = c.create(c.spec(bin))
		}()
	}
	close(gate)
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("%s: create %d: %v", bin, i, err)
			_ = ctrs[i].abandon(err)
		}
	}
	if failed > 0 {
		t.FailNow()
	}
	// The engine starts them (several at a time) and sees each end.
	sem := make(chan struct{}, 4)
	for i, c := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			err := c.runc("start", c.ID)
			if err == nil {
				err = c.finish(strconv.Itoa(i % 256))
			} else {
				err = c.abandon(err)
			}
			if err != nil {
				t.Errorf("%s: container %d: %v", bin, i, err)
			}
		}()
	}
	wg.Wait()
	g.checkEmpty(t)
	var cpu time.Duration
	for _, c := range ctrs {
		cpu += c.launcherCPU
		if c.mon != nil {
			cpu += time.Duration(c.mon.cpu) * clockTick
		}
	}
	return took, cpu
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
