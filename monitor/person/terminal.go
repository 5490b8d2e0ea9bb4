package person

import (
	"os"
	"sync"

	"github.com/containerd/console"
)

// userTerminal is the person's terminal: in raw mode while their keys go to a container's
// terminal, and the source of the window size forwarded to it.
type userTerminal struct {
	raw  console.Console // stdin, put in raw mode; nil when not
	size console.Console // stdin's or stdout's terminal; nil when neither is one
	once sync.Once
}

// openTerminal finds the person's terminal and, with raw, puts stdin in raw mode when it
// is a terminal. restore must be called on every way out.
func openTerminal(raw bool) (*userTerminal, error) {
	t := &userTerminal{}
	in, inErr := console.ConsoleFromFile(os.Stdin)
	if inErr == nil {
		t.size = in
	} else if out, err := console.ConsoleFromFile(os.Stdout); err == nil {
		t.size = out
	}
	if raw && inErr == nil {
		if err := in.SetRaw(); err != nil {
			return nil, fail("raw mode on %s: %w", os.Stdin.Name(), err)
		}
		t.raw = in
	}
	return t, nil
}

// winsize returns the window size; ok is false without a terminal.
func (t *userTerminal) winsize() (rows, cols int, ok bool) {
	if t == nil || t.size == nil {
		return 0, 0, false
	}
	ws, err := t.size.Size()
	if err != nil || ws.Height == 0 || ws.Width == 0 {
		return 0, 0, false
	}
	return int(ws.Height), int(ws.Width), true
}

// rawAgain puts the terminal back in raw mode after a job-control stop, during which the
// shell may have reset it.
func (t *userTerminal) rawAgain() {
	if t != nil && t.raw != nil {
		t.raw.SetRaw()
	}
}

// restore gives the terminal back its settings from before openTerminal.
func (t *userTerminal) restore() {
	if t == nil || t.raw == nil {
		return
	}
	t.once.Do(func() { t.raw.Reset() })
}
