package ptyio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

func stdinPipes(t *testing.T) *Pipes {
	t.Helper()
	p, err := NewPipes(true, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.CloseChildEnds()
		p.Stdin.Close()
		p.Stderr.Close()
	})
	return p
}

func TestStdinBackPressure(t *testing.T) {
	p := stdinPipes(t)
	s := NewStdin(p.Stdin, false, true, nil)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than the pipe holds
	res := make(chan error, 1)
	go func() { res <- s.WriteStdin(data) }()
	select {
	case err := <-res:
		t.Fatalf("WriteStdin returned %v while the container did not read", err)
	case <-time.After(50 * time.Millisecond):
	}
	got := make([]byte, len(data))
	if _, err := io.ReadFull(p.Child[0], got); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("stdin bytes differ")
	}
}

func TestStdinPipeClosedOnClientEOF(t *testing.T) {
	p := stdinPipes(t)
	s := NewStdin(p.Stdin, false, true, nil)
	if err := s.WriteStdin([]byte("a")); err != nil {
		t.Fatal(err)
	}
	// A writer blocked on a full pipe is released (its bytes discarded).
	res := make(chan error, 1)
	go func() { res <- s.WriteStdin(make([]byte, 4<<20)) }()
	select {
	case err := <-res:
		t.Fatalf("WriteStdin returned %v while the pipe is full", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.ClientInputClosed()
	s.ClientInputClosed()
	if err := <-res; err != nil {
		t.Errorf("pending write after close: %v", err)
	}
	if err := s.WriteStdin([]byte("b")); err != nil {
		t.Errorf("write after close: %v", err)
	}
	all, err := io.ReadAll(p.Child[0]) // EOF proves the write end is closed
	if err != nil || len(all) == 0 || all[0] != 'a' {
		t.Errorf("container read %d bytes, %v", len(all), err)
	}
}

func TestStdinLeftOpen(t *testing.T) {
	p := stdinPipes(t)
	s := NewStdin(p.Stdin, false, false, nil)
	s.ClientInputClosed()
	if err := s.WriteStdin([]byte("still")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(p.Child[0], buf); err != nil || string(buf) != "still" {
		t.Errorf("got %q %v", buf, err)
	}
}

func TestStdinTerminal(t *testing.T) {
	term, slave := receiveTerminal(t)
	s := NewStdin(term.Master, true, true, nil)
	if err := s.WriteStdin([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if got := readWithin(t, slave, 5*time.Second); got != "x\n" {
		t.Fatalf("slave read %q", got)
	}
	s.ClientInputClosed()
	if err := s.WriteStdin([]byte("dropped\n")); err != nil {
		t.Fatal(err)
	}
	// The container sees neither the discarded line nor EOF: its read just times out.
	slave.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := slave.Read(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("slave read after input closed: %d %v, want a timeout", n, err)
	}
	// The master still carries the output.
	if _, err := slave.Write([]byte("out")); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for !bytes.HasSuffix(out, []byte("out")) {
		out = append(out, readWithin(t, term.Master, 5*time.Second)...)
	}
}

func TestStdinNoDestination(t *testing.T) {
	s := NewStdin(nil, false, true, nil)
	if err := s.WriteStdin([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s.ClientInputClosed()
}
