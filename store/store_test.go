package store

import (
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

func TestNoSpace(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{syscall.ENOSPC, true},
		{syscall.EDQUOT, true},
		{&fs.PathError{Op: "write", Path: "tmp/x", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("write index: %w", syscall.EDQUOT), true},
		{syscall.EIO, false},
		{fs.ErrNotExist, false},
		{nil, false},
	} {
		if got := NoSpace(tc.err); got != tc.want {
			t.Errorf("NoSpace(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
