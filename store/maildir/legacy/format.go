package legacy

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Format is a parsed Dovecot pop3_uidl_format, in the syntax of Dovecot
// 2.3 (and earlier): literal text and variables "%<key>" or "%{<name>}",
// each optionally with an offset, a width and modifiers:
//
//	%[-][0][<width>][.[0][-]<width>][<modifiers>]<key>
//
// The keys are v (uidvalidity), u (uid), m (md5), f (filename) and g
// (guid), and %% is a percent sign. The modifiers that make sense for an
// id are supported: X (a decimal number in lower-case hex, so "%08Xu" is
// the uid in 8 hex digits), L and U (lower and upper case), R (reverse),
// T (trim trailing white space) and M (MD5 in hex). A width with a
// leading 0 pads with zeros; one without truncates. A negative offset
// counts from the end.
type Format struct {
	text  string
	parts []formatPart
}

type formatPart struct {
	literal string // when key is 0
	key     byte
	mods    []byte
	offset  int
	width   int
	zero    bool
}

// formatKeys maps the long variable names to the short keys.
var formatKeys = map[string]byte{
	"uidvalidity": 'v',
	"uid":         'u',
	"md5":         'm',
	"filename":    'f',
	"guid":        'g',
}

// ParseFormat parses a pop3_uidl_format. Variables and modifiers that
// Dovecot's POP3 server does not offer are errors, as is a format without
// any variable (every message would have the same id).
func ParseFormat(text string) (*Format, error) {
	f := &Format{text: text}
	var literal strings.Builder
	flush := func() {
		if literal.Len() > 0 {
			f.parts = append(f.parts, formatPart{literal: literal.String()})
			literal.Reset()
		}
	}
	for i := 0; i < len(text); i++ {
		if text[i] != '%' {
			literal.WriteByte(text[i])
			continue
		}
		i++
		p := formatPart{}
		sign := 1
		if i < len(text) && text[i] == '-' {
			sign = -1
			i++
		}
		if i < len(text) && text[i] == '0' {
			p.zero = true
			i++
		}
		for i < len(text) && isDigit(text[i]) && p.width < 1e6 {
			p.width = p.width*10 + int(text[i]-'0')
			i++
		}
		if i < len(text) && text[i] == '.' {
			p.offset = sign * p.width
			sign = 1
			p.width = 0
			p.zero = false
			i++
			if i < len(text) && text[i] == '0' {
				p.zero = true
				i++
			}
			if i < len(text) && text[i] == '-' {
				sign = -1
				i++
			}
			for i < len(text) && isDigit(text[i]) && p.width < 1e6 {
				p.width = p.width*10 + int(text[i]-'0')
				i++
			}
			p.width *= sign
		}
		for i < len(text) && strings.IndexByte("LUXRTMEHND", text[i]) >= 0 {
			if strings.IndexByte("EHND", text[i]) >= 0 {
				return nil, fmt.Errorf("pop3_uidl_format %q: modifier %%%c is not supported", text, text[i])
			}
			p.mods = append(p.mods, text[i])
			i++
		}
		if i >= len(text) {
			return nil, fmt.Errorf("pop3_uidl_format %q: ends inside a variable", text)
		}
		switch c := text[i]; c {
		case '%':
			literal.WriteByte('%')
			continue
		case '{':
			end := strings.IndexByte(text[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("pop3_uidl_format %q: %%{ without }", text)
			}
			name := text[i+1 : i+end]
			key, ok := formatKeys[name]
			if !ok {
				return nil, fmt.Errorf("pop3_uidl_format %q: unknown variable %%{%s}", text, name)
			}
			p.key = key
			i += end
		case 'v', 'u', 'm', 'f', 'g':
			p.key = c
		default:
			return nil, fmt.Errorf("pop3_uidl_format %q: unknown variable %%%c", text, c)
		}
		flush()
		f.parts = append(f.parts, p)
	}
	flush()
	if !slices.ContainsFunc(f.parts, func(p formatPart) bool { return p.key != 0 }) {
		return nil, fmt.Errorf("pop3_uidl_format %q has no variable: every message would have the same id", text)
	}
	return f, nil
}

// String returns the format as written.
func (f *Format) String() string { return f.text }

// Uses reports whether the format has the variable key ('v', 'u', 'm',
// 'f' or 'g').
func (f *Format) Uses(key byte) bool {
	return slices.ContainsFunc(f.parts, func(p formatPart) bool { return p.key == key })
}

// Expand makes the id of a message whose variables have the given values
// (value(key) for each key the format uses).
func (f *Format) Expand(value func(key byte) string) string {
	var b strings.Builder
	for _, p := range f.parts {
		if p.key == 0 {
			b.WriteString(p.literal)
			continue
		}
		v := value(p.key)
		for _, m := range p.mods {
			v = applyModifier(m, v)
		}
		if p.offset < 0 {
			if len(v) > -p.offset {
				v = v[len(v)+p.offset:]
			}
		} else {
			v = v[min(p.offset, len(v)):]
		}
		switch {
		case p.width == 0:
			b.WriteString(v)
		case !p.zero:
			// A width truncates; a negative one cuts that much off the
			// end (nothing is cut when that leaves less than nothing).
			w := p.width
			if w < 0 {
				w = len(v) + w
			}
			if w >= 0 && w < len(v) {
				v = v[:w]
			}
			b.WriteString(v)
		default:
			// Zero padding, never truncation.
			for n := len(v); n < p.width; n++ {
				b.WriteByte('0')
			}
			b.WriteString(v)
		}
	}
	return b.String()
}

func applyModifier(m byte, v string) string {
	switch m {
	case 'L':
		return strings.ToLower(v)
	case 'U':
		return strings.ToUpper(v)
	case 'X':
		// A decimal number in lower-case hex; anything else counts as 0.
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || v == "" || v[0] == '+' {
			n = 0
		}
		return strconv.FormatUint(n, 16)
	case 'R':
		b := []byte(v)
		slices.Reverse(b)
		return string(b)
	case 'T':
		return strings.TrimRight(v, " \t\r\n\v\f")
	case 'M':
		sum := md5.Sum([]byte(v))
		return hex.EncodeToString(sum[:])
	}
	return v
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
