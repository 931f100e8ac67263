package config

import (
	"encoding"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// The types the schema treats specially: text-decoded values are leaves,
// not tables, and durations and expire accept only some TOML kinds.
var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType        = reflect.TypeFor[Duration]()
	expireType          = reflect.TypeFor[Expire]()
)

// settingTypes maps the dotted name of every setting to the Go type it
// decodes into, read from Config's toml tags so that it cannot drift from
// the schema.
var settingTypes = func() map[string]reflect.Type {
	types := make(map[string]reflect.Type)
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for field := range t.Fields() {
			name := prefix + field.Tag.Get("toml")
			types[name] = field.Type
			if field.Type.Kind() == reflect.Struct && !reflect.PointerTo(field.Type).Implements(textUnmarshalerType) {
				walk(name+".", field.Type)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return types
}()

// checkTextValues checks the values of settings decoded with UnmarshalText
// (durations and expire) before the decoder sees them. go-toml hands the
// raw token of a TOML number or boolean to UnmarshalText and reports its
// error without a position, so those cases are caught here, where the
// position is known.
func (idx *keyIndex) checkTextValues(file string) []*Error {
	var problems []*Error
	for _, entry := range idx.entries {
		var err error
		switch settingTypes[entry.key] {
		case durationType:
			if entry.kind != unstable.String {
				err = fmt.Errorf(`expected a duration string such as "30s" or "10m", not %s`, describeKind(entry.kind))
			}
		case expireType:
			switch entry.kind {
			case unstable.String:
				// The decoder reports string errors with their position.
			case unstable.Integer:
				var e Expire
				err = e.UnmarshalText(entry.token)
			default:
				err = fmt.Errorf("%w, not %s", errExpireSyntax, describeKind(entry.kind))
			}
		default:
			continue
		}
		if err != nil {
			line, column := idx.position(entry.offset)
			problems = append(problems, &Error{File: file, Line: line, Column: column, Setting: entry.key, Err: err})
		}
	}
	return problems
}

// describeType names what a setting of Go type t expects, for messages;
// "" for a type this package does not use.
func describeType(t reflect.Type) string {
	if t == nil {
		return ""
	}
	if t == durationType {
		return `a duration string such as "30s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return `a list of strings such as ["[::]:110"]`
	case reflect.Struct:
		return "a table"
	}
	return ""
}

// describeKind names a TOML value kind with its article, for messages.
func describeKind(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable, unstable.Table:
		return "a table"
	case unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return "a date or time"
	}
	return "a " + strings.ToLower(k.String())
}

// baseSetting strips a list index: "pop3.listen[1]" → "pop3.listen".
func baseSetting(key string) string {
	base, _, _ := strings.Cut(key, "[")
	return base
}

// goMismatch matches go-toml's type-mismatch message, which speaks of Go
// types: "cannot decode TOML string into struct field
// config.Limits.MaxConnections of type int".
var goMismatch = regexp.MustCompile(`^cannot decode TOML (.+?) into (?:.* of type )?(\S+)$`)

// fileTerms restates a go-toml type mismatch for setting in the terms of
// the configuration file ("expected an integer, not a string"). A dotted
// key below a setting ("server.hostname.x = 1" makes hostname a table) is
// reported against that setting. Other errors, and mismatches it cannot
// place, are returned unchanged.
func fileTerms(setting string, err error) (string, error) {
	m := goMismatch.FindStringSubmatch(err.Error())
	if m == nil {
		return setting, err
	}
	for settingTypes[baseSetting(setting)] == nil && strings.Contains(setting, ".") {
		setting = setting[:strings.LastIndexByte(setting, '.')]
	}
	t := settingTypes[baseSetting(setting)]
	if t == nil {
		return setting, err
	}
	tomlKind, goType := m[1], m[2]
	// A mismatch inside a list is about an element: the error names the
	// element's Go type, or the index names the element.
	if t.Kind() == reflect.Slice && (goType == t.Elem().String() || setting != baseSetting(setting)) {
		t = t.Elem()
	}
	want := describeType(t)
	if want == "" {
		return setting, err
	}
	article := "a"
	if strings.ContainsRune("aeiou", rune(tomlKind[0])) {
		article = "an"
	}
	return setting, fmt.Errorf("expected %s, not %s %s", want, article, tomlKind)
}

// settingNames lists every table and setting name, sorted so that
// suggestions do not depend on map order.
var settingNames = slices.Sorted(maps.Keys(settingTypes))

// maxTypo is the largest edit distance still taken for a typo.
const maxTypo = 2

// suggest returns the known setting an unknown key most likely meant, or ""
// when nothing is close: a setting of the same name in another table, else
// a name within a couple of typos.
func suggest(unknown string) string {
	leaf := lastPart(unknown)
	for _, name := range settingNames {
		if name != unknown && strings.Contains(name, ".") && lastPart(name) == leaf {
			return name
		}
	}
	best, bestDistance := "", maxTypo+1
	for _, name := range settingNames {
		if d := editDistance(unknown, name); d < bestDistance {
			best, bestDistance = name, d
		}
	}
	// A one-letter key is two edits from many names; only suggest when
	// the key is longer than the edits it takes to fix it.
	if bestDistance >= len(leaf) {
		return ""
	}
	return best
}

// lastPart returns the last part of a dotted key.
func lastPart(key string) string {
	return key[strings.LastIndexByte(key, '.')+1:]
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (setting names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
