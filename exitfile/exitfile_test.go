package exitfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestWriteIntIsAtomicAndExact(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cid")
	// inotify shows what a watching engine sees: one IN_MOVED_TO for the final name and no
	// IN_CLOSE_WRITE on it (the content was complete before the name existed).
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ifd)
	if _, err := unix.InotifyAddWatch(ifd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    int
		want string
	}{{137, "137"}, {-1, "-1"}, {0, "0"}} {
		if err := WriteInt(path, tc.n); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != tc.want {
			t.Fatalf("WriteInt(%d): %q, %v; want %q", tc.n, got, err, tc.want)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	old := unix.Umask(0)
	unix.Umask(old)
	if want := os.FileMode(0o666 &^ old); st.Mode().Perm() != want {
		t.Errorf("mode %v, want %v", st.Mode().Perm(), want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	buf := make([]byte, 4096)
	n, err := unix.Read(ifd, buf)
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for off := 0; off < n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
		if name == "cid" {
			if ev.Mask&unix.IN_MOVED_TO == 0 {
				t.Errorf("event %#x on the final name; want only IN_MOVED_TO", ev.Mask)
			}
			moved++
		}
		off += unix.SizeofInotifyEvent + int(ev.Len)
	}
	if moved != 3 {
		t.Errorf("%d IN_MOVED_TO events for the final name, want 3", moved)
	}
}

func TestWriteFailsCleanly(t *testing.T) {
	err := Write(filepath.Join(t.TempDir(), "missing", "exit"), []byte("0"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("want a not-exist error naming the path, got %v", err)
	}
}

func TestTouchKeepsContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "oom")
	if err := Touch(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Touch(path); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "x" {
		t.Fatalf("Touch changed an existing file: %q", got)
	}
}

func TestWritePid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conmon.pid")
	if err := WritePid(path, 4242); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "4242" {
		t.Fatalf("pid file %q, %v; want 4242 without a newline", got, err)
	}
}

// plantOutside makes a directory "outside" next to dir holding one file, and returns it
// with a check that it is unchanged: the same single file, content and mode.
func plantOutside(t *testing.T) (outside string, unchanged func()) {
	t.Helper()
	outside = t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	return outside, func() {
		t.Helper()
		entries, err := os.ReadDir(outside)
		if err != nil || len(entries) != 1 {
			t.Errorf("outside directory holds %v (%v), want only victim", entries, err)
		}
		st, err := os.Stat(victim)
		if got, _ := os.ReadFile(victim); string(got) != "precious" || err != nil || st.Mode() != 0o600 {
			t.Errorf("victim %q mode %v (%v), want \"precious\" 0600", got, st.Mode(), err)
		}
	}
}

// A symbolic link planted at an exit file's name is replaced, never followed.
func TestWriteReplacesPlantedLink(t *testing.T) {
	outside, unchanged := plantOutside(t)
	dir := t.TempDir()
	for name, target := range map[string]string{"exit": "victim", "cid": "new"} {
		path := filepath.Join(dir, name)
		if err := os.Symlink(filepath.Join(outside, target), path); err != nil {
			t.Fatal(err)
		}
		if err := WriteInt(path, 3); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
			t.Fatalf("%s: %v, %v; want a regular file", name, st.Mode(), err)
		}
	}
	unchanged()
}

// Names the kernel refuses (a NUL byte, longer than NAME_MAX) fail without leaving
// anything behind.
func TestWriteRefusesImpossibleNames(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a\x00b", string(bytes.Repeat([]byte("a"), 4096)), string(bytes.Repeat([]byte("b"), 250))} {
		if err := WriteInt(filepath.Join(dir, name), 0); err == nil {
			t.Errorf("name of %d bytes accepted", len(name))
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

// Touch creates a regular file, and leaves whatever exists at the name alone: a link is not
// followed (neither to an existing file nor to a new one), a FIFO is not opened (which
// would block until a writer came).
func TestTouchNeverFollowsOrBlocks(t *testing.T) {
	outside, unchanged := plantOutside(t)
	dir := t.TempDir()
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	if err := Touch(filepath.Join(dir, "oom")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(filepath.Join(dir, "oom")); err != nil || st.Mode() != 0o644 {
		t.Fatalf("oom: %v, %v; want a regular file 0644", st.Mode(), err)
	}
	planted := map[string]func(string) error{
		"link":     func(p string) error { return os.Symlink(filepath.Join(outside, "victim"), p) },
		"dangling": func(p string) error { return os.Symlink(filepath.Join(outside, "new"), p) },
		"fifo":     func(p string) error { return unix.Mkfifo(p, 0o600) },
	}
	for name, plant := range planted {
		path := filepath.Join(dir, name)
		if err := plant(path); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Lstat(path)
		done := make(chan error, 1)
		go func() { done <- Touch(path) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Touch blocked", name)
		}
		if after, err := os.Lstat(path); err != nil || after.Mode() != before.Mode() {
			t.Errorf("%s: now %v (%v), was %v", name, after.Mode(), err, before.Mode())
		}
	}
	unchanged()
}

// A file system that runs full mid-write fails the write with its errno and leaves no
// temporary file (the monitor then still writes the other exit file).
func TestWriteOnFullFileSystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, "exit")
	err := Write(path, bytes.Repeat([]byte("x"), 64<<10))
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Write on a full file system: %v, want ENOSPC", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

// WriteMode sets exactly the mode asked for, whatever the umask.
func TestWriteModeIgnoresUmask(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	path := filepath.Join(t.TempDir(), "record")
	if err := WriteMode(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	unix.Umask(0o077)
	if err := WriteMode(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v (%v) with umask 077, want 0644", fi.Mode().Perm(), err)
	}
}
