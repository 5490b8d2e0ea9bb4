// Package ptyio plumbs the container's stdio: the pipes handed to the runtime, the console
// socket and pty master of a terminal container, the stdin writer used by the attach server,
// and the output pumps that feed the log drivers and attach clients.
package ptyio

import "time"

// Stream identifies an output stream; the values equal the attach frame ids.
type Stream byte

// Output streams.
const (
	Stdout Stream = 2
	Stderr Stream = 3
)

// LogDriver receives every chunk read from the container, in read order per stream.
// Implementations lock themselves: Write is called from the stdout and stderr pump goroutines.
type LogDriver interface {
	Write(s Stream, p []byte, now time.Time) // p is valid only during the call
	Flush()                                  // end of output: a pending partial line becomes a final record
	Reopen()                                 // ctl "2 0 0"
	Sync() error                             // fsync at exit (no-op where meaningless)
	Close() error
}

// Broadcaster is the attach side seen by the output path. Broadcast waits only while an
// attach client that keeps reading is behind (back-pressure, as with conmon), at most
// about half a second for one that stopped reading, which is then disconnected.
type Broadcaster interface {
	Broadcast(s Stream, p []byte)
}
