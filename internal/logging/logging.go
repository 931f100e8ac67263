// Package logging builds the server's loggers from the [log] table: one
// output (standard error or a file, text or JSON), and one logger per
// subsystem ("pop3", "lmtp", "auth"…), each with a level of its own that
// can be changed while the server runs.
//
// A subsystem's records carry subsystem=NAME as their last attribute,
// after those of the record, so that lines keep the shape log
// parsers already match (docs/fail2ban.md).
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// Options are the settings of the [log] table that this package uses.
type Options struct {
	// Level is the level of every subsystem not in Levels: debug,
	// info, warn or error.
	Level string
	// Levels sets the level of single subsystems.
	Levels map[string]string
	// Format is "text" or "json".
	Format string
	// File is the log file; "" means the writer New is given.
	File string
}

// Logs is the set of loggers of one server.
type Logs struct {
	out     *output
	handler slog.Handler

	mu     sync.Mutex
	levels map[string]*slog.LevelVar // by subsystem, made on first use
	opts   Options
}

// New opens the output and returns the loggers. stderr is used when
// opts.File is empty.
func New(opts Options, stderr io.Writer) (*Logs, error) {
	if _, err := parseLevels(opts); err != nil {
		return nil, err
	}
	out := &output{w: stderr, path: opts.File}
	if opts.File != "" {
		if err := out.reopen(); err != nil {
			return nil, err
		}
	}
	// The handler passes everything: each subsystem's own level decides.
	ho := &slog.HandlerOptions{Level: slog.Level(-100)}
	var h slog.Handler
	switch opts.Format {
	case "json":
		h = slog.NewJSONHandler(out, ho)
	case "text", "":
		h = slog.NewTextHandler(out, ho)
	default:
		return nil, fmt.Errorf("log format %q is not text or json", opts.Format)
	}
	return &Logs{out: out, handler: h, levels: map[string]*slog.LevelVar{}, opts: opts}, nil
}

// Logger returns the logger of a subsystem. Loggers of one subsystem
// share their level.
func (l *Logs) Logger(subsystem string) *slog.Logger {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.levels[subsystem]
	if !ok {
		v = new(slog.LevelVar)
		levels, _ := parseLevels(l.opts) // checked by New and SetLevels
		v.Set(levelOf(levels, subsystem))
		l.levels[subsystem] = v
	}
	return slog.New(&subsystemHandler{inner: l.handler, level: v, name: subsystem})
}

// SetLevels changes the levels of every subsystem at once, for the
// loggers already made and those to come. Format and File are not
// changed. On error nothing is.
func (l *Logs) SetLevels(level string, perSubsystem map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	opts := l.opts
	opts.Level, opts.Levels = level, perSubsystem
	levels, err := parseLevels(opts)
	if err != nil {
		return err
	}
	l.opts = opts
	for name, v := range l.levels {
		v.Set(levelOf(levels, name))
	}
	return nil
}

// Reopen closes and opens the log file again, so that a file renamed by
// logrotate is let go of. It does nothing when logging to standard
// error.
func (l *Logs) Reopen() error {
	if l.out.path == "" {
		return nil
	}
	return l.out.reopen()
}

// Close closes the log file, if any.
func (l *Logs) Close() error { return l.out.close() }

// parsedLevels are the levels of Options: the default under "".
type parsedLevels map[string]slog.Level

func levelOf(p parsedLevels, subsystem string) slog.Level {
	if v, ok := p[subsystem]; ok {
		return v
	}
	return p[""]
}

func parseLevels(opts Options) (parsedLevels, error) {
	p := parsedLevels{}
	level := opts.Level
	if level == "" {
		level = "info"
	}
	var err error
	if p[""], err = ParseLevel(level); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	for name, s := range opts.Levels {
		if p[name], err = ParseLevel(s); err != nil {
			return nil, fmt.Errorf("log level of %s: %w", name, err)
		}
	}
	return p, nil
}

// ParseLevel reads debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
}

// subsystemHandler filters by the subsystem's level and names the
// subsystem in each record.
type subsystemHandler struct {
	inner slog.Handler
	level *slog.LevelVar
	name  string
}

func (h *subsystemHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

func (h *subsystemHandler) Handle(ctx context.Context, r slog.Record) error {
	// The record is the caller's copy, used once: adding to it is safe.
	r.AddAttrs(slog.String("subsystem", h.name))
	return h.inner.Handle(ctx, r)
}

func (h *subsystemHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &subsystemHandler{inner: h.inner.WithAttrs(attrs), level: h.level, name: h.name}
}

func (h *subsystemHandler) WithGroup(name string) slog.Handler {
	return &subsystemHandler{inner: h.inner.WithGroup(name), level: h.level, name: h.name}
}

// output is the log's destination; a file can be reopened under the
// handlers' feet.
type output struct {
	path string
	mu   sync.Mutex
	w    io.Writer
	f    *os.File
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

func (o *output) reopen() error {
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	o.mu.Lock()
	old := o.f
	o.w, o.f = f, f
	o.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (o *output) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	o.w = io.Discard
	return err
}
