package person

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/monitor/ctl"
	"github.com/conmon-go/conmon-go/seqpacket"
)

// RunOptions is what `conmon-go run` was asked for.
type RunOptions struct {
	Bundle      string   // bundle directory; or
	Rootfs      string   // root filesystem for a default configuration
	Args        []string // the container's command; replaces the bundle's
	Terminal    bool     // give the container a terminal (a bundle may ask for one itself)
	Stdin       bool     // forward stdin to the container
	Runtime     string   // OCI runtime: a path, or a name looked up in PATH
	Name        string   // names the state directory; generated when empty
	LogPaths    []string // the monitor's -l values; "k8s-file" alone means <state dir>/ctr.log
	StateDir    string   // default: <StateBase>/<name>
	Detach      bool     // leave the container running and return
	Quiet       bool     // no report on stderr
	Remove      bool     // remove the state directory after the container ended
	DetachKeys  string
	StopTimeout time.Duration // after a forwarded SIGTERM/SIGINT/SIGHUP, SIGKILL follows
	LogLevel    string        // the monitor's --log-level
}

// exitTimeout bounds the wait for the exit file after the output ended: the monitor writes
// it right after closing its clients, once its bounded drain is over.
const exitTimeout = 10 * time.Second

// container is one run: its names, paths and the processes serving it.
type container struct {
	o        RunOptions
	id, name string
	dir      string
	rt       runtime
	report   io.Writer // the person's report: stderr, or discarded with --quiet
	terminal bool
	unit     *unit

	watch      *exitWatch
	escalation sync.Once
	kill       *time.Timer // SIGKILL after StopTimeout, once a terminating signal was forwarded
}

func (c *container) path(name string) string { return filepath.Join(c.dir, name) }

// Run starts one container under the monitor and, unless detached, stays with it until it
// ends; it returns the container's exit status. An error comes with the status to exit
// with (ExitCode).
func Run(o RunOptions) (int, error) {
	sigc, release := catchSignals()
	defer release()
	keys, err := parseDetachKeys(o.DetachKeys)
	if err != nil {
		return ExitFailure, err
	}
	c, err := prepare(o)
	if err != nil {
		return ExitCode(err), err
	}
	cpid, mpid, err := launch(c.monitorArgs(), c.rt.env, c.path("conmon.pid"), sigc)
	c.watch = newExitWatch([]string{c.path("exits/" + c.id), c.path("exit")}, mpid)
	defer c.watch.close()
	if err != nil {
		// No container ran: nothing to look at once the monitor is gone.
		c.rt.delete(c.id, true)
		c.watch.waitMonitor(exitTimeout)
		c.removeState()
		var in *interrupted
		if errors.As(err, &in) {
			return exitSignalBase + int(in.sig), nil
		}
		return ExitCode(err), err
	}
	c.printInfo(cpid, mpid)

	if o.Detach {
		return c.startDetached(mpid)
	}
	return c.runAttached(sigc, keys)
}

// prepare checks the options, makes the state directory and writes the bundle.
func prepare(o RunOptions) (*container, error) {
	if (o.Bundle == "") == (o.Rootfs == "") {
		return nil, fail("give either --bundle DIR or --rootfs DIR")
	}
	// The bundle is written into the state directory: its paths must not depend on ours.
	for _, p := range []*string{&o.Bundle, &o.Rootfs} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, fail("%s: %w", *p, err)
		}
		*p = abs
	}
	if slices.ContainsFunc(o.LogPaths, func(p string) bool { return strings.SplitN(p, ":", 2)[0] == "passthrough" }) {
		return nil, fail("-l passthrough hands the caller's stdio to the container, which engines do; run shows the output through the attach socket: use k8s-file or journald")
	}
	if o.Remove && o.Detach {
		return nil, fail("--rm needs the foreground: after --detach nobody is left to remove the state directory")
	}
	rt, err := findRuntime(o.Runtime)
	if err != nil {
		return nil, err
	}
	id := newID()
	c := &container{o: o, id: id, name: o.Name, rt: rt, report: os.Stderr, unit: &unit{}}
	if o.Quiet {
		c.report = io.Discard
	}
	if c.name == "" {
		c.name = id[:12]
	} else if !validName(c.name) {
		return nil, fail("invalid name %q: use letters, digits, _ . - (not first)", c.name)
	}
	if c.dir = o.StateDir; c.dir == "" {
		base, err := StateBase()
		if err != nil {
			return nil, fail("%w", err)
		}
		c.dir = filepath.Join(base, c.name)
	}
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return nil, fail("state directory %s: %w", o.StateDir, err)
	}
	if o.Bundle == c.dir {
		return nil, fail("the state directory must not be the bundle %s", o.Bundle)
	}
	if err := c.makeStateDir(); err != nil {
		return nil, err
	}
	c.terminal, err = writeConfig(c.dir, bundleSpec{
		Bundle: o.Bundle, Rootfs: o.Rootfs, Args: o.Args, Terminal: o.Terminal, Hostname: c.name,
	})
	if err != nil {
		c.removeState()
		return nil, err
	}
	return c, nil
}

