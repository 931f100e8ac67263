package config

import (
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// keyIndex records where each setting is written in a document, so that
// problems found after decoding (validation, cross-setting rules) can name
// a line. go-toml's decoder forgets positions once a value is stored.
type keyIndex struct {
	data    []byte
	entries []keyEntry     // in document order
	byKey   map[string]int // dotted key → index in entries; first wins
	// byOffset maps where a key or value starts to its index in entries,
	// to match go-toml's errors, which give only a position.
	byOffset map[int]int
	// lineStarts holds the offset of each line's first byte, so that
	// positions cost a binary search, not a scan of the document: a file
	// with thousands of problems must not take quadratic time.
	lineStarts []int
}

// keyEntry is one key as written in the document.
type keyEntry struct {
	// key is the dotted setting name; list elements are "key[i]".
	key string
	// offset is where the key (or the list element) starts in data.
	offset int
	// valueOffset is where the value starts, or -1 when the parser does
	// not record it (arrays).
	valueOffset int
	// kind is the kind of the value: a scalar, Array, InlineTable, or
	// Table for a [table] header.
	kind unstable.Kind
	// token is the raw text of a scalar value, a subslice of data.
	token []byte
}

// indexDocument walks the document with go-toml's low-level parser and
// records every key. A syntax error stops the walk; the decoder reports it
// with its position, so the caller only needs to know that it happened.
func indexDocument(data []byte) (*keyIndex, error) {
	idx := &keyIndex{
		data:       data,
		byKey:      make(map[string]int),
		byOffset:   make(map[int]int),
		lineStarts: []int{0},
	}
	for i, b := range data {
		if b == '\n' {
			idx.lineStarts = append(idx.lineStarts, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		expr := p.Expression()
		switch expr.Kind {
		case unstable.Table, unstable.ArrayTable:
			it := expr.Key()
			table = keyPath(nil, &it)
			idx.add(keyEntry{
				key:         strings.Join(table, "."),
				offset:      keyOffset(expr),
				valueOffset: -1,
				kind:        unstable.Table,
			})
		case unstable.KeyValue:
			idx.addKeyValue(&p, table, expr)
		}
	}
	return idx, p.Error()
}

// addKeyValue records a key-value expression found under the table prefix,
// descending into inline tables (whose keys are settings too) and arrays
// (whose elements get their own positions, for multi-line lists).
func (idx *keyIndex) addKeyValue(p *unstable.Parser, prefix []string, expr *unstable.Node) {
	it := expr.Key()
	path := keyPath(prefix, &it)
	key := strings.Join(path, ".")
	value := expr.Value()
	entry := keyEntry{key: key, offset: keyOffset(expr), valueOffset: -1, kind: value.Kind}
	if isScalar(value.Kind) || value.Kind == unstable.InlineTable {
		entry.valueOffset = int(value.Raw.Offset)
	}
	if isScalar(value.Kind) {
		entry.token = p.Raw(value.Raw)
	}
	idx.add(entry)

	switch value.Kind {
	case unstable.InlineTable:
		children := value.Children()
		for children.Next() {
			if child := children.Node(); child.Kind == unstable.KeyValue {
				idx.addKeyValue(p, path, child)
			}
		}
	case unstable.Array:
		elems := value.Children()
		for i := 0; elems.Next(); i++ {
			elem := elems.Node()
			// The parser leaves Raw unset on arrays, so a nested array
			// has no position of its own.
			if elem.Kind == unstable.Array {
				continue
			}
			entry := keyEntry{
				key:         key + "[" + strconv.Itoa(i) + "]",
				offset:      int(elem.Raw.Offset),
				valueOffset: int(elem.Raw.Offset),
				kind:        elem.Kind,
			}
			if isScalar(elem.Kind) {
				entry.token = p.Raw(elem.Raw)
			}
			idx.add(entry)
		}
	}
}

// keyPath appends the parts of a (possibly dotted) key to prefix, in a new
// slice so that callers can keep prefix.
func keyPath(prefix []string, it *unstable.Iterator) []string {
	path := append([]string(nil), prefix...)
	for it.Next() {
		path = append(path, string(it.Node().Data))
	}
	return path
}

// keyOffset is where the first part of an expression's key starts. Key
// nodes always carry their position, unlike table nodes.
func keyOffset(expr *unstable.Node) int {
	it := expr.Key()
	if it.Next() {
		return int(it.Node().Raw.Offset)
	}
	return 0
}

// isScalar reports whether nodes of kind k are single values with a
// position in the document.
func isScalar(k unstable.Kind) bool {
	switch k {
	case unstable.String, unstable.Bool, unstable.Float, unstable.Integer,
		unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return true
	}
	return false
}

// add records an entry. A key written twice (which the decoder refuses)
// keeps its first position for lookup, where a reader looks first; the
// second stays in entries so that the decoder's error can be matched.
func (idx *keyIndex) add(e keyEntry) {
	i := len(idx.entries)
	idx.entries = append(idx.entries, e)
	if _, ok := idx.byKey[e.key]; !ok {
		idx.byKey[e.key] = i
	}
	// An array element starts where its list's key does not, and a table
	// header's key where nothing else does, so offsets do not collide;
	// first wins all the same.
	for _, offset := range []int{e.offset, e.valueOffset} {
		if _, ok := idx.byOffset[offset]; !ok && offset >= 0 {
			idx.byOffset[offset] = i
		}
	}
}

// lookup returns the entry for a setting. A list element not written as a
// scalar ("pop3.listen[2]" of a list built otherwise) falls back to the
// list itself.
func (idx *keyIndex) lookup(setting string) (keyEntry, bool) {
	if i, ok := idx.byKey[setting]; ok {
		return idx.entries[i], true
	}
	if base := baseSetting(setting); base != setting {
		if i, ok := idx.byKey[base]; ok {
			return idx.entries[i], true
		}
	}
	return keyEntry{}, false
}

// entryAt returns the entry whose key or value starts at a 1-based line
// and column, as go-toml's errors report them.
func (idx *keyIndex) entryAt(line, column int) (keyEntry, bool) {
	if line < 1 || line > len(idx.lineStarts) {
		return keyEntry{}, false
	}
	i, ok := idx.byOffset[idx.lineStarts[line-1]+column-1]
	if !ok {
		return keyEntry{}, false
	}
	return idx.entries[i], true
}

// position returns the 1-based line and column of a byte offset.
func (idx *keyIndex) position(offset int) (line, column int) {
	// The number of lines that start at or before offset is its line.
	line, found := slices.BinarySearch(idx.lineStarts, offset)
	if !found {
		line--
	}
	return line + 1, offset - idx.lineStarts[line] + 1
}

// problemAt turns a problem with a setting into an *Error, locating the
// setting's line when the file writes it.
func (idx *keyIndex) problemAt(file, setting string, err error) *Error {
	e := &Error{File: file, Setting: setting, Err: err}
	if entry, ok := idx.lookup(setting); ok {
		e.Line, _ = idx.position(entry.offset)
	}
	return e
}
