package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/postoffice-mail/postoffice/config"
)

// Config is an accounts file.
type Config struct {
	// StateDir holds each account's state (the unique ids already
	// downloaded) and lock. Default: $XDG_STATE_HOME/postoffice/fetch,
	// or ~/.local/state/postoffice/fetch.
	StateDir string `toml:"state_dir"`
	// Accounts are fetched in file order.
	Accounts []Account `toml:"account"`
}

// Account is one mailbox to fetch from and where its mail goes.
type Account struct {
	// Name identifies the account in messages and names its state file;
	// default "user@server".
	Name string `toml:"name"`
	// Server is the POP3 server's host name or address.
	Server string `toml:"server"`
	// Port defaults to 995 with implicit TLS and 110 otherwise.
	Port int `toml:"port"`
	// TLS is "implicit" (the default, RFC 8314), "starttls" (STLS, and
	// never plaintext) or "none".
	TLS string `toml:"tls"`
	// CAFile is a PEM file of certificates to trust besides the system's
	// (for a server with a self-signed certificate).
	CAFile string `toml:"ca_file"`
	// TLSServerName is the name the certificate must carry; default
	// Server.
	TLSServerName string `toml:"tls_server_name"`
	// User is the login name.
	User string `toml:"user"`
	// Password is the password, or the OAuth token for xoauth2 and
	// oauthbearer.
	Password string `toml:"password"`
	// PasswordCommand runs with /bin/sh -c; the first line of its output
	// is the password (for pass, secret-tool, an OAuth helper).
	PasswordCommand string `toml:"password_command"`
	// Mechanism is "auto" (the default: SCRAM-SHA-256 when offered, else
	// USER/PASS), "user", "apop", "plain", "login", "scram-sha-256",
	// "xoauth2" or "oauthbearer".
	Mechanism string `toml:"mechanism"`
	// AllowInsecureAuth permits sending the password unencrypted to a
	// non-loopback server (tls = "none").
	AllowInsecureAuth bool `toml:"allow_insecure_auth"`

	// Maildir, Mbox and MDA are the destinations; exactly one is set.
	Maildir string   `toml:"maildir"`
	Mbox    string   `toml:"mbox"`
	MDA     []string `toml:"mda"`

	// Keep leaves messages on the server (fetching each only once);
	// without it every downloaded message is deleted from the server.
	Keep bool `toml:"keep"`
	// DeleteAfterDays, with Keep, deletes messages from the server that
	// many days after they were downloaded; 0 never does.
	DeleteAfterDays int `toml:"delete_after_days"`
	// Timeout bounds each wait for the server (default 60s).
	Timeout Duration `toml:"timeout"`
	// Pipelining sends commands in batches when the server offers it
	// (default true).
	Pipelining *bool `toml:"pipelining"`
	// IgnoreSizes accepts messages whose size differs from what LIST
	// announced (a broken server); by default that is an error.
	IgnoreSizes bool `toml:"ignore_sizes"`
}

// Duration is a TOML duration string such as "30s" or "2m".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("expected a duration such as \"30s\" or \"2m\": %w", err)
	}
	d.Duration = v
	return nil
}

// Mechanisms accepted by Account.Mechanism.
var mechanisms = []string{"auto", "user", "apop", "plain", "login", "scram-sha-256", "xoauth2", "oauthbearer"}

// maxConfigSize bounds an accounts file.
const maxConfigSize = 1 << 20

// LoadConfig reads and checks an accounts file. Errors are *config.Error
// values (file:line: setting: problem), several joined with errors.Join.
// Relative paths in the file are resolved against its directory, "~/"
// against the home directory.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &config.Error{File: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, &config.Error{File: path, Err: err}
	}
	if len(data) > maxConfigSize {
		return nil, &config.Error{File: path, Err: errors.New("file is larger than 1 MiB; is it really an accounts file?")}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, &config.Error{File: path, Err: err}
	}
	return ParseConfig(path, dir, data)
}

