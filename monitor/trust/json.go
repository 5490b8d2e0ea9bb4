package trust

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The trust decision reads two JSON documents: the bundle's config.json (only
// "annotations" and "linux.namespaces") and its own records. encoding/json and the
// reflect package it needs would add about 370 kB to a binary that every container on a
// node maps, so this file reads exactly those shapes by hand. It accepts and rejects what
// encoding/json's Unmarshal does for the same Go types, field for field: names match
// case-insensitively, null leaves a value alone (and clears a map, slice or pointer), a
// repeated object key decodes into what the first one left, a value of the wrong type is
// an error once the whole document has been read. FuzzConfigDecoding holds it to that.
//
// Grammar (RFC 8259), whitespace being space, tab, CR and LF:
//
//	value  = object | array | string | number | "true" | "false" | "null"
//	object = "{" [ string ":" value *( "," string ":" value ) ] "}"
//	array  = "[" [ value *( "," value ) ] "]"
//	number = [ "-" ] ( "0" | [1-9] *DIGIT ) [ "." 1*DIGIT ] [ ( "e" | "E" ) [ "+" | "-" ] 1*DIGIT ]
//	string = '"' *( unescaped | "\" ( ["\/bfnrt] | "u" 4HEXDIG ) ) '"'   ; unescaped >= 0x20

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

var errUnexpectedEnd = errors.New("unexpected end of JSON input")

// jsonReader walks one document. A syntax error ends the walk at once; a type error is
// kept (the first one) and the walk goes on, so that a later syntax error still wins.
type jsonReader struct {
	data    []byte
	pos     int
	depth   int
	typeErr error
}

// readDocument runs top on the document's only value and checks that nothing but
// whitespace follows it.
func readDocument(data []byte, top func(r *jsonReader) error) error {
	r := &jsonReader{data: data}
	if err := top(r); err != nil {
		return err
	}
	r.skipSpace()
	if r.pos < len(r.data) {
		return r.invalid("after top-level value")
	}
	return r.typeErr
}

func (r *jsonReader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// peek returns the first byte of the next value, after whitespace.
func (r *jsonReader) peek() (byte, error) {
	r.skipSpace()
	if r.pos >= len(r.data) {
		return 0, errUnexpectedEnd
	}
	return r.data[r.pos], nil
}

// invalid reports the byte at r.pos the way encoding/json does.
func (r *jsonReader) invalid(context string) error {
	if r.pos >= len(r.data) {
		return errUnexpectedEnd
	}
	c := r.data[r.pos]
	var q string
	switch c {
	case '\'':
		q = `'\''`
	case '"':
		q = `'"'`
	default:
		s := strconv.Quote(string(rune(c)))
		q = "'" + s[1:len(s)-1] + "'"
	}
	return errors.New("invalid character " + q + " " + context)
}

// mismatch records a type error for the value at r.pos, then skips that value.
func (r *jsonReader) mismatch(what string) error {
	if r.typeErr == nil {
		r.typeErr = errors.New("json: cannot use " + kindName(r.data[r.pos]) + " as " + what)
	}
	return r.skipValue()
}

func kindName(first byte) string {
	switch first {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// object walks an object whose "{" is next; member is called with each key and must
// consume the value.
func (r *jsonReader) object(member func(key string) error) error {
	r.depth++
	if r.depth > maxDepth {
		return errors.New("exceeded max depth")
	}
	r.pos++ // {
	c, err := r.peek()
	if err != nil {
		return err
	}
	if c == '}' {
		r.pos++
		r.depth--
		return nil
	}
	for {
		if c != '"' {
			return r.invalid("looking for beginning of object key string")
		}
		key, err := r.readString()
		if err != nil {
			return err
		}
		if c, err = r.peek(); err != nil {
			return err
		}
		if c != ':' {
			return r.invalid("after object key")
		}
		r.pos++
		if err := member(key); err != nil {
			return err
		}
		if c, err = r.peek(); err != nil {
			return err
		}
		r.pos++
		switch c {
		case '}':
			r.depth--
			return nil
		case ',':
		default:
			r.pos--
			return r.invalid("after object key:value pair")
		}
		if c, err = r.peek(); err != nil {
			return err
		}
	}
}

// array walks an array whose "[" is next; element is called for each element and must
// consume it.
func (r *jsonReader) array(element func() error) error {
	r.depth++
	if r.depth > maxDepth {
		return errors.New("exceeded max depth")
	}
	r.pos++ // [
	c, err := r.peek()
	if err != nil {
		return err
	}
	if c == ']' {
		r.pos++
		r.depth--
		return nil
	}
	for {
		if err := element(); err != nil {
			return err
		}
		if c, err = r.peek(); err != nil {
			return err
		}
		r.pos++
		switch c {
		case ']':
			r.depth--
			return nil
		case ',':
		default:
			r.pos--
			return r.invalid("after array element")
		}
	}
}

// skipValue checks and skips any value.
func (r *jsonReader) skipValue() error {
	c, err := r.peek()
	if err != nil {
		return err
	}
	switch {
	case c == '{':
		return r.object(func(string) error { return r.skipValue() })
	case c == '[':
		return r.array(r.skipValue)
	case c == '"':
		_, err := r.readString()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return r.skipNumber()
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	}
	return r.invalid("looking for beginning of value")
}

func (r *jsonReader) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if r.pos >= len(r.data) {
			return errUnexpectedEnd
		}
		if r.data[r.pos] != word[i] {
			return r.invalid("in literal " + word + " (expecting " + strconv.QuoteRune(rune(word[i])) + ")")
		}
		r.pos++
	}
	return nil
}

// null consumes a null if one is next.
func (r *jsonReader) null() (bool, error) {
	c, err := r.peek()
	if err != nil || c != 'n' {
		return false, err
	}
	return true, r.literal("null")
}

func (r *jsonReader) skipNumber() error {
	digits := func() int {
		n := 0
		for r.pos < len(r.data) && r.data[r.pos] >= '0' && r.data[r.pos] <= '9' {
			r.pos++
			n++
		}
		return n
	}
	// needDigit fails unless a digit is next.
	needDigit := func(context string) error {
		if r.pos >= len(r.data) {
			return errUnexpectedEnd
		}
		if c := r.data[r.pos]; c < '0' || c > '9' {
			return r.invalid(context)
		}
		return nil
	}
	if r.data[r.pos] == '-' {
		r.pos++
		if err := needDigit("in numeric literal"); err != nil {
			return err
		}
	}
	if r.data[r.pos] == '0' {
		r.pos++
	} else {
		digits()
	}
	if r.pos < len(r.data) && r.data[r.pos] == '.' {
		r.pos++
		if err := needDigit("after decimal point in numeric literal"); err != nil {
			return err
		}
		digits()
	}
	if r.pos < len(r.data) && (r.data[r.pos] == 'e' || r.data[r.pos] == 'E') {
		r.pos++
		if r.pos < len(r.data) && (r.data[r.pos] == '+' || r.data[r.pos] == '-') {
			r.pos++
		}
		if err := needDigit("in exponent of numeric literal"); err != nil {
			return err
		}
		digits()
	}
	return nil
}

// readString reads the string whose opening quote is next and returns its value:
// escapes decoded, a lone surrogate or an invalid UTF-8 byte as U+FFFD.
func (r *jsonReader) readString() (string, error) {
	r.pos++ // "
	start := r.pos
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		if c == '"' {
			s := string(r.data[start:r.pos])
			r.pos++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return r.readEscapedString(start)
		}
		r.pos++
	}
	return "", errUnexpectedEnd
}

