//go:build !linux

package fetch

import "os"

// waitExit returns at once: without pidfds, cmd.Wait's blocking wait is
// the one there is.
func waitExit(pid int) {}

// memoryFile returns nil: the spool goes to an unlinked file on disk.
func memoryFile(name string) *os.File { return nil }