// newID returns a container id like engines use: 64 random hex digits. The id is the
// runtime's; people use the name. getrandom(2) directly: crypto/rand would bring the
// FIPS modules into every monitor's binary.
func newID() string {
	var b [32]byte
	for n := 0; n < len(b); {
		m, err := unix.Getrandom(b[n:], 0)
		if err != nil && err != unix.EINTR {
			panic("getrandom: " + err.Error()) // Linux ≥ 3.17 always has it
		}
		n += max(m, 0)
	}
	return hex.EncodeToString(b[:])
}

// stateFiles are the files a run leaves in its state directory.
var stateFiles = []string{"config.json", "attach", "ctl", "winsz", "ctr.log", "pidfile", "conmon.pid", "exit", "oom"}

// makeStateDir creates the state directory, or takes over one left by a container that
// has ended. Anything else there is left alone.
func (c *container) makeStateDir() error {
	entries, err := os.ReadDir(c.dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fail("state directory: %w", err)
	case len(entries) == 0:
	default:
		// One connect: a monitor that accepts nobody listens all the same.
		once, cancel := context.WithCancel(context.Background())
		cancel()
		conn, err := seqpacket.Dial(once, c.path("attach"))
		if err == nil {
			conn.Close()
		}
		if err == nil || errors.Is(err, seqpacket.ErrNotAccepting) {
			return fail("container %s is running (state directory %s)", c.name, c.dir)
		}
		if !finished(c.dir) && !monitorGone(c.dir) {
			return fail("%s holds no ended container: remove it or choose another --name", c.dir)
		}
		c.removeStateFiles()
	}
	if err := os.MkdirAll(c.path("exits"), 0o700); err != nil {
		return fail("state directory: %w", err)
	}
	return nil
}

// finished reports whether dir is the state directory of a container that has ended.
func finished(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "exit")); err == nil {
		return true
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "exits"))
	return len(entries) > 0
}

// removeState removes the state directory when it holds nothing but a run's files.
func (c *container) removeState() {
	c.removeStateFiles()
	os.Remove(c.dir)
}

