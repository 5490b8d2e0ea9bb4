package person

import "strings"

// DefaultDetachKeys is podman's detach sequence.
const DefaultDetachKeys = "ctrl-p,ctrl-q"

// parseDetachKeys turns a podman-style sequence ("ctrl-p,ctrl-q"; each key is ctrl-<c>
// for c in a-z @ [ \ ] ^ _, or one character) into the bytes a terminal sends for it.
// The empty string disables detaching.
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var keys []byte
	for _, k := range strings.Split(s, ",") {
		switch {
		case len(k) == 1:
			keys = append(keys, k[0])
		case len(k) == 6 && strings.HasPrefix(strings.ToLower(k), "ctrl-"):
			c := k[5]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			switch {
			case c >= 'a' && c <= 'z':
				keys = append(keys, c-'a'+1)
			case strings.IndexByte("@[\\]^_", c) >= 0:
				keys = append(keys, c-'@')
			default:
				return nil, fail("invalid detach key %s: ctrl- takes a letter or one of @[\\]^_", k)
			}
		default:
			return nil, fail(`invalid detach key %q: use ctrl-<letter> or one character, e.g. "ctrl-p,ctrl-q"`, k)
		}
	}
	return keys, nil
}

// detacher finds the detach sequence in the input stream. Bytes that may begin it are
// held back until it is clear whether the rest follows, then forwarded if it does not.
type detacher struct {
	keys []byte
	held int
	out  []byte
}

// scan returns the bytes of p to forward (valid until the next call) and whether the
// sequence was completed; the bytes after it are dropped.
func (d *detacher) scan(p []byte) ([]byte, bool) {
	if len(d.keys) == 0 {
		return p, false
	}
	d.out = d.out[:0]
	for _, b := range p {
		if b != d.keys[d.held] && d.held > 0 {
			d.out = append(d.out, d.keys[:d.held]...)
			d.held = 0
		}
		if b != d.keys[d.held] {
			d.out = append(d.out, b)
			continue
		}
		d.held++
		if d.held == len(d.keys) {
			d.held = 0
			return d.out, true
		}
	}
	return d.out, false
}

// pending returns the bytes held back, at the end of the input.
func (d *detacher) pending() []byte {
	p := d.keys[:d.held]
	d.held = 0
	return p
}
