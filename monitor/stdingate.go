package monitor

import (
	"sync"

	"github.com/conmon-go/conmon-go/ptyio"
)

// stdinGate is the attach server's view of the container's stdin: the pty master arrives
// only after the runtime ran, and clients may already be connected by then. Until it is
// known, writers wait (back-pressure); without any stdin, input is discarded.
type stdinGate struct {
	ready  chan struct{}
	once   sync.Once
	target *ptyio.Stdin
}

func newStdinGate() *stdinGate { return &stdinGate{ready: make(chan struct{})} }

func (g *stdinGate) open(t *ptyio.Stdin) {
	g.once.Do(func() {
		g.target = t
		close(g.ready)
	})
}

func (g *stdinGate) WriteStdin(p []byte) error {
	<-g.ready
	if g.target == nil {
		return nil
	}
	return g.target.WriteStdin(p)
}

func (g *stdinGate) ClientInputClosed() {
	<-g.ready
	if g.target != nil {
		g.target.ClientInputClosed()
	}
}
