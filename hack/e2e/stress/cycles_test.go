package stress

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

// Start/exit cycles, several at once: every container prints a line and exits with its
// own code; each exit file and log must be right, and at the end nothing is left: no
// process (the test process is the subreaper of every monitor), no exit file, attach
// socket, socket-dir link or console socket. Every fourth container has a terminal.
func TestStartExitCycles(t *testing.T) {
	setup(t)
	t.Cleanup(func() { checkNoStrays(t) })
	cycles := size(200, 10000)
	const workers = 4
	maxFailures := int64(size(5, 20))
	var next, done, failures atomic.Int64
	began := time.Now()
	t.Run("workers", func(t *testing.T) {
		for w := range workers {
			t.Run(strconv.Itoa(w), func(t *testing.T) {
				t.Parallel()
				g := newGroup(t)
				for {
					i := int(next.Add(1) - 1)
					if i >= cycles || failures.Load() >= maxFailures {
						break
					}
					if err := cycle(g, i); err != nil {
						failures.Add(1)
						t.Errorf("cycle %d: %v", i, err)
					}
					done.Add(1)
				}
				g.checkEmpty(t)
			})
		}
	})
	wall := time.Since(began)
	report(t, "cycles", "%d in %d workers, %d failed", done.Load(), workers, failures.Load())
	report(t, "wall time", "%v (%.1f cycles/s)", wall.Round(time.Millisecond), float64(done.Load())/wall.Seconds())
}

// cycle runs container i from create to delete.
func cycle(g *group, i int) error {
	code := i % 256
	c, err := g.newCtr(i%4 == 3, nil, "sh", "-c", fmt.Sprintf("echo cycle %d; exit %d", i, code))
	if err != nil {
		return err
	}
	if _, _, err := c.create(c.spec(monitorPath)); err != nil {
		return c.abandon(err)
	}
	if err := c.runc("start", c.ID); err != nil {
		return c.abandon(err)
	}
	// The exit file comes after the drain: the whole output is in the log by then.
	if _, err := e2eutil.AwaitFile(c.exitFile(), 20*time.Second, e2eutil.NonEmpty); err != nil {
		return err
	}
	want := fmt.Sprintf("cycle %d\n", i)
	if c.tty {
		want = strings.Replace(want, "\n", "\r\n", 1)
	}
	data, err := os.ReadFile(c.LogPath)
	recs, perr := e2eutil.ParseLog(data)
	if err != nil || perr != nil || string(e2eutil.Joined(recs, "stdout")) != want {
		return fmt.Errorf("log %q (%v, %v), want stdout %q", data, err, perr, want)
	}
	return c.finish(strconv.Itoa(code))
}
