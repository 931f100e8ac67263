package fetch

import (
	"os"

	"golang.org/x/sys/unix"
)

// waitExit returns once process pid has exited, having waited in the
// network poller on a pidfd (Linux 5.10). cmd.Wait then reaps it at
// once. Waiting in Wait's own blocking waitid(2) instead, for the length
// of an MDA's run, makes Go's runtime monitor take the processor back
// after 10 ms and poll every 20 µs for a while after: on a 2-core machine
// those wake-ups took CPU time from the MDA processes themselves, about
// a twentieth of a delivery (docs/performance.md). Where pidfds are not
// offered it returns at once, and Wait blocks as it always did.
func waitExit(pid int) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd") // non-blocking: in the poller
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(uintptr) bool {
		// A pidfd is readable once its process has exited; WNOWAIT
		// leaves the exit status for Wait.
		// (Linux zeroes info when WNOHANG finds no exit.)
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		return err != nil || info.Signo != 0
	})
}

// memoryFile returns a file in memory (memfd_create(2)), or nil where the
// kernel does not offer it.
func memoryFile(name string) *os.File {
	fd, err := unix.MemfdCreate("postoffice-fetch-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), name)
}