func (r *jsonReader) readEscapedString(start int) (string, error) {
	var b strings.Builder
	b.Write(r.data[start:r.pos])
	for r.pos < len(r.data) {
		c := r.data[r.pos]
		switch {
		case c == '"':
			r.pos++
			return b.String(), nil
		case c < 0x20:
			return "", r.invalid("in string literal")
		case c == '\\':
			r.pos++
			if r.pos >= len(r.data) {
				return "", errUnexpectedEnd
			}
			switch e := r.data[r.pos]; e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r.pos++
				ch, err := r.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(ch) {
					ch = r.lowSurrogate(ch)
				}
				b.WriteRune(ch)
				continue
			default:
				return "", r.invalid("in string escape code")
			}
			r.pos++
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			r.pos++
		default:
			ch, size := utf8.DecodeRune(r.data[r.pos:])
			b.WriteRune(ch) // utf8.RuneError for an invalid byte (size 1)
			r.pos += size
		}
	}
	return "", errUnexpectedEnd
}

// hex4 reads the four hexadecimal digits of a \u escape.
func (r *jsonReader) hex4() (rune, error) {
	var v rune
	for i := 0; i < 4; i++ {
		if r.pos >= len(r.data) {
			return 0, errUnexpectedEnd
		}
		c := r.data[r.pos]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, r.invalid("in \\u hexadecimal character escape")
		}
		r.pos++
	}
	return v, nil
}

// lowSurrogate pairs high with a \u escape that follows it; without a valid pair the
// escape stands alone as U+FFFD and whatever follows is read on its own.
func (r *jsonReader) lowSurrogate(high rune) rune {
	if r.pos+6 > len(r.data) || r.data[r.pos] != '\\' || r.data[r.pos+1] != 'u' {
		return utf8.RuneError
	}
	save := r.pos
	r.pos += 2
	low, err := r.hex4()
	if err == nil {
		if ch := utf16.DecodeRune(high, low); ch != utf8.RuneError {
			return ch
		}
	}
	r.pos = save
	return utf8.RuneError
}

// stringField decodes a string (a Go string field): null leaves *dst alone.
func (r *jsonReader) stringField(dst *string, what string) error {
	c, err := r.peek()
	if err != nil {
		return err
	}
	switch c {
	case '"':
		*dst, err = r.readString()
		return err
	case 'n':
		return r.literal("null")
	}
	return r.mismatch(what + " (a string)")
}

// boolField decodes a boolean (a Go bool field): null leaves *dst alone.
func (r *jsonReader) boolField(dst *bool, what string) error {
	c, err := r.peek()
	if err != nil {
		return err
	}
	switch c {
	case 't':
		*dst = true
		return r.literal("true")
	case 'f':
		*dst = false
		return r.literal("false")
	case 'n':
		return r.literal("null")
	}
	return r.mismatch(what + " (a boolean)")
}

// structObject decodes into a Go struct: an object walked with member, null a no-op.
func (r *jsonReader) structObject(member func(key string) error, what string) error {
	c, err := r.peek()
	if err != nil {
		return err
	}
	switch c {
	case '{':
		return r.object(member)
	case 'n':
		return r.literal("null")
	}
	return r.mismatch(what + " (an object)")
}

// appendJSONString appends s as a JSON string the way encoding/json encodes it with
// HTML escaping off.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		ch, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case ch == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case ch == '\u2028' || ch == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[ch&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
