//go:build unix

package maildir

import "golang.org/x/sys/unix"

// modTime returns a file's modification time in Unix seconds.
func modTime(st *unix.Stat_t) int64 { return int64(st.Mtim.Sec) }
