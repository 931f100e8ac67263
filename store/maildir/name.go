package maildir

import (
	"strconv"
	"strings"
)

// fileName is what a Maildir file name tells about its message.
//
// A name looks like "1700000000.M123P456.host,S=1234,W=1260:2,S": the
// unique part up to the first ',' or ':' (by convention the delivery time
// in seconds, a per-delivery unique token and the host name), optional
// ",KEY=value" fields (Dovecot writes S= with the file size and W= with the
// size when every line ends in CRLF, the "virtual size"), then ":2," and
// the IMAP flags once a mail client has seen the message. Programs that
// move a message from new/ to cur/ or change its flags keep everything
// before the ':' — the base name — which is therefore the message's
// identity (see http://cr.yp.to/proto/maildir.html and Dovecot's
// maildir-filename.c).
type fileName struct {
	base     string // everything before the first ':'
	info     string // everything after it ("2,FS"), or ""
	hasInfo  bool   // whether there was a ':' at all
	size     int64  // ,S= value, or -1
	vsize    int64  // ,W= value, or -1
	received int64  // leading delivery time in Unix seconds, or -1
}

// parseName splits a Maildir file name. It never fails: fields it cannot
// read are reported as absent (-1), because a maildir may hold names that
// other programs wrote in formats we do not know.
func parseName(name string) fileName {
	fn := fileName{size: -1, vsize: -1, received: -1}
	fn.base, fn.info, fn.hasInfo = strings.Cut(name, ":")

	// The fields after the unique part: ",S=1234,W=1260".
	if _, fields, ok := strings.Cut(fn.base, ","); ok {
		for field := range strings.SplitSeq(fields, ",") {
			key, value, ok := strings.Cut(field, "=")
			if !ok {
				continue
			}
			switch key {
			case "S":
				fn.size = parseSize(value)
			case "W":
				fn.vsize = parseSize(value)
			}
		}
	}

	// The delivery time: the leading decimal digits, up to the first '.'.
	if dot := strings.IndexByte(fn.base, '.'); dot > 0 {
		if secs, err := strconv.ParseInt(fn.base[:dot], 10, 64); err == nil && secs >= 0 && fn.base[0] != '+' {
			fn.received = secs
		}
	}
	return fn
}

// parseSize reads a non-negative decimal size, or returns -1.
func parseSize(s string) int64 {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// flags returns the IMAP flag letters of a name in the standard ":2,"
// form, or "" for other info forms.
func (fn fileName) flags() string {
	flags, ok := strings.CutPrefix(fn.info, "2,")
	if !ok {
		return ""
	}
	return flags
}

// formatName builds the name of a message delivered with the given unique
// part and sizes: "<unique>,S=<size>,W=<vsize>". It is what Deliver puts
// into new/, where there is no ":2," info yet.
func formatName(unique string, size, vsize int64) string {
	return unique + ",S=" + strconv.FormatInt(size, 10) + ",W=" + strconv.FormatInt(vsize, 10)
}

// sanitizeHost makes a host name safe inside a Maildir file name: '/'
// would make a path, ':' would start the info part and ',' a field, so
// they are written as octal escapes the way Dovecot does ("\057", "\072",
// "\054"); a backslash is escaped too, to keep the encoding unambiguous.
func sanitizeHost(host string) string {
	if !strings.ContainsAny(host, "/:,\\") {
		return host
	}
	var b strings.Builder
	for i := 0; i < len(host); i++ {
		switch c := host[i]; c {
		case '/', ':', ',', '\\':
			b.WriteByte('\\')
			b.WriteByte('0' + c>>6)
			b.WriteByte('0' + c>>3&7)
			b.WriteByte('0' + c&7)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// naturalLess orders names so that embedded numbers compare by value:
// "1700000000.M9P1Q9.h" before "1700000000.M10P1Q10.h". Maildir names
// of one second differ in such numbers (microseconds, delivery counters),
// which plain string order would misplace.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			na, ra := leadingDigits(a)
			nb, rb := leadingDigits(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

// naturalKey returns a string whose byte order is naturalLess's order:
// ties in naturalLess are equal keys. Sorting many names by precomputed
// keys costs one pass per name instead of a scan per comparison. A run of
// digits becomes '0' (which compares with any other octet as a digit
// does), the length of the run without leading zeros in two octets, and
// those digits; every other octet stays as it is.
func naturalKey(s string) string {
	b := make([]byte, 0, len(s)+8)
	for s != "" {
		if !isDigit(s[0]) {
			b = append(b, s[0])
			s = s[1:]
			continue
		}
		digits, rest := leadingDigits(s)
		digits = strings.TrimLeft(digits, "0")
		b = append(b, '0', byte(len(digits)>>8), byte(len(digits)))
		b = append(b, digits...)
		s = rest
	}
	return string(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// leadingDigits splits s after its run of leading digits.
func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}
