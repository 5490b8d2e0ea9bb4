package e2eutil

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Record is one k8s-file log record.
type Record struct {
	TS, Stream string
	Partial    bool
	Content    []byte // an F record's content with its \n; a P record's without
}

const tsLayout = "2006-01-02T15:04:05.000000000-07:00"

// ParseRecord parses one log line (without its final \n) and checks its syntax:
//
//	<timestamp:35> ' ' <stdout|stderr> ' ' <P|F> ' ' <content>
//
// Content aliases line for P records.
func ParseRecord(line []byte) (Record, error) {
	if len(line) < 44 || line[35] != ' ' || line[42] != ' ' || len(line) > 44 && line[44] != ' ' {
		return Record{}, fmt.Errorf("malformed log record %q", Trunc(line))
	}
	ts := string(line[:35])
	if _, err := time.Parse(tsLayout, ts); err != nil || strings.Contains(ts, "Z") {
		return Record{}, fmt.Errorf("record timestamp %q: %v", ts, err)
	}
	r := Record{TS: ts, Stream: string(line[36:42])}
	if r.Stream != "stdout" && r.Stream != "stderr" {
		return r, fmt.Errorf("record stream %q in %q", r.Stream, Trunc(line))
	}
	if len(line) == 44 {
		return r, fmt.Errorf("record without the space after the tag: %q", line)
	}
	switch line[43] {
	case 'P':
		r.Partial = true
		r.Content = line[45:]
	case 'F':
		r.Content = append(line[45:len(line):len(line)], '\n')
	default:
		return r, fmt.Errorf("record tag %q in %q", line[43], Trunc(line))
	}
	return r, nil
}

// ParseLog parses a whole k8s-file log, which must end with a newline.
func ParseLog(data []byte) ([]Record, error) {
	var recs []Record
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return recs, fmt.Errorf("log ends without a newline: %q", Trunc(data))
		}
		r, err := ParseRecord(data[:i])
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
		data = data[i+1:]
	}
	return recs, nil
}

// Joined reassembles one stream from its P/F records.
func Joined(recs []Record, stream string) []byte {
	var out []byte
	for _, r := range recs {
		if r.Stream == stream {
			out = append(out, r.Content...)
		}
	}
	return out
}

// Trunc shortens b for messages.
func Trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
