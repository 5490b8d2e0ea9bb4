package ctl

import (
	"errors"
	"fmt"
)

// ctl line (engine -> monitor), ASCII, one per message:
//
//	<type> <a> <b>\n      type 1: resize, a = rows, b = columns
//	                      type 2: reopen logs (a, b required and range-checked)
//
// winsz line: <rows> <cols>\n
const (
	TypeResize = 1
	TypeReopen = 2

	maxSize = 1000 // both dimensions must be within 0..maxSize

	outOfRange = 1 << 32 // magnitude beyond any C int
)

// Message is a valid ctl line.
type Message struct {
	Type int
	A, B int // rows and columns for TypeResize
}

var (
	errFormat = errors.New("Invalid control message format")
	errWinsz  = errors.New("Failed to parse window size")
)

// ParseControl parses one ctl line (without its newline) like conmon 2.2.x:
// sscanf("%d %d %d"), trailing text ignored, type 1 or 2, both values within 0..1000.
// The error text is the warning conmon prints.
func ParseControl(line []byte) (Message, error) {
	var v [3]int64
	if scanInts(line, v[:]) != 3 {
		return Message{}, errFormat
	}
	if v[0] != TypeResize && v[0] != TypeReopen {
		return Message{}, fmt.Errorf("Invalid control message type: %d", v[0])
	}
	if err := checkSize(v[1], v[2]); err != nil {
		return Message{}, err
	}
	return Message{Type: int(v[0]), A: int(v[1]), B: int(v[2])}, nil
}

// ParseWinsz parses one winsz line: two integers, same range check.
func ParseWinsz(line []byte) (rows, cols int, err error) {
	var v [2]int64
	if scanInts(line, v[:]) != 2 {
		return 0, 0, errWinsz
	}
	if err := checkSize(v[0], v[1]); err != nil {
		return 0, 0, err
	}
	return int(v[0]), int(v[1]), nil
}

func checkSize(a, b int64) error {
	if a < 0 || b < 0 || a > maxSize || b > maxSize {
		return fmt.Errorf("Invalid window size: %dx%d (must be between 0 and 1000)", a, b)
	}
	return nil
}

// scanInts reads up to len(v) integers the way C's sscanf("%d %d ...") does and returns
// how many it read. A NUL byte ends the input like the end of a C string. Values beyond
// the C int range saturate at ±outOfRange, so they are never mistaken for valid ones
// (glibc would wrap them).
func scanInts(s []byte, v []int64) int {
	i := 0
	for k := range v {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		neg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			neg = s[i] == '-'
			i++
		}
		start := i
		var n int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if n < outOfRange {
				n = n*10 + int64(s[i]-'0')
			}
			i++
		}
		if i == start {
			return k
		}
		n = min(n, outOfRange)
		if neg {
			n = -n
		}
		v[k] = n
	}
	return len(v)
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || (c >= '\t' && c <= '\r')
}
