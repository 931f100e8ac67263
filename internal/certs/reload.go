package certs

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ReloadInterval is how often, at most, a Reloader looks at its files: a
// renewed certificate is served within seconds, and a busy server pays
// two stat calls every few seconds, not two per handshake.
const ReloadInterval = 2 * time.Second

// Reloader serves the certificate in a pair of files and loads them again
// when they change on disk, so that a renewed certificate (certbot,
// acme.sh, a configuration management run) is used without a signal or
// a restart. A pair that does not load — the certificate written but the
// key not yet, a key that does not match — is logged and skipped: the
// previous certificate stays in service until the files change again.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	interval          time.Duration

	cert atomic.Pointer[tls.Certificate]

	mu      sync.Mutex // held by the one goroutine looking at the files
	loaded  [2]fileStamp
	failed  [2]fileStamp // a pair that did not load, not tried again
	checked time.Time
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// NewReloader loads the pair now; an error here is a configuration error.
func NewReloader(certFile, keyFile string, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, interval: ReloadInterval}
	stamps, err := r.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := LoadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert.Store(cert)
	r.loaded, r.checked = stamps, time.Now()
	return r, nil
}

// LoadPair loads a PEM certificate chain and its key, with the leaf
// parsed, naming the file in errors.
func LoadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

// Certificate returns the certificate in service.
func (r *Reloader) Certificate() *tls.Certificate {
	r.refresh()
	return r.cert.Load()
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// refresh looks at the files if the last look is older than the interval.
// Handshakes that arrive while another goroutine looks do not wait: they
// get the certificate in service.
func (r *Reloader) refresh() {
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.checked) < r.interval && now.After(r.checked) {
		return
	}
	r.checked = now
	stamps, err := r.stamps()
	if err != nil {
		if stamps != r.failed {
			r.log.Warn("certificate files cannot be read; still serving the previous certificate", "err", err)
			r.failed = stamps
		}
		return
	}
	if stamps == r.loaded || stamps == r.failed {
		return
	}
	cert, err := LoadPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("certificate files changed but do not load; still serving the previous certificate", "err", err)
		r.failed = stamps
		return
	}
	r.cert.Store(cert)
	r.loaded, r.failed = stamps, [2]fileStamp{}
	r.log.Info("certificate reloaded", "file", r.certFile, "serial", cert.Leaf.SerialNumber.String(),
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

func (r *Reloader) stamps() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, path := range []string{r.certFile, r.keyFile} {
		info, err := os.Stat(path)
		if err != nil {
			return out, fmt.Errorf("certificate: %w", err)
		}
		out[i] = fileStamp{size: info.Size(), mtime: info.ModTime().UnixNano()}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			out[i].dev, out[i].ino = uint64(st.Dev), st.Ino
		}
	}
	return out, nil
}
