package trust

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Record is one decision as stored in <dir>/<cid>.trust (§6): one JSON object on one
// line. The tags name the members; appendJSON and parseRecord (and encoding/json, in the
// tests) follow them.
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

// member is one member of a record's JSON object and the field that holds it.
type member struct {
	name    string
	str     *string // a string member, or
	boolean *bool   // a boolean one
}

// members lists rec's members in the order they are written.
func (rec *Record) members() []member {
	return []member{
		{name: "cid", str: &rec.CID},
		{name: "sandbox_id", str: &rec.SandboxID},
		{name: "container_type", str: &rec.ContainerType},
		{name: "trusted", boolean: &rec.Trusted},
		{name: "privileged", boolean: &rec.Privileged},
		{name: "runtime", str: &rec.Runtime},
		{name: "untrusted_args", boolean: &rec.UntrustedArgs},
		{name: "reason", str: &rec.Reason},
	}
}

// appendJSON appends the record's line.
func (rec Record) appendJSON(b []byte) []byte {
	sep := byte('{')
	for _, m := range rec.members() {
		b = append(append(b, sep, '"'), m.name...)
		b = append(b, '"', ':')
		if m.str != nil {
			b = appendJSONString(b, *m.str)
		} else {
			b = strconv.AppendBool(b, *m.boolean)
		}
		sep = ','
	}
	return append(b, "}\n"...)
}

// parseRecord decodes a record line as encoding/json would into Record.
func parseRecord(data []byte) (Record, error) {
	var rec Record
	members := rec.members()
	err := readDocument(data, func(r *jsonReader) error {
		return r.structObject(func(key string) error {
			for _, m := range members {
				switch {
				case !strings.EqualFold(key, m.name):
				case m.str != nil:
					return r.stringField(m.str, m.name)
				default:
					return r.boolField(m.boolean, m.name)
				}
			}
			return r.skipValue()
		}, "trust record")
	})
	return rec, err
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
	line := Record{
		CID: d.CID, SandboxID: d.SandboxID, ContainerType: d.ContainerType,
		Trusted: d.Trusted, Privileged: d.Privileged, Runtime: d.Runtime,
		UntrustedArgs: d.UseUntrusted, Reason: d.LogText(),
	}.appendJSON(nil)
	f, err := os.CreateTemp(dir, "."+d.CID+".trust.")
	if err != nil {
		return fmt.Errorf("write trust record: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(line)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp creates 0600
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write trust record %s: %w", path, err)
	}
	return nil
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
	data, err := os.ReadFile(path)
	if err != nil {
		return Record{}, err
	}
	r, err := parseRecord(data)
	if err != nil {
		return Record{}, &BadRecordError{Path: path, Err: err}
	}
	if r.CID != id || r.Runtime == "" {
		return Record{}, &BadRecordError{Path: path, Err: errors.New("cid does not match or runtime missing")}
	}
	return r, nil
}

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
