package exitfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
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
