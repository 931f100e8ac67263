package passwdfile

import (
	"fmt"
)

// maxCheckProblems bounds the problems Check reports: past a screenful,
// the file is wrong throughout and more lines say nothing new.
const maxCheckProblems = 50

// Check reads the passwd-file at path and returns its users and every
// malformed line, not only the first as Open does, for "postoffice
// check". Each problem names path:line; none quotes a password.
func Check(path string) (users []Entry, problems []error, err error) {
	data, _, err := readFile(path)
	if err != nil {
		return nil, nil, err
	}
	firstLine := map[string]int{}
	for i, line := range splitLines(string(data)) {
		lineNo := i + 1
		r, err := parseLine(trimEOL(line))
		switch {
		case err != nil:
			problems = append(problems, fmt.Errorf("%s:%d: %w", path, lineNo, err))
		case r == nil:
			continue
		default:
			if first, dup := firstLine[r.Name]; dup {
				problems = append(problems, fmt.Errorf("%s:%d: %w: %s, first on line %d", path, lineNo, errDuplicate, r.Name, first))
				continue
			}
			firstLine[r.Name] = lineNo
			users = append(users, r.Entry)
		}
		if len(problems) == maxCheckProblems {
			problems = append(problems, fmt.Errorf("%s: more problems after line %d not listed", path, lineNo))
			break
		}
	}
	return users, problems, nil
}
