package passwdfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/postoffice-mail/postoffice/auth"
	"github.com/postoffice-mail/postoffice/auth/scheme"
)

// ErrUserExists is returned by Add for a user already in the file.
var ErrUserExists = errors.New("user already exists")

// ErrNoSuchUser is returned by SetPassword and Delete for a user not in
// the file.
var ErrNoSuchUser = errors.New("no such user")

// newFileMode is the mode of a passwd-file Add creates: it holds password
// hashes, which nobody else needs to read.
const newFileMode = 0o600

// List returns the users of the passwd-file at path, in file order. A
// malformed line is an error naming path:line, as in Open.
func List(path string) ([]Entry, error) {
	data, _, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	db, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	entries := make([]Entry, len(db.order))
	for i, r := range db.order {
		entries[i] = r.Entry
		entries[i].Extra = append([]string(nil), r.Extra...)
	}
	return entries, nil
}

// Add appends a user to the passwd-file at path, creating the file (mode
// 0600) if it does not exist. The password is hashed with schemeName, or
// with scheme.DefaultScheme if that is empty; home may be empty. Add
// refuses an invalid name, an empty password and a user already present
// (ErrUserExists).
func Add(path, name, password, schemeName, home string) error {
	if err := auth.ValidUsername(name); err != nil {
		return fmt.Errorf("add user: %w", err)
	}
	if home != "" && (!filepath.IsAbs(home) || strings.ContainsAny(home, ":\r\n")) {
		return fmt.Errorf("add user %s: home %q must be an absolute path without ':' or line breaks", name, home)
	}
	stored, err := hashPassword(password, schemeName)
	if err != nil {
		return fmt.Errorf("add user %s: %w", name, err)
	}
	line := name + ":" + stored
	if home != "" {
		line += "::::" + home
	}
	// The line must read back as written; this catches any gap
	// between the checks above and the parser.
	if _, err := parseLine(line); err != nil {
		return fmt.Errorf("add user %s: %w", name, err)
	}
	err = edit(path, true, func(lines []string) ([]string, error) {
		i, err := findUser(lines, name)
		if err != nil {
			return nil, err
		}
		if i >= 0 {
			return nil, fmt.Errorf("%w: %s", ErrUserExists, name)
		}
		eol := lineEnding(lines)
		if n := len(lines); n > 0 && !strings.HasSuffix(lines[n-1], "\n") {
			lines[n-1] += eol
		}
		return append(lines, line+eol), nil
	})
	if err != nil {
		return fmt.Errorf("add user %s: %w", name, err)
	}
	return nil
}

// SetPassword replaces the password of a user in the passwd-file at path,
// hashing it with schemeName (scheme.DefaultScheme if empty). The rest of
// the user's line, extra fields included, is kept as it was.
func SetPassword(path, name, password, schemeName string) error {
	if err := auth.ValidUsername(name); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	stored, err := hashPassword(password, schemeName)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	err = edit(path, false, func(lines []string) ([]string, error) {
		i, err := findUser(lines, name)
		if err != nil {
			return nil, err
		}
		if i < 0 {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchUser, name)
		}
		text := trimEOL(lines[i])
		eol := lines[i][len(text):]
		fields := strings.SplitN(text, ":", 3)
		if len(fields) < 2 {
			fields = append(fields, "")
		}
		fields[1] = stored
		lines[i] = strings.Join(fields, ":") + eol
		return lines, nil
	})
	if err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	return nil
}

// Delete removes a user's line from the passwd-file at path.
func Delete(path, name string) error {
	if err := auth.ValidUsername(name); err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	err := edit(path, false, func(lines []string) ([]string, error) {
		i, err := findUser(lines, name)
		if err != nil {
			return nil, err
		}
		if i < 0 {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchUser, name)
		}
		return append(lines[:i], lines[i+1:]...), nil
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	return nil
}

// hashPassword hashes a new password for storing in a passwd-file line.
func hashPassword(password, schemeName string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	if schemeName == "" {
		schemeName = scheme.DefaultScheme
	}
	stored, err := scheme.Hash(schemeName, password)
	if err != nil {
		return "", err
	}
	if lineSafe(stored) {
		return stored, nil
	}
	// Only a plaintext scheme can carry a ':' or a control character
	// into the file; its base64 form stores the same secret safely.
	if _, plain := scheme.Plaintext(stored); plain {
		return scheme.Hash(schemeName+".B64", password)
	}
	return "", errors.New("stored password would break the line format")
}

// lineSafe reports whether s can be a passwd-file field.
func lineSafe(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r == ':' || r < 0x20 || r == 0x7f
	})
}

