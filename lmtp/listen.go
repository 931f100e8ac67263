package lmtp

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"strconv"
	"time"
)

// ListenUnix opens a Unix socket at path with the given permissions and,
// if group is not "", group. A socket file left by a server that is gone
// (nobody accepts on it) is replaced; one another server is listening on
// is an error, as is any other kind of file at path. The socket file is
// removed when the listener is closed.
func ListenUnix(path string, mode os.FileMode, group string) (net.Listener, error) {
	if info, err := os.Lstat(path); err == nil {
		if info.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("lmtp socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("lmtp socket %s: another server is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("lmtp socket %s: remove stale socket: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lmtp socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("lmtp socket: %w", err)
	}
	fail := func(err error) (net.Listener, error) {
		l.Close()
		return nil, fmt.Errorf("lmtp socket %s: %w", path, err)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fail(err)
		}
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			return fail(err)
		}
		if err := os.Lchown(path, -1, gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fail(err)
	}
	return l, nil
}
