package config

import (
	"encoding"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

//go:generate go run ./internal/gendoc -comments reference_docs.go
//go:generate go run ./internal/gendoc -markdown ../docs/config-reference.md

// TableDoc documents one table of the configuration file. Reference
// builds it from the configuration structs, so that the configuration
// reference (docs/config-reference.md) and the man page cannot drift from
// what Load accepts.
type TableDoc struct {
	// Name is the table's dotted name, such as "pop3".
	Name string
	// Doc is the doc comment of the table's Go type, in plain text with
	// Markdown-style `code`; paragraphs are separated by blank lines.
	Doc string
	// Settings are the table's settings in the order of the struct.
	Settings []SettingDoc
}

// SettingDoc documents one setting.
type SettingDoc struct {
	// Name is the full dotted name, such as "pop3.listen".
	Name string
	// Key is the name inside its table, such as "listen".
	Key string
	// Type says what the file takes: "string", "integer", "boolean",
	// "duration", "list of strings"...
	Type string
	// Doc is the doc comment of the setting's field, its Go name
	// replaced by the setting's key.
	Doc string
	// Default is the value used when the file leaves the setting out,
	// written in TOML.
	Default string
	// GoName is the Go field, such as "POP3.ListenTLS", for messages
	// about missing documentation.
	GoName string
}

// Reference returns every table and setting of the configuration file, in
// the order of the Config struct: names from the toml tags, types from the
// Go types, defaults from the same function Load starts from, and the doc
// comments of the types and fields (copied into reference_docs.go by `go
// generate`, so that the binary can print them).
func Reference() []TableDoc {
	var tables []TableDoc
	var walk func(prefix string, t reflect.Type, defaults reflect.Value)
	walk = func(prefix string, t reflect.Type, defaults reflect.Value) {
		for i := range t.NumField() {
			field := t.Field(i)
			key := field.Tag.Get("toml")
			if key == "" || key == "-" {
				continue
			}
			name := prefix + key
			if isTable(field.Type) {
				// The type's comment, or the field's where the type's
				// says no more than its name.
				doc := tableDoc(field.Type.Name(), name, docComments[field.Type.Name()])
				if doc == "" {
					doc = tableDoc(field.Name, name, docComments[t.Name()+"."+field.Name])
				}
				tables = append(tables, TableDoc{Name: name, Doc: doc})
				walk(name+".", field.Type, defaults.Field(i))
				continue
			}
			table := &tables[len(tables)-1]
			table.Settings = append(table.Settings, SettingDoc{
				Name:    name,
				Key:     key,
				Type:    typeName(field.Type),
				Doc:     settingDoc(field.Name, key, docComments[t.Name()+"."+field.Name]),
				Default: tomlValue(defaults.Field(i)),
				GoName:  t.Name() + "." + field.Name,
			})
		}
	}
	walk("", reflect.TypeFor[Config](), reflect.ValueOf(fileDefaults()).Elem())
	return tables
}

// isTable reports whether a field of type t is a TOML table rather than a
// value: a struct that does not decode itself from text.
func isTable(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// tableDoc drops the Go-only opening of a table type's comment ("LMTP is
// the [lmtp] table: the listener..." becomes "The listener..."): the
// reference shows the table's name already.
func tableDoc(goName, name, doc string) string {
	opening := goName + " is the [" + name + "] table"
	rest, ok := strings.CutPrefix(doc, opening)
	if !ok {
		return doc
	}
	rest = strings.TrimLeft(rest, ":. \n")
	return upperFirst(rest)
}

// settingDoc replaces the Go field name that opens a field's comment with
// the setting's name in the file: "ListenTLS lists..." becomes
// "`listen_tls` lists...".
func settingDoc(goName, key, doc string) string {
	if rest, ok := strings.CutPrefix(doc, goName+" "); ok {
		return "`" + key + "` " + rest
	}
	return doc
}

// upperFirst capitalises the first letter of s.
func upperFirst(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}

// typeName says what a setting of Go type t takes in the file.
func typeName(t reflect.Type) string {
	switch t {
	case durationType:
		return "duration"
	case expireType:
		return `days or "never"`
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice:
		return "list of " + typeName(t.Elem()) + "s"
	case reflect.Map:
		return "table of " + typeName(t.Elem()) + "s"
	}
	return t.Kind().String()
}

// tomlValue writes v as a TOML value.
func tomlValue(v reflect.Value) string {
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		text, err := m.MarshalText()
		if err != nil {
			return fmt.Sprintf("<%v>", err)
		}
		return tomlString(string(text))
	}
	switch v.Kind() {
	case reflect.String:
		return tomlString(v.String())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Slice:
		elems := make([]string, v.Len())
		for i := range elems {
			elems[i] = tomlValue(v.Index(i))
		}
		return "[" + strings.Join(elems, ", ") + "]"
	case reflect.Map:
		var entries []string
		for _, k := range v.MapKeys() {
			entries = append(entries, tomlString(k.String())+" = "+tomlValue(v.MapIndex(k)))
		}
		if len(entries) == 0 {
			return "{}"
		}
		slices.Sort(entries)
		return "{ " + strings.Join(entries, ", ") + " }"
	}
	return fmt.Sprintf("<%s>", v.Kind())
}

// tomlString writes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
