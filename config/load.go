package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Load reads, checks and returns the configuration file at path.
//
// Relative file paths in the file are resolved against the absolute
// directory of path, so the result does not depend on the working
// directory. Errors are *Error values, or several joined with errors.Join.
func Load(path string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		// The *PathError repeats the path that Error already shows.
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return nil, &Error{File: path, Err: fmt.Errorf("read configuration: %w", err)}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, &Error{File: path, Err: fmt.Errorf("locate configuration directory: %w", err)}
	}
	return parse(path, dir, data)
}

// maxFileSize bounds a configuration file. The default file, fully
// commented, is about 4 KiB. The bound matters because go-toml builds each
// unknown-key error by scanning the whole document, so a large file full
// of unknown keys would take minutes to reject.
const maxFileSize = 64 << 10

// errTooLarge is the problem with a file over maxFileSize.
var errTooLarge = fmt.Errorf("file is larger than %d KiB; is it really a configuration file?", maxFileSize>>10)

// readFile reads at most maxFileSize+1 bytes of path, so that pointing the
// server at a device or a huge file fails quickly.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFileSize+1))
}

// Parse checks and returns the configuration in data. name is used in
// error messages, and relative file paths are resolved against its
// directory as written: pass an absolute name, as Load does, to get
// absolute paths.
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, filepath.Dir(name), data)
}

// parse is Load and Parse once the directory for relative paths is known.
// The steps are ordered so that each one can assume the previous ones
// passed: text values first (the decoder would lose their positions), then
// decoding (syntax, types, unknown keys), then path resolution, then the
// rules about values.
func parse(name, dir string, data []byte) (*Config, error) {
	if len(data) > maxFileSize {
		return nil, &Error{File: name, Err: errTooLarge}
	}
	idx, syntaxErr := indexDocument(data)
	if syntaxErr == nil {
		if problems := idx.checkTextValues(name); len(problems) > 0 {
			return nil, joinErrors(problems)
		}
	}

	cfg := Default()
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, decodeErrors(name, idx, err)
	}
	if syntaxErr != nil {
		// The decoder and the index share go-toml's parser, so this
		// should not happen; if it does, the file is still not valid.
		return nil, &Error{File: name, Err: syntaxErr}
	}

	resolve(cfg, dir)

	var problems []*Error
	for _, p := range validate(cfg) {
		problems = append(problems, idx.problemAt(name, p.setting, p.err))
	}
	if len(problems) > 0 {
		return nil, joinErrors(problems)
	}
	return cfg, nil
}

// decodeErrors converts go-toml's errors, which know their position, into
// *Error values. The index supplies what go-toml's errors lack: the full
// name of a duplicated key (go-toml gives only the part after the table
// header) and the expected type, for a message in the file's terms rather
// than Go's.
func decodeErrors(name string, idx *keyIndex, err error) error {
	var missing *toml.StrictMissingError
	if errors.As(err, &missing) {
		problems := make([]*Error, 0, len(missing.Errors))
		for i := range missing.Errors {
			e := positioned(name, idx, &missing.Errors[i])
			e.Err = unknownSetting(e.Setting)
			problems = append(problems, e)
		}
		return joinErrors(problems)
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		return positioned(name, idx, derr)
	}
	return &Error{File: name, Err: err}
}

// positioned builds an *Error at a DecodeError's position, completed
// from the index where go-toml's own information falls short.
func positioned(name string, idx *keyIndex, derr *toml.DecodeError) *Error {
	line, column := derr.Position()
	setting := strings.Join(derr.Key(), ".")
	e := &Error{
		File:    name,
		Line:    line,
		Column:  column,
		Setting: setting,
		Err:     errors.New(strings.TrimPrefix(derr.Error(), "toml: ")),
	}
	if setting == "" {
		return e // a syntax error: no setting to improve on
	}
	if entry, ok := idx.entryAt(line, column); ok {
		if sameSetting(entry.key, setting) {
			// The index knows the full key of a duplicate under a
			// [table] header, where go-toml gives only the last
			// part, and names list elements.
			e.Setting = entry.key
		} else if keyEntry, ok := idx.lookup(setting); ok {
			// go-toml points at the start of the file for a value the
			// parser keeps no position for (an array in an array):
			// the setting's key is the better place.
			e.Line, e.Column = idx.position(keyEntry.offset)
		}
	}
	e.Setting, e.Err = fileTerms(e.Setting, e.Err)
	return e
}

// sameSetting reports whether the index key found at an error's position
// is the setting go-toml names: the same, the same with its table prefix,
// or one of its list elements.
func sameSetting(indexKey, tomlKey string) bool {
	return indexKey == tomlKey || strings.HasSuffix(indexKey, "."+tomlKey) || baseSetting(indexKey) == tomlKey
}

// unknownSetting explains an unknown key, suggesting the setting that was
// probably meant: typos and settings put in the wrong table are the usual
// causes.
func unknownSetting(setting string) error {
	if guess := suggest(setting); guess != "" {
		return fmt.Errorf("unknown setting; did you mean %s?", guess)
	}
	return errors.New("unknown setting")
}

// resolve fills in what the file may leave to the system: the host name,
// and absolute forms of relative file paths.
func resolve(c *Config, dir string) {
	if c.Server.Hostname == "" {
		c.Server.Hostname = defaultHostname()
	}
	for _, path := range []*string{
		&c.Server.StateDir,
		&c.Log.File,
		&c.LMTP.Socket,
		&c.TLS.Cert,
		&c.TLS.Key,
		&c.TLS.ClientCA,
		&c.Users.PasswdFile,
		&c.OAuth.ClientSecretFile,
		&c.Postgres.DSNFile,
	} {
		*path = resolvePath(dir, *path)
	}
	// A template that starts with a placeholder is not a path yet: {home}
	// expands to an absolute path, and validate refuses the others.
	if !strings.HasPrefix(c.Maildir.Location, "{") {
		c.Maildir.Location = resolvePath(dir, c.Maildir.Location)
	}
}

// resolvePath makes a relative path relative to dir. Empty stays empty:
// it means "not set" (log.file, tls.cert) or is refused by validate.
func resolvePath(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}
