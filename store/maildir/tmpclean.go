package maildir

import (
	"strconv"
	"strings"
	"time"
)

// tmpMaxAge is how long a file may sit in tmp/ before any reader may
// remove it: the Maildir specification's 36 hours, for files of other
// programs and hosts.
const tmpMaxAge = 36 * time.Hour

// tmpGrace is how long a file this host wrote must have been left alone
// before it counts as abandoned even though its writer is gone. A
// delivery writes its spooled message in one go and renames it within
// milliseconds, so a live delivery's file is never that old; the grace
// covers a writer whose pid this process cannot see (another pid
// namespace with the same host name), which would otherwise lose its file
// between write and rename.
const tmpGrace = time.Minute

// abandonedTmp reports whether the tmp/ file name, last modified at
// modified, is a delivery that will never finish: older than tmpMaxAge,
// or written on this host (by this store's naming, see Deliver and
// Import: "<secs>.M<usecs>P<pid>Q<n>.<host>" or "...P<pid>I<n>...") by a
// process that no longer exists, and untouched for tmpGrace. The second
// rule is what cleans up after a crash at the next start instead of a day
// and a half later; a pid reused by a live process only keeps the file.
func (s *Store) abandonedTmp(name string, modified, now time.Time) bool {
	age := now.Sub(modified)
	if age >= tmpMaxAge {
		return true
	}
	if age < tmpGrace {
		return false
	}
	pid, host, ok := tmpWriter(name)
	return ok && host == sanitizeHost(s.hostname) && pid != myPid && !processAlive(pid)
}

// tmpWriter reads the writer's pid and host from a tmp/ name of this
// store's form, "<secs>.M<usecs>P<pid>Q<n>.<host>" (or I<n> for imports).
func tmpWriter(name string) (pid int, host string, ok bool) {
	_, rest, ok := strings.Cut(name, ".")
	if !ok {
		return 0, "", false
	}
	unique, host, ok := strings.Cut(rest, ".")
	if !ok || host == "" || !strings.HasPrefix(unique, "M") {
		return 0, "", false
	}
	_, afterP, ok := strings.Cut(unique, "P")
	if !ok {
		return 0, "", false
	}
	end := strings.IndexAny(afterP, "QI")
	if end <= 0 {
		return 0, "", false
	}
	pid, err := strconv.Atoi(afterP[:end])
	if err != nil || pid <= 0 {
		return 0, "", false
	}
	return pid, host, true
}