// monitorGone reports whether dir belonged to a monitor that is no longer running (killed
// before it wrote an exit file): its pid file names a process that is gone or that is not
// a monitor of dir.
func monitorGone(dir string) bool {
	pid, err := readPid(filepath.Join(dir, "conmon.pid"))
	if err != nil {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err != nil || !strings.Contains(string(cmdline), "\x00"+dir+"\x00")
}

func (c *container) removeStateFiles() {
	for _, f := range stateFiles {
		os.Remove(c.path(f))
	}
	rotated, _ := filepath.Glob(c.path("ctr.log.*"))
	for _, f := range rotated {
		os.Remove(f)
	}
	if entries, err := os.ReadDir(c.path("exits")); err == nil {
		for _, e := range entries {
			os.Remove(c.path("exits/" + e.Name()))
		}
	}
	os.Remove(c.path("exits"))
}

// logPaths are the monitor's -l values: the given ones, else journald when our stderr is
// the journal (a systemd service), else a k8s-file in the state directory.
func (c *container) logPaths() []string {
	paths := c.o.LogPaths
	if len(paths) == 0 {
		if ok, _ := journal.StderrIsJournalStream(); ok {
			return []string{"journald"}
		}
		paths = []string{"k8s-file"}
	}
	out := make([]string, len(paths))
	for i, p := range paths {
		if p == "k8s-file" {
			p = "k8s-file:" + c.path("ctr.log")
		}
		out[i] = p
	}
	return out
}

// journaled reports whether the container's output goes to journald while our stdout is
// the journal too (a systemd service): copying it there would log every line twice.
func (c *container) journaled() bool {
	if !slices.Contains(c.logPaths(), "journald") {
		return false
	}
	ok, _ := journal.StdoutIsJournalStream()
	return ok
}

// monitorArgs is the monitor's command line, podman's for `run`: the state directory is
// the bundle and holds the pid files, the k8s-file log and the exit files.
func (c *container) monitorArgs() []string {
	args := []string{
		os.Args[0], "--api-version", "1",
		"-c", c.id, "-u", c.id, "-n", c.name,
		"-r", c.rt.path, "-b", c.dir,
		"-p", c.path("pidfile"), "--conmon-pidfile", c.path("conmon.pid"),
		"--exit-dir", c.path("exits"), "--persist-dir", c.dir,
		"--full-attach", "--syslog", "--log-level", c.o.LogLevel,
		// Whoever is attached, or nobody after a detach: the container leaves the runtime
		// when it ends, as podman's exit command sees to.
		"--exit-command", c.rt.path, "--exit-command-arg", "delete", "--exit-command-arg", c.id,
	}
	for _, p := range c.logPaths() {
		args = append(args, "-l", p)
	}
	switch {
	case c.terminal:
		args = append(args, "-t")
	case c.o.Stdin:
		args = append(args, "-i")
		if c.o.Detach {
			// Several attach sessions may come and go: none of them closes stdin.
			args = append(args, "--leave-stdin-open")
		}
	}
	return args
}

func (c *container) printInfo(cpid, mpid int) {
	fmt.Fprintf(c.report, "conmon-go: container %s (pid %d, monitor pid %d)\n", c.name, cpid, mpid)
	fmt.Fprintf(c.report, "  state:  %s\n", c.dir)
	for _, p := range c.logPaths() {
		switch {
		case strings.HasPrefix(p, "k8s-file:"):
			fmt.Fprintf(c.report, "  log:    %s\n", strings.TrimPrefix(p, "k8s-file:"))
		case p == "journald":
			fmt.Fprintf(c.report, "  log:    journald (journalctl CONTAINER_NAME=%s)\n", c.name)
		default:
			fmt.Fprintf(c.report, "  log:    %s\n", p)
		}
	}
	fmt.Fprintf(c.report, "  attach: %s\n", c.path("attach"))
	fmt.Fprintf(c.report, "  exit:   %s\n", c.path("exits/"+c.id))
}

// target is what to give `conmon-go attach`: the name when it finds the state directory
// by it.
func (c *container) target() string {
	if base, err := StateBase(); err == nil && filepath.Join(base, c.name) == c.dir {
		return c.name
	}
	return c.dir
}

// start runs the runtime's start. A container whose command ends at once can be gone
// before runc has cleaned up after the start: the monitor's exit command has deleted it,
// and runc reports that as a failure ("remove …/exec.fifo"). The exit file, which the
// monitor writes before it runs the exit command, tells that the container did run.
func (c *container) start() error {
	err := c.rt.start(c.id)
	if err != nil {
		if _, ran := c.watch.read(); ran {
			return nil
		}
	}
	return err
}

// startDetached starts the container and leaves it to its monitor. Under systemd the
// monitor becomes the unit's main process: it is the one that stays.
func (c *container) startDetached(mpid int) (int, error) {
	if err := c.start(); err != nil {
		c.discard()
		return ExitFailure, fail("%w", err)
	}
	c.unit.ready(mpid)
	fmt.Fprintf(c.report, "conmon-go: detached; attach with: conmon-go attach %s\n", c.target())
	fmt.Println(c.name)
	return 0, nil
}

// runAttached connects to the attach socket, starts the container and stays with it: the
// output goes to our stdout and stderr, signals to the container, and the container's exit
// status becomes ours.
func (c *container) runAttached(sigc <-chan os.Signal, keys []byte) (int, error) {
	conn, err := dial(c.path("attach"), sigc, terminating)
	if err != nil {
		c.discard()
		var in *interrupted
		if errors.As(err, &in) {
			return exitSignalBase + int(in.sig), nil
		}
		return ExitFailure, fail("%w", err)
	}
	s := &session{conn: conn, keys: detacher{keys: keys}, mute: c.journaled(), noInput: true}
	if c.o.Stdin {
		if s.in, err = readInput(); err != nil {
			conn.Close()
			c.discard()
			return ExitFailure, err
		}
		defer s.in.stop()
	}
	term, err := openTerminal(c.terminal && s.in != nil)
	if err != nil {
		conn.Close()
		c.discard()
		return ExitFailure, err
	}
	defer term.restore()
	s.term = term
	if c.terminal {
		if s.ctl, err = ctl.OpenWriter(c.dir); err != nil {
			term.restore()
			conn.Close()
			c.discard()
			return ExitFailure, fail("%w", err)
		}
		defer s.ctl.Close()
		s.resize() // before the start, as podman does: the first prompt fits
	}
	if err := c.start(); err != nil {
		term.restore()
		conn.Close()
		c.discard()
		return ExitFailure, fail("%w", err)
	}
	c.unit.ready(os.Getpid())
	c.unit.watchdog()

	out := s.stay(c.path("attach"), sigc, c.forward, c.report)
	if c.kill != nil {
		c.kill.Stop()
	}
	s.in.stop()
	s.conn.Close()
	term.restore()
	if out == detached {
		c.unit.stopWatchdog()
		fmt.Fprintf(c.report, "\nconmon-go: detached from %s; attach again with: conmon-go attach %s\n", c.name, c.target())
		return 0, nil
	}
	return c.finish()
}

// forward passes a signal to the container through the runtime. After one that asks it to
// end, the container has StopTimeout to do so before it is killed: an init process ignores
// signals it installed no handler for.
func (c *container) forward(sig syscall.Signal) bool {
	if sig == unix.SIGPIPE {
		// Our stdout is gone: nobody sees the output any more.
		sig = unix.SIGTERM
	}
	go c.rt.kill(c.id, sig)
	if terminating(sig) {
		c.unit.stopping()
		c.escalation.Do(func() {
			c.kill = time.AfterFunc(c.o.StopTimeout, func() {
				fmt.Fprintf(c.report, "\r\nconmon-go: container %s still runs %v after %s: killing it\r\n", c.name, c.o.StopTimeout, unix.SignalName(sig))
				c.rt.kill(c.id, unix.SIGKILL)
			})
		})
	}
	return false
}

// finish waits for the exit status, removes the container from the runtime as engines do,
// and reports.
func (c *container) finish() (int, error) {
	c.unit.stopping()
	status, err := c.watch.wait(exitTimeout)
	c.unit.stopWatchdog()
	if err != nil {
		c.abandon()
		return ExitFailure, fail("container %s: %w", c.name, err)
	}
	// The monitor ends once its exit command removed the container from the runtime; a
	// unit stops cleanly once it is gone.
	if !c.watch.waitMonitor(exitTimeout) {
		c.rt.delete(c.id, true)
	}
	fmt.Fprintf(c.report, "conmon-go: container %s exited with status %d\n", c.name, status)
	if c.o.Remove {
		c.removeState()
	}
	return status, nil
}

// abandon ends a container whose monitor cannot be used: the runtime kills and removes it,
// after which the monitor ends too.
func (c *container) abandon() {
	c.unit.stopping()
	c.rt.delete(c.id, true)
}

// discard abandons a container that never started and removes its state directory once
// the monitor is gone: there is nothing in it to look at.
func (c *container) discard() {
	c.abandon()
	c.watch.waitMonitor(exitTimeout)
	c.removeState()
}
