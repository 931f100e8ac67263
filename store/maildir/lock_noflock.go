//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package maildir

import "os"

// tryLock has no flock(2) to use here: the lock file's O_EXCL creation
// and the read-back after a takeover are the only protection.
func tryLock(*os.File) (bool, error) { return true, nil }
