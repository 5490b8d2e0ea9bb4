package e2eutil

// The engine's side of the monitor's start-up protocol: the fds it passes (_OCI_SYNCPIPE,
// _OCI_STARTPIPE, _OCI_ATTACHPIPE), the launcher process, and the messages read back.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/conmon-go/conmon-go/seqpacket"
)

// Transport is the kind of fd pair an engine hands the monitor.
type Transport int

const (
	NoPipe     Transport = iota
	SeqPacket            // podman: AF_UNIX SOCK_SEQPACKET socketpair
	StreamSock           // CRI-O create: AF_UNIX SOCK_STREAM socketpair
	PlainPipe            // CRI-O ExecSync sync pipe: pipe(2)
)

// FDPair makes a pair of kind. The engine's end is non-blocking (deadlines work through
// the poller), the monitor's blocking; both are close-on-exec (exec.Cmd.ExtraFiles passes
// the child's end).
func FDPair(kind Transport) (ours, child *os.File, err error) {
	if kind == PlainPipe {
		return os.Pipe()
	}
	typ := unix.SOCK_SEQPACKET
	if kind == StreamSock {
		typ = unix.SOCK_STREAM
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "engine-end"), os.NewFile(uintptr(fds[1]), "monitor-end"), nil
}

// SyncMsg is one message of the sync or attach pipe.
type SyncMsg struct {
	Raw  string
	Keys map[string]json.RawMessage
}

// Int returns the integer value of key.
func (s SyncMsg) Int(key string) (int, bool) {
	v, ok := s.Keys[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(string(v))
	return n, err == nil
}

// Message returns the "message" string, "" when absent.
func (s SyncMsg) Message() string {
	var m string
	_ = json.Unmarshal(s.Keys["message"], &m)
	return m
}

// ReadMsg reads one datagram like podman (SEQPACKET: one message per write, at most 4096
// bytes, ending in \n) or, with dec, decodes one object like CRI-O (stream socket or pipe).
func ReadMsg(f *os.File, dec *json.Decoder, timeout time.Duration) (SyncMsg, error) {
	if err := f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return SyncMsg{}, err
	}
	var s SyncMsg
	if dec != nil {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return s, err
		}
		s.Raw = string(raw)
		return s, json.Unmarshal(raw, &s.Keys)
	}
	buf := make([]byte, 65536)
	n, err := seqpacket.ReadPacket(f, buf)
	if err != nil {
		return s, err
	}
	s.Raw = string(buf[:n])
	if n > 4096 || !strings.HasSuffix(s.Raw, "\n") || strings.Count(s.Raw, "\n") != 1 {
		return s, fmt.Errorf("datagram %q: want one \\n-terminated message of at most 4096 bytes", s.Raw)
	}
	return s, json.Unmarshal(buf[:n], &s.Keys)
}

// MonitorSpec is how an engine starts a monitor.
type MonitorSpec struct {
	Bin    string
	Args   []string
	Dir    string   // working directory
	Env    []string // added to PATH and HOME
	Sync   Transport
	Start  Transport
	Attach bool   // --exec-attach: a SOCK_SEQPACKET attach pipe
	DevDir string // non-empty: run in a private mount namespace with this directory as /dev (DevDir)
}

// Monitor is a started launcher (or --sync monitor) and the engine's ends of its fds.
type Monitor struct {
	Cmd                    *exec.Cmd
	Stdout, Stderr         *bytes.Buffer // complete once Done is closed
	SyncF, StartF, AttachF *os.File      // nil when not passed
	Done                   chan struct{} // closed when the process was reaped
	Started                time.Time     // just before fork
	syncDec                *json.Decoder // CRI-O's reading of a stream or pipe
}

// StartMonitor starts s.Bin the way an engine does: its own process group, a minimal
// environment, and the _OCI_* variables naming the fds passed.
func StartMonitor(s MonitorSpec) (*Monitor, error) {
	m := &Monitor{Stdout: new(bytes.Buffer), Stderr: new(bytes.Buffer), Done: make(chan struct{})}
	cmd := exec.Command(s.Bin, s.Args...)
	if s.DevDir != "" {
		cmd = exec.Command("unshare", PrivateDevArgs(s.DevDir, s.Bin, s.Args)...)
	}
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = m.Stdout, m.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A killed launcher whose stdio another process still holds (a --sync monitor's
	// container, a passthrough daemon) must not keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, s.Env...)
	var ours, childEnds []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	add := func(kind Transport, name string) (*os.File, error) {
		o, child, err := FDPair(kind)
		if err != nil {
			return nil, err
		}
		ours, childEnds = append(ours, o), append(childEnds, child)
		cmd.ExtraFiles = append(cmd.ExtraFiles, child)
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", name, 2+len(cmd.ExtraFiles)))
		return o, nil
	}
	var err error
	if s.Sync != NoPipe {
		if m.SyncF, err = add(s.Sync, "_OCI_SYNCPIPE"); err == nil && s.Sync != SeqPacket {
			m.syncDec = json.NewDecoder(m.SyncF)
		}
	}
	if err == nil && s.Start != NoPipe {
		m.StartF, err = add(s.Start, "_OCI_STARTPIPE")
	}
	if err == nil && s.Attach {
		m.AttachF, err = add(SeqPacket, "_OCI_ATTACHPIPE")
	}
	if err == nil {
		m.Started = time.Now()
		err = cmd.Start()
	}
	closeAll(childEnds)
	if err != nil {
		closeAll(ours)
		return nil, fmt.Errorf("start %s: %w", s.Bin, err)
	}
	m.Cmd = cmd
	go func() { _ = cmd.Wait(); close(m.Done) }()
	return m, nil
}

// WriteStart writes one start byte.
func (m *Monitor) WriteStart() error {
	if _, err := m.StartF.Write([]byte{0}); err != nil {
		return fmt.Errorf("write start pipe: %w", err)
	}
	return nil
}

// Wait waits for the process to end and returns its exit status; after timeout it kills
// it and returns an error.
func (m *Monitor) Wait(timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-m.Done:
		return m.Cmd.ProcessState.ExitCode(), nil
	case <-t.C:
		_ = m.Cmd.Process.Kill()
		<-m.Done
		return -1, fmt.Errorf("monitor process %d did not exit (and release its stdout/stderr) within %v; stderr: %s",
			m.Cmd.Process.Pid, timeout, m.Stderr.String())
	}
}