// ParseConfig checks and returns the accounts in data; name is used in
// errors and dir resolves relative paths.
func ParseConfig(name, dir string, data []byte) (*Config, error) {
	idx := indexKeys(data)
	var cfg Config
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, decodeError(name, idx, err)
	}
	var problems []*config.Error
	problem := func(setting string, format string, args ...any) {
		line := idx.line(setting)
		problems = append(problems, &config.Error{File: name, Line: line, Setting: setting, Err: fmt.Errorf(format, args...)})
	}
	if len(cfg.Accounts) == 0 {
		problem("", "no [[account]] defined")
	}
	cfg.StateDir = resolvePath(dir, cfg.StateDir)
	if cfg.StateDir == "" {
		cfg.StateDir = defaultStateDir()
	}
	names := make(map[string]string)
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		key := func(s string) string { return "account[" + strconv.Itoa(i) + "]." + s }
		if a.Server == "" {
			problem(key("server"), "missing: the POP3 server's host name")
		}
		if a.User == "" {
			problem(key("user"), "missing: the login name")
		}
		switch a.TLS {
		case "":
			a.TLS = "implicit"
		case "implicit", "starttls", "none":
		default:
			problem(key("tls"), "%q is not one of implicit, starttls, none", a.TLS)
		}
		if a.Port == 0 {
			a.Port = 110
			if a.TLS == "implicit" {
				a.Port = 995
			}
		} else if a.Port < 1 || a.Port > 65535 {
			problem(key("port"), "%d is not a port number", a.Port)
		}
		if a.Mechanism == "" {
			a.Mechanism = "auto"
		}
		a.Mechanism = strings.ToLower(a.Mechanism)
		if !slices.Contains(mechanisms, a.Mechanism) {
			problem(key("mechanism"), "%q is not one of %s", a.Mechanism, strings.Join(mechanisms, ", "))
		}
		switch {
		case a.Password != "" && a.PasswordCommand != "":
			problem(key("password_command"), "set either password or password_command, not both")
		case a.Password == "" && a.PasswordCommand == "":
			problem(key("password"), "missing: set password or password_command")
		}
		dests := 0
		for _, set := range []bool{a.Maildir != "", a.Mbox != "", len(a.MDA) > 0} {
			if set {
				dests++
			}
		}
		if dests != 1 {
			problem(key("maildir"), "set exactly one destination: maildir, mbox or mda")
		}
		a.Maildir = resolvePath(dir, a.Maildir)
		a.Mbox = resolvePath(dir, a.Mbox)
		a.CAFile = resolvePath(dir, a.CAFile)
		if len(a.MDA) > 0 && a.MDA[0] == "" {
			problem(key("mda"), "the command is empty")
		}
		if a.DeleteAfterDays < 0 {
			problem(key("delete_after_days"), "must not be negative")
		}
		if a.DeleteAfterDays > 0 && !a.Keep {
			problem(key("delete_after_days"), "only means something with keep = true (without keep, messages are deleted once downloaded)")
		}
		if a.Timeout.Duration == 0 {
			a.Timeout.Duration = 60 * time.Second
		} else if a.Timeout.Duration < time.Second {
			problem(key("timeout"), "%v is too short; at least 1s", a.Timeout.Duration)
		}
		if a.Pipelining == nil {
			on := true
			a.Pipelining = &on
		}
		if a.Name == "" {
			a.Name = a.User + "@" + a.Server
		}
		if !validAccountName(a.Name) {
			problem(key("name"), "%q: use letters, digits and . _ @ + - only", a.Name)
		}
		if prev, dup := names[a.Name]; dup {
			problem(key("name"), "account %q is already defined at %s", a.Name, prev)
		}
		names[a.Name] = fmt.Sprintf("line %d", idx.line("account["+strconv.Itoa(i)+"]"))
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b *config.Error) int { return a.Line - b.Line })
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return nil, errors.Join(errs...)
	}
	return &cfg, nil
}

// validAccountName keeps a name usable as a file name.
func validAccountName(s string) bool {
	if s == "" || len(s) > 200 || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._@+-", r)) {
			return false
		}
	}
	return true
}

func resolvePath(dir, p string) string {
	if p == "" {
		return ""
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "postoffice", "fetch")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "postoffice-fetch")
	}
	return filepath.Join(home, ".local", "state", "postoffice", "fetch")
}

// decodeError turns go-toml's errors into *config.Error with positions.
func decodeError(name string, idx keyLines, err error) error {
	var missing *toml.StrictMissingError
	if errors.As(err, &missing) {
		var errs []error
		for i := range missing.Errors {
			line, col := missing.Errors[i].Position()
			errs = append(errs, &config.Error{File: name, Line: line, Column: col,
				Setting: strings.Join(missing.Errors[i].Key(), "."), Err: errors.New("unknown setting")})
		}
		return errors.Join(errs...)
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		line, col := derr.Position()
		return &config.Error{File: name, Line: line, Column: col, Setting: strings.Join(derr.Key(), "."),
			Err: errors.New(strings.TrimPrefix(derr.Error(), "toml: "))}
	}
	return &config.Error{File: name, Err: err}
}

// keyLines maps settings ("account[1].server", "account[1]" for the
// table header) to the line they are written on.
type keyLines map[string]int

// line is the setting's line, or else its table's (a default that
// conflicts is reported at the [[account]] it belongs to).
func (k keyLines) line(setting string) int {
	for setting != "" {
		if n, ok := k[setting]; ok {
			return n
		}
		i := strings.LastIndexByte(setting, '.')
		if i < 0 {
			return 0
		}
		setting = setting[:i]
	}
	return 0
}

// indexKeys records the line of every key, naming the elements of an
// array of tables by index as the errors do.
func indexKeys(data []byte) keyLines {
	lines := make(keyLines)
	lineOf := func(offset int) int { return bytes.Count(data[:min(offset, len(data))], []byte("\n")) + 1 }
	var p unstable.Parser
	p.Reset(data)
	counts := make(map[string]int)
	var prefix string
	for p.NextExpression() {
		expr := p.Expression()
		it := expr.Key()
		var parts []string
		offset := -1
		for it.Next() {
			if offset < 0 {
				offset = int(it.Node().Raw.Offset)
			}
			parts = append(parts, string(it.Node().Data))
		}
		key := strings.Join(parts, ".")
		switch expr.Kind {
		case unstable.ArrayTable:
			prefix = key + "[" + strconv.Itoa(counts[key]) + "]"
			counts[key]++
			lines[prefix] = lineOf(offset)
			prefix += "."
		case unstable.Table:
			prefix = key + "."
			lines[key] = lineOf(offset)
		case unstable.KeyValue:
			if _, ok := lines[prefix+key]; !ok {
				lines[prefix+key] = lineOf(offset)
			}
		}
	}
	return lines
}
