package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// listenFDsStart is the first passed file descriptor (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// Listeners returns the listening sockets systemd passed to this process,
// by the name each was given (FileDescriptorName= in the .socket unit;
// systemd's default is the socket unit's name). It returns nil when no
// sockets were passed, or when they were meant for another process
// (LISTEN_PID names a different one: a parent that did not clear the
// variables).
//
// The variables are removed from the environment, so that a program the
// server starts does not take the sockets for its own, and each
// descriptor is marked close-on-exec.
func Listeners() (map[string][]net.Listener, error) {
	pid, fds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if fds == "" {
		return nil, nil
	}
	if pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 || n > 1024 {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS=%q is not a number of sockets", fds)
	}
	var nameList []string
	if names != "" {
		nameList = strings.Split(names, ":")
	}
	if len(nameList) != 0 && len(nameList) != n {
		return nil, fmt.Errorf("socket activation: LISTEN_FDNAMES names %d sockets but LISTEN_FDS passes %d", len(nameList), n)
	}
	out := make(map[string][]net.Listener)
	closeAll := func() {
		for _, ls := range out {
			for _, l := range ls {
				l.Close()
			}
		}
	}
	for i := range n {
		fd := listenFDsStart + i
		name := "unknown" // what systemd passes for a socket without a name
		if len(nameList) > 0 {
			name = nameList[i]
		}
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "systemd:"+name)
		l, err := net.FileListener(f)
		// FileListener duplicated the descriptor; the original is not
		// needed either way.
		f.Close()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("socket activation: descriptor %d (%s) is not a listening stream socket: %w", fd, name, err)
		}
		out[name] = append(out[name], l)
	}
	return out, nil
}