// findUser returns the index of the line defining name, or -1. It reads
// no more of each line than the name, so that it can edit a file with
// lines it would not load; a user on two lines is an error, since which
// one to change would be a guess.
func findUser(lines []string, name string) (int, error) {
	found := -1
	for i, line := range lines {
		text := trimEOL(line)
		if isIgnored(text) {
			continue
		}
		if user, _, _ := strings.Cut(text, ":"); user != name {
			continue
		}
		if found >= 0 {
			return -1, fmt.Errorf("%w: %s, on lines %d and %d; edit the file by hand", errDuplicate, name, found+1, i+1)
		}
		found = i
	}
	return found, nil
}

// lineEnding returns the terminator the file uses: "\r\n" if its first
// line ends so, "\n" otherwise.
func lineEnding(lines []string) string {
	if len(lines) > 0 && strings.HasSuffix(lines[0], "\r\n") {
		return "\r\n"
	}
	return "\n"
}

// edit applies modify to the lines of the passwd-file at path (each with
// its terminator) and replaces the file with the result. It holds an
// exclusive lock on path+".lock" throughout, so that concurrent edits
// are serialised rather than lost; readers need no lock, since they only
// ever see the old file or the new one.
func edit(path string, create bool, modify func(lines []string) ([]string, error)) error {
	unlock, err := lock(path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()

	// Edit the file a symbolic link points to rather than replace the
	// link with a regular file.
	target := path
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		target = resolved
	}
	data, info, err := readForEdit(target)
	if errors.Is(err, fs.ErrNotExist) && create {
		data, info, err = nil, nil, nil
	}
	if err != nil {
		return err
	}
	lines, err := modify(splitLines(string(data)))
	if err != nil {
		return err
	}
	return replace(target, []byte(strings.Join(lines, "")), info)
}

// readForEdit reads a file and its metadata from one open file.
func readForEdit(path string) ([]byte, os.FileInfo, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	data, err := io.ReadAll(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, info, nil
}

// lock takes an exclusive flock(2) on the file at path, creating it, and
// returns the function that releases it. The lock file is never removed:
// removing it would let two editors lock different files of one name.
func lock(path string) (unlock func(), err error) {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, newFileMode)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = unix.Flock(int(file.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Closing the descriptor releases the lock.
	return func() { file.Close() }, nil
}

// replace atomically replaces the file at path with data: it writes a
// temporary file in the same directory with the original's mode and owner
// (or mode 0600 for a new file, info == nil), syncs it, renames it over
// path and syncs the directory, so that after a crash the file is either
// the old version or the new one, never a mixture or empty.
func replace(path string, data []byte, info os.FileInfo) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	mode := os.FileMode(newFileMode)
	if info != nil {
		mode = info.Mode().Perm()
		if err := copyOwner(tmp, info); err != nil {
			return err
		}
	}
	// Chmod, unlike the mode given at creation, ignores the umask.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	renamed = true
	return syncDir(dir)
}

// copyOwner gives tmp the owner and group of the file described by info.
// A server running as another user than the administrator must still be
// able to read the file after an edit; if the owner cannot be kept, the
// edit fails rather than lock the server out.
func copyOwner(tmp *os.File, info os.FileInfo) error {
	want, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	have, err := tmp.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", tmp.Name(), err)
	}
	if st, ok := have.Sys().(*syscall.Stat_t); ok && st.Uid == want.Uid && st.Gid == want.Gid {
		return nil
	}
	if err := tmp.Chown(int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("keep owner %d:%d: %w", want.Uid, want.Gid, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
