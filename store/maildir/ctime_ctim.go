//go:build linux || openbsd || dragonfly || solaris || illumos

package maildir

import "syscall"

// changeTime returns a file's status change time (ctime).
func changeTime(st *syscall.Stat_t) (int64, bool) { return st.Ctim.Nano(), true }
