package ctl

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// The writer's lines are what the FIFO reader accepts; sizes beyond its range are clamped
// instead of being rejected.
func TestWriterResize(t *testing.T) {
	bundle, r := setup(t)
	w, err := OpenWriter(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, size := range [][2]int{{30, 100}, {5000, -3}, {1, 1}} {
		if err := w.Resize(size[0], size[1]); err != nil {
			t.Fatal(err)
		}
	}
	got := r.until(t, "resize 1x1")
	if want := []string{"resize 30x100", "resize 1000x0", "resize 1x1"}; !slices.Equal(got, want) {
		t.Fatalf("events %q; want %q", got, want)
	}
	if warns := r.takeWarns(); len(warns) > 0 {
		t.Fatalf("the monitor warned: %q", warns)
	}
}

// Without a monitor holding the FIFO, opening fails at once instead of blocking.
func TestOpenWriterWithoutReader(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(dir+"/ctl", 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenWriter(dir); !errors.Is(err, unix.ENXIO) {
		t.Fatalf("OpenWriter = %v; want ENXIO", err)
	}
}
