package stress

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/hack/e2e/e2eutil"
)

const refConmon = "/usr/bin/conmon"

var (
	monitorPath string // binary under test
	runcPath    string // absolute, as engines pass it
	template    []byte // config.json of a busybox bundle sharing one read-only rootfs
	skipReason  string // non-empty: every test skips with it
	conmonGo    bool   // the binary's --version second line names conmon-go

	// long selects the sizes of `make stress` (CONMON_STRESS=1) over those of `make test`.
	long = os.Getenv("CONMON_STRESS") != ""
)

// size picks the short or the long variant of a figure.
func size[T any](short, longer T) T {
	if long {
		return longer
	}
	return short
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(engineEnv); spec != "" {
		os.Exit(engineMain(spec))
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	suite, err := e2eutil.SetUp("e2e-stress-", 8)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(suite.Tmp)
	if skipReason = suite.Skip; skipReason != "" {
		return m.Run()
	}
	runcPath, monitorPath, conmonGo = suite.Runc, suite.Monitor, suite.ConmonGo
	if template, err = os.ReadFile(filepath.Join(suite.Template, "config.json")); err == nil {
		template, err = withRootfs(template, filepath.Join(suite.Template, "rootfs"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Daemonised monitors are re-parented to this process instead of PID 1: a monitor that
	// leaves a process behind, or is left behind itself, shows up as a child of ours.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "PR_SET_CHILD_SUBREAPER: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "monitor under test: %s (%s); %s mode\n", monitorPath, suite.Version, size("short", "long (CONMON_STRESS)"))
	code := m.Run()
	if left := strays(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes left behind by the tests (re-parented to the test process): %s\n", strings.Join(left, "; "))
		code = 1
	}
	printFigures()
	return code
}

// withRootfs makes the bundle config point at the shared rootfs by its absolute path.
func withRootfs(config []byte, rootfs string) ([]byte, error) {
	var cfg map[string]any
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, err
	}
	cfg["root"].(map[string]any)["path"] = rootfs
	return json.Marshal(cfg)
}

// setup skips when the machine cannot run the tests; every test calls it first.
func setup(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// requireConmonGo skips tests of behaviour where conmon-go deliberately differs from conmon.
func requireConmonGo(t *testing.T) {
	t.Helper()
	if !conmonGo {
		t.Skipf("conmon-go behaviour: %s --version does not name conmon-go", monitorPath)
	}
}

// ---- figures ----

type figure struct{ test, name, value string }

var (
	figuresMu sync.Mutex
	figures   []figure
)

// report logs a figure and keeps it for the table printed at the end.
func report(t *testing.T, name, format string, args ...any) {
	t.Helper()
	v := fmt.Sprintf(format, args...)
	t.Logf("%s: %s", name, v)
	figuresMu.Lock()
	figures = append(figures, figure{t.Name(), name, v})
	figuresMu.Unlock()
}

func printFigures() {
	figuresMu.Lock()
	defer figuresMu.Unlock()
	if len(figures) == 0 {
		return
	}
	fmt.Printf("\nconmon-go stress figures (%s mode, %s, %s):\n", size("short", "long"), monitorPath, time.Now().Format(time.DateTime))
	// Grouped by top-level test, in the order the tests reported.
	slices.SortStableFunc(figures, func(a, b figure) int {
		return strings.Compare(strings.SplitN(a.test, "/", 2)[0], strings.SplitN(b.test, "/", 2)[0])
	})
	w := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(w, "test\tfigure\tvalue")
	for _, f := range figures {
		fmt.Fprintf(w, "%s\t%s\t%s\n", f.test, f.name, f.value)
	}
	w.Flush()
}