// ReadSync reads the next message of the sync pipe.
func (m *Monitor) ReadSync(timeout time.Duration) (SyncMsg, error) {
	return ReadMsg(m.SyncF, m.syncDec, timeout)
}

// ReadAttachPipe reads the next message of the attach pipe.
func (m *Monitor) ReadAttachPipe(timeout time.Duration) (SyncMsg, error) {
	return ReadMsg(m.AttachF, nil, timeout)
}

// CloseFiles closes the engine's ends.
func (m *Monitor) CloseFiles() {
	for _, f := range []*os.File{m.SyncF, m.StartF, m.AttachF} {
		if f != nil {
			f.Close()
		}
	}
}

// CtrPaths are the names an engine gives the monitor of one container.
type CtrPaths struct {
	ID, Bundle, RuncRoot, ExitDir, PersistDir, SockDir, LogPath, PidFile, ConmonPid string
}

// CRIOArgs is CRI-O 1.36's CreateContainer argv (API 0), with a private runc root and
// socket dir; runc is the runtime's absolute path.
func (p CtrPaths) CRIOArgs(runc string, extra ...string) []string {
	return append([]string{"-b", p.Bundle, "-c", p.ID, "--exit-dir", p.ExitDir, "-l", p.LogPath,
		"--log-level", "info", "-n", "k8s_e2e_pod_ns_uid_0", "-P", p.ConmonPid, "-p", p.PidFile,
		"--persist-dir", p.PersistDir, "-r", runc, "--runtime-arg", "--root=" + p.RuncRoot,
		"--socket-dir-path", p.SockDir, "--syslog", "-u", p.ID}, extra...)
}

// ReadPidFile reads a pid file as engines do: a positive decimal without white space.
func ReadPidFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(data))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("pid file %s: content %q is not a positive decimal without whitespace", path, data)
	}
	return n, nil
}

// PidAlive reports whether the process exists and has not exited (a zombie counts as gone).
func PidAlive(pid int) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
	return err == nil && n == 0
}

// WriteProcessSpec writes the OCI process of an exec (--exec-process-spec): args as root
// in /, with a terminal when tty.
func WriteProcessSpec(path string, tty bool, args ...string) error {
	data, err := json.Marshal(map[string]any{
		"terminal": tty,
		"user":     map[string]any{"uid": 0, "gid": 0},
		"args":     args,
		"env":      []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
		"cwd":      "/",
	})
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// PodmanExecArgs is podman 4.3.1's exec argv (API 1, --exec-attach) for session in its
// directory dir: the exit file goes to <dir>/exit, the exec pid to <dir>/exec_pid, the
// monitor's pid to <dir>/conmon.pid.
func PodmanExecArgs(runc, runcRoot, cid, session, dir, spec string) []string {
	return []string{"--api-version", "1", "-c", cid, "-u", session, "-r", runc, "-b", dir,
		"-p", filepath.Join(dir, "exec_pid"), "-n", "e2e", "--exit-dir", filepath.Join(dir, "exit"),
		"--full-attach", "-l", "none", "--log-level", "warning", "--runtime-arg", "--root=" + runcRoot,
		"-e", "--exec-attach", "--exec-process-spec", spec, "-P", filepath.Join(dir, "conmon.pid")}
}

// ExecSyncArgs is CRI-O's ExecSync argv (API 0, --sync) with extra options before the
// process spec; dir holds the exec's pid file.
func ExecSyncArgs(runc, runcRoot, cid, sockDir, dir, logPath, spec string, extra ...string) []string {
	argv := append([]string{"-c", cid, "-n", "k8s_e2e", "-r", runc, "-p", filepath.Join(dir, "pidfile"), "-e",
		"-l", logPath, "--socket-dir-path", sockDir, "--log-level", "info", "--sync"}, extra...)
	return append(argv, "--exec-process-spec", spec, "--runtime-arg", "--root="+runcRoot)
}

// NewID returns a random container id in the engines' form: 64 hex digits.
func NewID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
