package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/store"
)

// Quota is the per-user limit; a zero field means no limit.
type Quota struct {
	Bytes    int64
	Messages int64
}

// Config configures an Agent.
type Config struct {
	// Hostname names this host in Received fields.
	Hostname string
	// Users finds the user an address names (the passwd-file implements
	// it). LookupUser returns auth.ErrFailed for an unknown user and an
	// error wrapping auth.ErrUnavailable for a temporary failure.
	Users auth.UserLookup
	// Store is where messages go. If it also implements
	// store.UsageReporter, quotas can be enforced.
	Store store.Deliverer
	// Addresses maps addresses to user names.
	Addresses AddressPolicy
	// MaxMessageSize bounds a message, in octets; 0 means 50 MiB.
	MaxMessageSize int64
	// Quota is the per-user limit.
	Quota Quota
	// SpoolDir is where messages over 1 MiB are spooled while they are
	// delivered; "" means os.TempDir().
	SpoolDir string
	// Logger receives one line per delivery; nil discards.
	Logger *slog.Logger
	// Now is the clock for Received fields; nil means time.Now.
	Now func() time.Time
}

// Agent delivers messages. It is safe for concurrent use.
type Agent struct {
	cfg   Config
	usage store.UsageReporter
}

// DefaultMaxMessageSize is the message size limit when Config leaves it 0.
const DefaultMaxMessageSize = 50 << 20

// New returns an Agent, or an error if cfg cannot work (no store, no user
// database, quotas with a store that cannot report usage).
func New(cfg Config) (*Agent, error) {
	if cfg.Store == nil || cfg.Users == nil {
		return nil, errors.New("delivery: a store and a user database are required")
	}
	if cfg.Hostname == "" {
		return nil, errors.New("delivery: a host name is required")
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Agent{cfg: cfg}
	a.usage, _ = cfg.Store.(store.UsageReporter)
	if (cfg.Quota.Bytes > 0 || cfg.Quota.Messages > 0) && a.usage == nil {
		return nil, errors.New("delivery: quotas are configured but the store cannot report usage")
	}
	return a, nil
}

// MaxMessageSize is the size limit the Agent enforces.
func (a *Agent) MaxMessageSize() int64 { return a.cfg.MaxMessageSize }

// Recipient is a resolved recipient.
type Recipient struct {
	// Address is the address as the sender gave it; it goes into
	// Delivered-To and the Received field.
	Address string
	// User is the user it belongs to.
	User *auth.User
}

// account is the store's view of the recipient.
func (r *Recipient) account() store.Account {
	return store.Account{Name: r.User.Name, Home: r.User.Home, Mail: r.User.Mail}
}

// Resolve finds the user addr belongs to: ErrBadAddress, ErrUnknownDomain
// or ErrUnknownUser (as *Error) when there is none, a temporary *Error when
// the user database cannot answer.
func (a *Agent) Resolve(ctx context.Context, addr string) (*Recipient, error) {
	names, err := a.cfg.Addresses.Candidates(addr)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if auth.ValidUsername(name) != nil {
			continue
		}
		u, err := a.cfg.Users.LookupUser(ctx, name)
		if err == nil {
			return &Recipient{Address: addr, User: u}, nil
		}
		if !errors.Is(err, auth.ErrFailed) {
			return nil, classify(err)
		}
	}
	return nil, ErrUnknownUser.with("", nil)
}

// CheckQuota refuses (ErrQuota) a message of size octets (0 if not known
// yet) for r if the maildrop is already at its limit or would go over it.
func (a *Agent) CheckQuota(ctx context.Context, r *Recipient, size int64) error {
	q := a.cfg.Quota
	if q.Bytes <= 0 && q.Messages <= 0 {
		return nil
	}
	u, err := a.usage.Usage(ctx, r.account())
	if err != nil {
		return classify(err)
	}
	if q.Messages > 0 && u.Messages+1 > q.Messages {
		return ErrQuota.with(fmt.Sprintf("Mailbox full: %d of %d messages", u.Messages, q.Messages), nil)
	}
	if q.Bytes > 0 && (u.Bytes >= q.Bytes || u.Bytes+size > q.Bytes) {
		return ErrQuota.with(fmt.Sprintf("Mailbox full: %d of %d octets used", u.Bytes, q.Bytes), nil)
	}
	return nil
}

// ReadMessage reads a message with the Agent's size limit and spool
// directory (see the package function ReadMessage).
func (a *Agent) ReadMessage(r io.Reader) (*Message, error) {
	return ReadMessage(r, a.cfg.MaxMessageSize, a.cfg.SpoolDir)
}

// Deliver puts msg into r's maildrop, with the trace fields for env in
// front, after checking for a loop and the quota. It returns once the
// copy is durable (the store's promise), or an *Error and no copy.
func (a *Agent) Deliver(ctx context.Context, env *Envelope, msg *Message, r *Recipient) (store.MessageInfo, error) {
	start := time.Now()
	info, err := a.deliver(ctx, env, msg, r)
	e := classify(err)
	if e != nil {
		level := slog.LevelWarn
		if e.Temporary() {
			level = slog.LevelError
		}
		a.cfg.Logger.Log(ctx, level, "delivery failed", "id", env.ID, "from", env.From, "to", r.Address,
			"user", r.User.Name, "status", fmt.Sprintf("%d %d.%d.%d", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2]),
			"err", err)
		return store.MessageInfo{}, e
	}
	a.cfg.Logger.Info("delivered", "id", env.ID, "from", env.From, "to", r.Address, "user", r.User.Name,
		"uid", info.UID, "size", info.Size, "duration", time.Since(start).Round(time.Microsecond))
	return info, nil
}

func (a *Agent) deliver(ctx context.Context, env *Envelope, msg *Message, r *Recipient) (store.MessageInfo, error) {
	if msg.hasDeliveredTo(r.Address) {
		return store.MessageInfo{}, ErrLoop.with("", nil)
	}
	trace := traceFields(a.cfg.Hostname, env, r.Address, a.cfg.Now())
	if err := a.CheckQuota(ctx, r, int64(len(trace)+bytes.Count(trace, newline))+msg.POP3Size()); err != nil {
		return store.MessageInfo{}, err
	}
	content := io.MultiReader(bytes.NewReader(trace), msg.reader())
	return a.cfg.Store.Deliver(ctx, r.account(), content)
}
