// Package systemd speaks the two small protocols a service uses to work
// with systemd: readiness notification (sd_notify, the NOTIFY_SOCKET
// datagram socket of Type=notify services) and socket activation
// (listening sockets passed as file descriptors 3 and up, described by
// LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES).
//
// Both are written here rather than taken from a library: each is a
// few lines over the standard library (one datagram; a loop over file
// descriptors), the formats are fixed by systemd's documented interface
// (sd_notify(3), sd_listen_fds(3)), and a dependency would bring more
// code than it saves. Without systemd, Notify does nothing and
// Listeners returns none, so the server runs the same anywhere.
package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Notify sends state, such as "READY=1", to the service manager. It does
// nothing when NOTIFY_SOCKET is not set (not run by systemd, or not a
// Type=notify service).
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	// An address starting with '@' is in Linux's abstract namespace;
	// package net spells it the same way.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}

// Ready tells systemd that start-up is complete: every listener is open.
func Ready() error { return Notify("READY=1") }

// Reloading tells systemd that a reload has started; Ready ends it.
// MONOTONIC_USEC lets systemd (Type=notify-reload, version 253 and
// later) tell this reload from an earlier one.
func Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	usec := ts.Nano() / int64(time.Microsecond)
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// Stopping tells systemd that a graceful shutdown has started.
func Stopping() error { return Notify("STOPPING=1") }

// Status sets the one-line status systemctl status shows.
func Status(text string) error { return Notify("STATUS=" + text) }
