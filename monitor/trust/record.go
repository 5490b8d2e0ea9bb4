package trust

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/conmon-go/conmon-go/exitfile"
)

// Record is one decision as stored in <dir>/<cid>.trust (docs/trust.md §6): one JSON object
// on one line, written and read with encoding/json.
type Record struct {
	CID           string `json:"cid"`
	SandboxID     string `json:"sandbox_id"`
	ContainerType string `json:"container_type"`
	Trusted       bool   `json:"trusted"`
	Privileged    bool   `json:"privileged"`
	Runtime       string `json:"runtime"`
	UntrustedArgs bool   `json:"untrusted_args"` // --runtime-untrusted-arg applies
	Reason        string `json:"reason"`
}

// line encodes the record as its file's content: runtime paths and reasons are written
// as they are (no HTML escaping of <, > and &), followed by a newline.
func (rec Record) line() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// InsecureDirError: the record directory could be written by someone other than root or
// us, and whoever writes a record chooses the runtime, so its records are not honoured.
type InsecureDirError struct {
	Dir  string
	UID  uint32 // owner
	Mode uint32 // permission bits
	EUID uint32
}

func (e *InsecureDirError) Error() string {
	return fmt.Sprintf("trust records in %s: directory owned by uid %d with mode %04o (must be owned by root or uid %d and not writable by group or others)",
		e.Dir, e.UID, e.Mode, e.EUID)
}

// BadRecordError: a record exists but cannot be used.
type BadRecordError struct {
	Path string
	Err  error
}

func (e *BadRecordError) Error() string { return "trust record " + e.Path + ": " + e.Err.Error() }
func (e *BadRecordError) Unwrap() error { return e.Err }

// recordPath refuses ids that would name a file outside dir: a SandboxID comes from
// the container's own annotations.
func recordPath(dir, id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsRune(id, '/') {
		return "", fmt.Errorf("invalid container id %q for a trust record", id)
	}
	return filepath.Join(dir, id+".trust"), nil
}

// CheckDir returns an *InsecureDirError unless dir is owned by root or the effective uid
// and not writable by group or others; a *fs.PathError if it cannot be examined.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &os.PathError{Op: "stat", Path: dir, Err: syscall.ENOTDIR}
	}
	st := fi.Sys().(*syscall.Stat_t)
	euid := uint32(os.Geteuid())
	if (st.Uid != 0 && st.Uid != euid) || st.Mode&0o022 != 0 {
		return &InsecureDirError{Dir: dir, UID: st.Uid, Mode: st.Mode & 0o7777, EUID: euid}
	}
	return nil
}

// WriteRecord stores d as <dir>/<d.CID>.trust, replacing any stale record atomically
// (temporary file in dir, then rename) so that readers never see a partial record.
func WriteRecord(dir string, d Decision) error {
	path, err := recordPath(dir, d.CID)
	if err != nil {
		return err
	}
	line, err := Record{
		CID: d.CID, SandboxID: d.SandboxID, ContainerType: d.ContainerType,
		Trusted: d.Trusted, Privileged: d.Privileged, Runtime: d.Runtime,
		UntrustedArgs: d.UseUntrusted, Reason: d.LogText(),
	}.line()
	if err != nil {
		return fmt.Errorf("write trust record %s: %w", path, err)
	}
	// 0644 whatever the umask: the dispatcher runs what a record names.
	return exitfile.WriteMode(path, line, 0o644)
}

// ReadRecord reads <dir>/<id>.trust. A missing record gives an error matching
// fs.ErrNotExist; an *InsecureDirError or *BadRecordError means the record must be
// ignored with a warning.
func ReadRecord(dir, id string) (Record, error) {
	path, err := recordPath(dir, id)
	if err != nil {
		return Record{}, err
	}
	if err := CheckDir(dir); err != nil {
		return Record{}, err
	}
	data, err := readOwnedFile(path)
	if err != nil {
		return Record{}, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, &BadRecordError{Path: path, Err: err}
	}
	if r.CID != id || r.Runtime == "" {
		return Record{}, &BadRecordError{Path: path, Err: errors.New("cid does not match or runtime missing")}
	}
	return r, nil
}

// readOwnedFile reads path, a regular file (not a link) owned by root or the effective uid
// and not writable by group or others; a file that is not is a *BadRecordError.
func readOwnedFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &BadRecordError{Path: path, Err: errors.New("is a symbolic link")}
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	euid := uint32(os.Geteuid())
	switch {
	case !fi.Mode().IsRegular():
		return nil, &BadRecordError{Path: path, Err: errors.New("not a regular file")}
	case (st.Uid != 0 && st.Uid != euid) || st.Mode&0o022 != 0:
		return nil, &BadRecordError{Path: path, Err: fmt.Errorf("owned by uid %d with mode %04o: only root or uid %d may write it", st.Uid, st.Mode&0o7777, euid)}
	}
	return io.ReadAll(io.LimitReader(f, maxRecordSize))
}

// maxRecordSize bounds what is read of a record: one JSON line of a few hundred bytes.
const maxRecordSize = 64 << 10

// RemoveRecord deletes <dir>/<cid>.trust; a record that is already gone is not an error.
func RemoveRecord(dir, cid string) error {
	path, err := recordPath(dir, cid)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
